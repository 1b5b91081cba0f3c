"""A run's checkpoints with the losses around them, and which one is best. No Textual here.

A checkpoint is listed when the run's events say it was saved (a ``checkpoint`` event) or its folder is
in ``RUN/checkpoints/``; one the events name whose folder is gone was deleted by ``save_total_limit``.
Each row carries the train loss logged last at or before its step (the Trainer logs every
``logging_steps``, so this is the loss of the logging window that ends there) and the eval loss of an
``eval`` event at exactly its step. The best is the lowest eval loss: the Checkpoints screen marks it
and ``tuitune export RUN --best`` exports it, both through :func:`best_checkpoint`.
"""

from __future__ import annotations

import bisect
import os
from dataclasses import dataclass
from pathlib import Path

from engine.checkpoints import list_checkpoints
from engine.protocol import CHECKPOINTS_DIR
from tuitune.runs.state import RunState

DELETED = "deleted (save_total_limit)"
"""The problem of a checkpoint the events name whose folder is gone."""


@dataclass(frozen=True)
class CheckpointRow:
    """One checkpoint of a run, with its losses."""

    step: int
    """The optimizer step it was saved at."""
    path: Path
    """Its folder, ``RUN/checkpoints/checkpoint-STEP`` (it may be gone: see ``problem``)."""
    train_loss: float | None
    """The train loss logged last at or before ``step`` (None: none logged by then)."""
    eval_loss: float | None
    """The eval loss of an ``eval`` event at ``step`` (None: no evaluation there)."""
    problem: str | None = None
    """Why it cannot be used (deleted, or not complete), or None."""

    @property
    def usable(self) -> bool:
        """Whether chat, evaluation and export can use it."""
        return self.problem is None


def checkpoint_rows(run_dir: str | os.PathLike[str], state: RunState) -> list[CheckpointRow]:
    """Every checkpoint of the run, oldest first, with its losses from ``state`` (the run's folded events)."""
    run_dir = Path(run_dir)
    on_disk = {c.step: c for c in list_checkpoints(run_dir)}
    steps = set(on_disk)
    for saved in state.checkpoints:
        suffix = saved.rsplit("-", 1)[-1]
        if Path(saved).parent.name == CHECKPOINTS_DIR and suffix.isdigit():
            steps.add(int(suffix))
    train = sorted(state.train_series)
    train_steps = [step for step, _ in train]
    evals = {int(step): loss for step, loss in state.eval_series}
    rows = []
    for step in sorted(steps):
        before = bisect.bisect_right(train_steps, step)
        found = on_disk.get(step)
        rows.append(CheckpointRow(
            step=step,
            path=found.path if found else run_dir / CHECKPOINTS_DIR / f"checkpoint-{step}",
            train_loss=train[before - 1][1] if before else None,
            eval_loss=evals.get(step),
            problem=found.problem if found else DELETED,
        ))
    return rows


def best_row(rows: list[CheckpointRow]) -> CheckpointRow | None:
    """The checkpoint of the lowest eval loss (the earlier one on a tie), deleted or not; None when no
    checkpoint has an eval loss."""
    scored = [row for row in rows if row.eval_loss is not None]
    return min(scored, key=lambda row: (row.eval_loss, row.step)) if scored else None


class NoBestCheckpoint(Exception):
    """Why a run has no best checkpoint to use, in one line."""


def best_checkpoint(run_dir: str | os.PathLike[str], state: RunState) -> CheckpointRow:
    """The usable checkpoint of the lowest eval loss.

    Raises:
        NoBestCheckpoint: the run has no checkpoint, no eval loss at any checkpoint, or its best one was
            deleted or is not complete (saying which, and what to do).
    """
    run_dir = Path(run_dir)
    rows = checkpoint_rows(run_dir, state)
    if not rows:
        raise NoBestCheckpoint(f"{run_dir.name} has no checkpoint yet, so none is best")
    best = best_row(rows)
    if best is None:
        raise NoBestCheckpoint(f"{run_dir.name} has no eval loss at any checkpoint (it evaluates only with "
                               "data.val_size > 0, at eval_steps): give a checkpoint folder instead of --best")
    if not best.usable:
        raise NoBestCheckpoint(f"the best checkpoint of {run_dir.name}, step {best.step} (eval loss "
                               f"{best.eval_loss:.4f}), cannot be used: {best.problem}")
    return best
