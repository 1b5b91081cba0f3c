"""Which checkpoints of a run can be resumed from. Standard library only.

transformers writes a checkpoint folder file by file, ``trainer_state.json`` included, with no
atomic step at the end: a kill in the middle leaves a folder that looks like a checkpoint but
cannot be resumed (a 0-byte ``trainer_state.json`` made every resume fail). So a checkpoint
counts only when it is complete:

* its marker ``tuitune-complete.json`` exists — written last, atomically, by the engine once the
  Trainer has saved everything (``mark_complete``), listing every file of the folder and its size;
* every file the marker lists is still there at that size (a marker alone does not survive a file
  truncated after the fact);
* ``trainer_state.json`` parses, and the weights and the optimizer state are among the files.

The engine resumes from the newest complete checkpoint and the app offers a resume only when
there is one, so both ask here.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from engine.files import write_text_atomic
from engine.protocol import CHECKPOINTS_DIR

MARKER = "tuitune-complete.json"
TRAINER_STATE = "trainer_state.json"
OPTIMIZER = "optimizer.pt"
WEIGHT_SUFFIXES = (".safetensors", ".bin")


@dataclass(frozen=True)
class Checkpoint:
    """One checkpoint folder and, when it cannot be resumed from, why."""

    path: Path
    step: int
    problem: str | None = None
    """Why it is incomplete (None: complete)."""


def mark_complete(folder: str | os.PathLike[str], step: int) -> None:
    """Write the marker of a checkpoint the Trainer has just finished saving (the last write)."""
    folder = Path(folder)
    files = {str(p.relative_to(folder)): p.stat().st_size for p in sorted(folder.rglob("*"))
             if p.is_file() and p.name != MARKER}
    write_text_atomic(folder / MARKER, json.dumps({"step": step, "files": files}, indent=1) + "\n")


def problem(folder: Path) -> str | None:
    """Why ``folder`` is not a complete checkpoint, or None when it is."""
    try:
        marker = json.loads((folder / MARKER).read_text(encoding="utf-8"))
        files = marker["files"]
        if not isinstance(files, dict):
            raise ValueError("no file list")
    except FileNotFoundError:
        return "it was never finished (no completion marker)"
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return f"its completion marker is unreadable ({exc})"
    for name, size in files.items():
        try:
            actual = (folder / name).stat().st_size
        except OSError:
            return f"{name} is missing"
        if actual != size:
            return f"{name} has {actual} bytes, {size} when saved"
    if not any(name.endswith(WEIGHT_SUFFIXES) for name in files) or OPTIMIZER not in files:
        return "its weights or optimizer state were not saved"
    try:
        json.loads((folder / TRAINER_STATE).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        return f"{TRAINER_STATE} is unreadable ({exc})"
    return None


def list_checkpoints(run_dir: str | os.PathLike[str]) -> list[Checkpoint]:
    """Every ``checkpoint-STEP`` folder of the run, newest first, each with its problem if any."""
    try:
        folders = [p for p in (Path(run_dir) / CHECKPOINTS_DIR).glob("checkpoint-*") if p.is_dir()]
    except OSError:
        return []
    found = [Checkpoint(p, _step(p), problem(p)) for p in folders if _step(p) >= 0]
    return sorted(found, key=lambda c: c.step, reverse=True)


def latest_checkpoint(run_dir: str | os.PathLike[str]) -> Path | None:
    """The newest complete checkpoint of a run, if any."""
    return next((c.path for c in list_checkpoints(run_dir) if c.problem is None), None)


def _step(path: Path) -> int:
    suffix = path.name.rsplit("-", 1)[-1]
    return int(suffix) if suffix.isdigit() else -1


def finished_step(checkpoint: Path | None) -> int | None:
    """The checkpoint's step when it is the run's last (its trainer state says max_steps was reached)."""
    if checkpoint is None:
        return None
    state = json.loads((checkpoint / TRAINER_STATE).read_text(encoding="utf-8"))
    step, last = state.get("global_step"), state.get("max_steps")
    return step if isinstance(step, int) and isinstance(last, int) and 0 < last <= step else None
