"""The new-run flow's last step: judge whether the reviewed run fits and loads, ask if not, then launch.

The verdict is :func:`engine.estimate.fit.judge`, the same one ``tuitune estimate``, the Models
screen and ``tuitune train`` use. It reads the model's files, so it runs in a thread worker; a
start pressed before the verdict is in waits for it.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from textual.screen import Screen

from engine.config import RunConfig
from engine.estimate.fit import Verdict, judge
from engine.machine.gpus import Gpu
from tuitune.dialogs.confirm import ConfirmDialog
from tuitune.messages import RunStarted
from tuitune.widgets.model_memory import devices_line


class RunStarter:
    """The fit verdict on the latest reviewed config, and the start it guards.

    Workers run on ``screen`` (so its error dialog shows their failures), which gets
    ``RunStarted`` once the run's engine is launched.

    Args:
        screen: The new-run screen.
        show: Called on the UI thread with each verdict and the line naming the GPUs found,
            and with None while a verdict is worked out.
        current: The config on review now (a question answered late must not start an older one).
        place: The runs folder and the run's name to start a config as, asked at launch.
    """

    def __init__(self, screen: Screen, show: Callable[[Verdict | None, str], None],
                 current: Callable[[], RunConfig | None], place: Callable[[RunConfig], tuple[Path, str]]) -> None:
        self.screen = screen
        self.show = show
        self.current = current
        self.place = place
        self.verdict: Verdict | None = None
        """The verdict on the latest config judged."""
        self.starting = False
        """True from launching until the run is started or fails."""
        self._asked: RunConfig | None = None
        self._start_when_judged = False
        self._gpus: tuple[list[Gpu], str] | None = None

    def check(self, config: RunConfig) -> None:
        """Judge ``config`` in the background unless it is the one judged (or being judged) last."""
        if config != self._asked:
            self._asked = config
            self.show(None, "")
            self.screen.run_worker(lambda: self._judge(config), thread=True, exclusive=True, group="fit",
                                   exit_on_error=False, description="estimating memory")

    def start(self, config: RunConfig) -> None:
        """Start ``config`` once its verdict is in: refused, asked about, or launched."""
        verdict = self.verdict
        if verdict is None or verdict.config != config:
            self._start_when_judged = True
            self.screen.notify("checking that the run fits first…")
            return
        if verdict.refusal:
            self.screen.notify(verdict.refusal, title="cannot start", severity="error", timeout=10)
            return
        if not verdict.fits:
            def answered(ok: bool | None) -> None:
                if ok and self.current() == config:
                    self._launch(config)

            self.screen.app.push_screen(ConfirmDialog(verdict.question(), "Start anyway"), answered)
            return
        self._launch(config)

    def _judge(self, config: RunConfig) -> None:
        """Estimate the run's memory and check that its model loads (reads the model's files)."""
        if self._gpus is None:
            from engine.machine import gpus

            self._gpus = gpus.list_gpus()
        found, note = self._gpus
        self.screen.app.call_from_thread(self._judged, judge(config, found), devices_line(found, note))

    def _judged(self, verdict: Verdict, devices: str) -> None:
        """Show a verdict (unless a newer one is on its way); a start that waited for it goes on."""
        if verdict.config != self._asked:
            return
        self.verdict = verdict
        self.show(verdict, devices)
        if self._start_when_judged and verdict.config == self.current():
            self._start_when_judged = False
            self.start(verdict.config)

    def _launch(self, config: RunConfig) -> None:
        if not self.starting:
            self.starting = True
            runs_dir, name = self.place(config)
            self.screen.run_worker(lambda: self._start_run(config, runs_dir, name), thread=True, exclusive=True,
                                   group="launch", exit_on_error=False, description="starting the run")

    def _start_run(self, config: RunConfig, runs_dir: Path, name: str) -> None:
        """Make the run folder and start the detached engine."""
        from tuitune.runs import launch

        try:
            run_dir = launch.new_run_dir(runs_dir, name)
            launch.start_run(run_dir, config)
        finally:
            self.starting = False
        self.screen.post_message(RunStarted(run_dir))
