"""What every recipe does at its checkpoints and its end: room on disk, the final adapter, the loss.

* Room: before each checkpoint the callback asks :func:`check_room`; a save that would fill the
  disk is refused with :class:`DiskFull` (free space, what is needed, which filesystem), so the
  failure is recorded whole and the last complete checkpoint stays the one to resume from.
* The final adapter (or full model) is written into a temporary folder beside ``adapter/`` and
  renamed into place when complete, so an interrupted save never leaves a folder that looks done.
  An adapter names the base model the run chose (its ``model.name_or_path``: a hub id, a folder,
  or the demo alias), not the cache folder it was loaded from (``engine.export.adapter``).
* ``train_loss`` in ``run_finished`` is the whole run's mean per-step loss over every attempt,
  folded from the run's own ``log`` events (the Trainer's own figure covers the last attempt only).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from engine.checkpoints import MARKER, OPTIMIZER, TRAINER_STATE
from engine.export.adapter import name_chosen_base
from engine.files import staging_dir
from engine.protocol import ADAPTER_DIR, LOG, PHASE, RUN_FINISHED, RUN_STARTED, read_events
from engine.supervisor.failures import DiskFull

RESERVE = 16 * 1024**2
"""Bytes always left free so the run's last events and logs can still be written."""
MB = 1024**2
TRAINING_STATE_FILES = frozenset({OPTIMIZER, TRAINER_STATE, MARKER, "scheduler.pt", "rng_state.pth", "scaler.pt"})
"""Files of a checkpoint that only a resume needs; the rest is the model (or adapter) itself."""


def mount_point(path: Path) -> Path:
    """The mount point of the filesystem holding ``path``."""
    path = path.resolve()
    while not os.path.ismount(path) and path != path.parent:
        path = path.parent
    return path


def check_room(folder: Path, needed: int, what: str) -> None:
    """Raise DiskFull unless ``needed`` bytes plus the reserve fit on ``folder``'s filesystem."""
    free = shutil.disk_usage(folder).free
    if free < needed + RESERVE:
        raise DiskFull(f"no space left on {mount_point(folder)}: {free / MB:.0f} MB free, {what} needs "
                       f"{(needed + RESERVE) / MB:.0f} MB")


def folder_bytes(folder: Path) -> int:
    """Bytes of the files under ``folder`` (0 when it does not exist)."""
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) if folder.is_dir() else 0


def save_atomically(target: Path, write: Callable[[Path], Any]) -> None:
    """Call ``write(tmp)`` on a fresh temporary folder beside ``target``, then put it in ``target``'s place."""
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = staging_dir(target.parent, f".{target.name}.")
    try:
        write(staging)
        name_chosen_base(staging, target.parent)  # the run's model, not a cache path
        if target.exists():
            old = target.with_name(f".{target.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(target, old)
            os.replace(staging, target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(staging, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def copy_model_files(checkpoint: Path, into: Path) -> None:
    """The model (or adapter) files of ``checkpoint`` into ``into``, without its resume-only state."""
    for item in checkpoint.iterdir():
        if item.is_file() and item.name not in TRAINING_STATE_FILES:
            shutil.copy2(item, into / item.name)


def whole_run_loss(events: list[dict[str, Any]]) -> float | None:
    """The mean per-step training loss of the whole run, every attempt included.

    Each ``log`` event's loss is the mean over the steps since the previous log of its attempt
    (or since the step the attempt resumed from); an attempt's points after the step the next
    attempt resumed from were trained again, so they are replaced, as the dashboard does.
    """
    windows: dict[int, tuple[int, float]] = {}  # end step -> (steps in the window, mean loss)
    previous = 0
    for event in events:
        if event.get("type") == RUN_STARTED:
            previous = event.get("resumed_from_step") or 0
            windows = {end: w for end, w in windows.items() if end <= previous}
        elif event.get("type") == LOG and isinstance(event.get("loss"), (int, float)):
            step = int(event.get("step") or 0)
            if step > previous:
                windows[step] = (step - previous, float(event["loss"]))
                previous = step
    steps = sum(n for n, _ in windows.values())
    return sum(n * loss for n, loss in windows.values()) / steps if steps else None


def finish_from_checkpoint(run_dir: Path, checkpoint: Path, step: int, started: dict[str, Any],
                           emit: Callable[..., Any], peak: tuple[int, str]) -> None:
    """End a resumed attempt whose checkpoint is the run's last step: nothing is left to train (the Trainer
    would train one step past max_steps), so the checkpoint's model files (and the tokenizer it was saved
    with) become the adapter as they are, and the attempt is started and finished at that step.

    Args:
        started: the fields of the attempt's ``run_started`` known before training.
        emit: ``emit(type, **fields)``, the attempt's event writer.
        peak: the attempt's peak memory and its kind (``rss`` or ``cuda``).
    """
    emit(RUN_STARTED, **started, total_steps=step, resumed_from_step=step, pid=os.getpid())
    emit(PHASE, name="saving", message="the checkpoint is the last step: saving it as the adapter")
    save_atomically(run_dir / ADAPTER_DIR, lambda tmp: copy_model_files(checkpoint, tmp))
    emit(RUN_FINISHED, step=step, train_loss=whole_run_loss(read_events(run_dir)), adapter_path=ADAPTER_DIR,
         peak_memory_bytes=peak[0], peak_memory_kind=peak[1])
