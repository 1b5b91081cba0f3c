"""Resuming a run from its latest checkpoint, shared by the runs list and the dashboard.

A run can be resumed when it ended without finishing (stopped, failed, or lost with no final
event) and holds a complete checkpoint, the same test the engine's resume makes
(``checkpoints/checkpoint-N`` with its ``trainer_state.json``). The resume itself is
``tuitune.runs.launch.resume_run``, which starts a detached engine and returns at once; the
run's dashboard then follows its new ``run_started`` in the same run folder.
"""

from __future__ import annotations

import os
from pathlib import Path

from textual import work

from engine.protocol import latest_checkpoint
from tuitune.runs.state import FAILED, LOST, STOPPED

RESUMABLE = frozenset({STOPPED, FAILED, LOST})
"""Statuses a run can be resumed from (a finished run is done; a running one is running)."""


def has_checkpoint(run_dir: str | os.PathLike[str]) -> bool:
    """Whether ``run_dir`` holds a complete checkpoint to resume from (reads the folder: not on the UI thread)."""
    return latest_checkpoint(run_dir) is not None


class ResumesRuns:
    """Screen mixin: ``resume_in_background(run_dir)`` resumes a run in a thread worker.

    The screen gets ``run_resumed(run_dir)`` on the UI thread once the engine is started, or
    ``resume_failed(run_dir)`` before the worker's error opens the error dialog.
    """

    def run_resumed(self, run_dir: Path) -> None:
        """The engine of ``run_dir`` was started again."""

    def resume_failed(self, run_dir: Path) -> None:
        """Starting the engine of ``run_dir`` again failed (the error dialog says why)."""

    @work(thread=True, exclusive=True, group="resume", exit_on_error=False, description="resuming the run")
    def resume_in_background(self, run_dir: Path) -> None:
        """Start ``run_dir``'s engine again from its latest checkpoint."""
        from tuitune.runs import launch

        try:
            launch.resume_run(run_dir)
        except Exception:
            self.app.call_from_thread(self.resume_failed, run_dir)  # type: ignore[attr-defined]
            raise
        self.app.call_from_thread(self.run_resumed, run_dir)  # type: ignore[attr-defined]
