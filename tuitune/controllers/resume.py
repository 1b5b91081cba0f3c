"""Resuming a run from its latest checkpoint, for the runs list and the dashboard.

A run can be resumed when it ended without finishing (stopped, failed, or lost with no final
event) and holds a complete checkpoint, the same test the engine's resume makes
(``checkpoints/checkpoint-N`` with its ``trainer_state.json``). The resume itself is
``tuitune.runs.launch.resume_run``, which starts a detached engine and returns at once; the
run's dashboard then follows its new ``run_started`` in the same run folder.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from textual.screen import Screen

from engine.checkpoints import latest_checkpoint
from tuitune.runs.state import FAILED, FINISHED, LOST, STOPPED

RESUMABLE = frozenset({STOPPED, FAILED, LOST})
"""Statuses a run can be resumed from (a finished run is done; a running one is running)."""


def has_checkpoint(run_dir: str | os.PathLike[str]) -> bool:
    """Whether ``run_dir`` holds a complete checkpoint to resume from (reads the folder: not on the UI thread)."""
    return latest_checkpoint(run_dir) is not None


def why_not_resumable(name: str, status: str, alive: bool | None, resuming: bool) -> str:
    """Why R does not resume a run, for a toast: it is being resumed, alive, finished, or has no complete checkpoint
    (asked only of a run R does not resume)."""
    if resuming:
        return f"{name} is being resumed already"
    if status not in RESUMABLE or alive is True:
        return (f"{name} finished: there is nothing to resume (N starts a new run from its config)"
                if status == FINISHED else f"{name} is {status}: only a stopped, failed or lost run is resumed")
    return (f"{name} has no complete checkpoint to resume from (a run saves one every train.save_steps steps); "
            "N starts it again from its config")


class Resumer:
    """Resumes runs in a thread worker of ``screen``, whose error dialog shows a failure.

    Args:
        screen: The screen the worker belongs to.
        resumed: Called on the UI thread once the engine of a run is started again.
        failed: Called on the UI thread when that failed, before the error dialog opens.
    """

    def __init__(self, screen: Screen, resumed: Callable[[Path], None], failed: Callable[[Path], None]) -> None:
        self.screen = screen
        self.resumed = resumed
        self.failed = failed

    def resume(self, run_dir: Path) -> None:
        """Start ``run_dir``'s engine again from its latest checkpoint, in the background."""
        self.screen.run_worker(lambda: self._resume(run_dir), thread=True, exclusive=True, group="resume",
                               exit_on_error=False, description="resuming the run")

    def _resume(self, run_dir: Path) -> None:
        from tuitune.runs import launch

        try:
            launch.resume_run(run_dir)
        except Exception:
            self.screen.app.call_from_thread(self.failed, run_dir)
            raise
        self.screen.app.call_from_thread(self.resumed, run_dir)
