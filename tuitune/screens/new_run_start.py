"""The new-run flow's last step: check that the reviewed run fits and loads, ask if not, then launch.

A mixin for ``NewRunScreen``, kept apart so the flow's form and its start stay short. The
memory estimate and the model check read files, so they run in a thread worker; a start
pressed before the verdict is in waits for it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.text import Text
from textual import work

from engine.config import RunConfig
from tuitune.dialogs.confirm import ConfirmDialog
from tuitune.messages import RunStarted
from tuitune.runs.launch import default_run_name
from tuitune.screens.new_run_fit import FitCheck, check_fit
from tuitune.widgets.model_memory import MemoryView


class ChecksBeforeStart:
    """NewRunScreen mixin: memory verdict on the review step, and the guarded start.

    The screen provides ``config``, ``draft``, ``memory`` (a ModelMemory) and ``refusal_view``.
    """

    config: RunConfig | None
    fit: FitCheck | None = None
    """The memory and loadability verdict on the latest config checked."""
    starting: bool = False
    """True from launching until the run is started or fails."""
    _fit_asked: RunConfig | None = None
    _start_when_checked: bool = False
    _gpus: tuple[list[Any], str] | None = None

    def ask_fit(self, config: RunConfig) -> None:
        """Check ``config`` in the background unless it is the one checked (or being checked) last."""
        if config != self._fit_asked:
            self._fit_asked = config
            self.memory.show(MemoryView(None, message="Estimating memory…"))  # type: ignore[attr-defined]
            self.refusal_view.display = False  # type: ignore[attr-defined]
            self.check_memory(config)

    def start_checked(self, config: RunConfig) -> None:
        """Start ``config`` once its verdict is in: refused, asked about, or launched."""
        if self.fit is None or self.fit.config != config:
            self._start_when_checked = True
            self.notify("checking that the run fits first…")  # type: ignore[attr-defined]
            return
        fit = self.fit
        if fit.refusal:
            self.notify(fit.refusal, title="cannot start", severity="error", timeout=10)  # type: ignore[attr-defined]
            return
        if not fit.fits:
            def answered(ok: bool | None) -> None:
                if ok and self.config == config:
                    self._launch_now(config)

            self.app.push_screen(ConfirmDialog(fit.question(), "Start anyway"), answered)  # type: ignore[attr-defined]
            return
        self._launch_now(config)

    def _launch_now(self, config: RunConfig) -> None:
        if not self.starting:
            self.starting = True
            self.launch(config, self.draft.name or default_run_name(config))  # type: ignore[attr-defined]

    @work(thread=True, exclusive=True, group="fit", exit_on_error=False, description="estimating memory")
    def check_memory(self, config: RunConfig) -> None:
        """Estimate the run's memory and check that its model loads (reads the model's files)."""
        if self._gpus is None:
            from engine.machine import gpus

            self._gpus = gpus.list_gpus()
        check = check_fit(config, *self._gpus)
        self.app.call_from_thread(self.show_fit, check)  # type: ignore[attr-defined]

    def show_fit(self, fit: FitCheck) -> None:
        """Show a verdict (unless a newer check is on its way); a start that waited for it goes on."""
        if fit.config != self._fit_asked:
            return
        self.fit = fit
        self.memory.show(fit.view)  # type: ignore[attr-defined]
        self.refusal_view.update(Text(fit.refusal or "", style="bold red"))  # type: ignore[attr-defined]
        self.refusal_view.display = bool(fit.refusal)  # type: ignore[attr-defined]
        if self._start_when_checked and fit.config == self.config:
            self._start_when_checked = False
            self.start_checked(fit.config)

    @work(thread=True, exclusive=True, group="launch", exit_on_error=False, description="starting the run")
    def launch(self, config: RunConfig, name: str) -> None:
        """Make the run folder and start the detached engine."""
        from tuitune.runs import launch

        try:
            run_dir = launch.new_run_dir(Path(self.app.runs_dir), name)  # type: ignore[attr-defined]
            launch.start_run(run_dir, config)
        finally:
            self.starting = False
        self.post_message(RunStarted(run_dir))  # type: ignore[attr-defined]
