"""Evaluate from the app: ask for the held-out data (the Evaluate dialog), start the evaluation job, show it.

The job is the one ``tuitune eval`` starts (``tuitune.runs.evals.start_eval``: the same refusals, the same
``RUN/evals/NAME/``, surviving the app); once it starts, the run's Evaluations screen follows it.
"""

from __future__ import annotations

from pathlib import Path

from textual.screen import Screen

from engine.protocol import CHECKPOINTS_DIR
from tuitune.dialogs.evaluate import EvaluateDialog
from tuitune.runs.evals import EvalRefused, start_eval
from tuitune.runs.folder import resolve_trained, trained_label


class EvalStarter:
    """Asks ``screen``'s user for held-out data and starts evaluating a run's weights on it."""

    def __init__(self, screen: Screen) -> None:
        self.screen = screen

    def open(self, weights: Path) -> None:
        """Ask for the data to evaluate ``weights`` (a run folder, or a checkpoint folder of one) on."""
        run_dir = weights.parents[1] if weights.parent.name == CHECKPOINTS_DIR else weights
        self.screen.app.push_screen(EvaluateDialog(trained_label(run_dir, weights)),
                                    lambda data: self._start(weights, data) if data else None)

    def _start(self, weights: Path, data: str) -> None:
        self.screen.run_worker(lambda: self._run(weights, data), thread=True, group="eval-start",
                               exit_on_error=False, description="starting the evaluation")

    def _run(self, given: Path, data: str) -> None:
        """Refuse what ``tuitune eval`` refuses, in its words; else start the job and open the Evaluations."""
        app = self.screen.app
        try:
            run_dir, weights = resolve_trained(str(given), given.parent)
            job_dir = start_eval(run_dir, weights, data)
        except (FileNotFoundError, EvalRefused) as exc:
            app.call_from_thread(app.notify, str(exc), title="evaluation refused", severity="error", timeout=15)
            return
        app.call_from_thread(app.notify, f"evaluation started: {job_dir} (tuitune stop {job_dir} stops it)")
        app.call_from_thread(self.screen.tuitune_app.open_evals, run_dir)  # type: ignore[attr-defined]
