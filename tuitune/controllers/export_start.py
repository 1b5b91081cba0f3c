"""Export from the app: ask what to write (the Export dialog), start the export job, report its progress.

The job is the same one ``tuitune export`` starts (``RUN/exports/NAME/``, supervised, surviving the
app); this controller only reads the model's facts for the dialog, starts the job and follows its
events, turning phases and the end into notifications. A push is refused before the job starts as
``tuitune export --push`` refuses it (no token, a repo the token cannot write: the Hub is asked, in the
worker thread). Leaving the screen stops only the following.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING

from textual.screen import Screen
from textual.worker import get_current_worker

from engine.protocol import JOB_FINISHED, JOB_FOLDERS, JOB_STARTED, PHASE, TERMINAL_TYPES
from tuitune.runs.folder import read_meta, resolve_trained, trained_label
from tuitune.runs.tail import EventTail

if TYPE_CHECKING:
    from tuitune.dialogs.export import ExportRequest

POLL_S = 0.5
"""Seconds between reads of the export job's events."""
# The dialog and engine.export.plan (about 0.1 s of imports) load when an export is asked for: the runs list,
# the app's first screen, holds this controller but must not pay for them at start.


class ExportStarter:
    """Opens the Export dialog for a run of ``screen`` and starts and follows the export it asks for."""

    def __init__(self, screen: Screen) -> None:
        self.screen = screen

    def open(self, run_dir: Path) -> None:
        """Read what the dialog needs (the run's weights, the model's size) off the event loop, then ask."""
        self.screen.run_worker(lambda: self._prepare(run_dir), thread=True, exclusive=True, group="export-open",
                               exit_on_error=False, description="reading the model for the export")

    def _prepare(self, run_dir: Path) -> None:
        from engine.models.info import ModelError, read_model_info
        from tuitune.dialogs.export import ExportDialog
        from tuitune.runs.launch import job_name

        app = self.screen.app
        try:
            run_dir, weights = resolve_trained(str(run_dir), run_dir.parent)
        except FileNotFoundError as exc:
            app.call_from_thread(app.notify, str(exc), title="nothing to export", severity="warning")
            return
        model = read_meta(run_dir).model
        try:
            info = read_model_info(model) if model else None
        except (ModelError, OSError):
            info = None  # the dialog then shows no size estimate; the job checks again once loaded
        name = job_name()  # chosen now, so the dialog names the folder the job will have
        dialog = ExportDialog(trained_label(run_dir, weights), run_dir / JOB_FOLDERS["export"] / name,
                              info and info.params_total, info and info.dtype, info and info.architecture)
        app.call_from_thread(app.push_screen, dialog,
                             lambda request: self._start(run_dir, weights, request, name) if request else None)

    def _start(self, run_dir: Path, weights: Path, request: ExportRequest, name: str) -> None:
        self.screen.run_worker(lambda: self._run(run_dir, weights, request, name), thread=True,
                               group="export-follow", exit_on_error=False, description="starting the export")

    def _run(self, run_dir: Path, weights: Path, request: ExportRequest, name: str) -> None:
        """Refuse what ``tuitune export`` refuses before it starts, in its words; else start the job, then say
        what it does until it ends."""
        from engine.export import plan
        from tuitune.runs.launch import start_job

        app, worker = self.screen.app, get_current_worker()
        settings = request.settings(str(weights.relative_to(run_dir)))
        problem = plan.request_problem(run_dir, weights, plan.ExportSettings(**settings))
        if problem is None and request.push:  # asks the Hub (this is a worker thread)
            problem = plan.push_access_problem(request.push)
        if problem is None:
            try:
                job_dir, _ = start_job(run_dir, "export", settings, name)
            except (OSError, RuntimeError) as exc:  # the supervisor's refusal: the destination taken meanwhile
                problem = str(exc)
        if problem is not None:
            app.call_from_thread(app.notify, problem, title="export refused", severity="error", timeout=15)
            return
        app.call_from_thread(app.notify, f"export started: {job_dir} (tuitune stop {job_dir} stops it)")
        tail = EventTail(job_dir)
        while not worker.is_cancelled:
            for event in tail.read():
                kind = event.get("type")
                if kind == PHASE and event.get("message"):
                    app.call_from_thread(app.notify, str(event["message"]), title="export")
                elif kind == JOB_FINISHED:
                    pushed = (event.get("pushed") or {}).get("url")
                    app.call_from_thread(app.notify, f"exported to {event.get('destination')}"
                                         + (f"; pushed: {pushed}" if pushed else ""), title="export done", timeout=15)
                    return
                elif kind in TERMINAL_TYPES and kind != JOB_STARTED:
                    what = event.get("cause") or kind.replace("job_", "")
                    app.call_from_thread(app.notify, f"export {what}; see {job_dir / 'engine.log'}",
                                         title="export ended", severity="error", timeout=15)
                    return
            time.sleep(POLL_S)
