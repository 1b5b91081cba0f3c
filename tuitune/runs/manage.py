"""Renaming and deleting run folders, which the runs list offers. No Textual here.

A run's name is its folder's name, so renaming is one ``rename`` in the runs folder; nothing
inside a run names its own folder. Neither is done while any process of the run (its trainer,
an evaluation or an export) holds a lock in it.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from engine.locks import is_locked
from engine.protocol import JOB_FOLDERS
from tuitune.runs.draft import run_name_problem


def busy(run_dir: Path) -> str | None:
    """What of the run is still working ("its trainer", "the export job 20261129-1950"), or None."""
    if is_locked(run_dir):
        return "its trainer is running"
    for kind, folder in JOB_FOLDERS.items():
        for job in sorted((run_dir / folder).glob("*")) if (run_dir / folder).is_dir() else []:
            if job.is_dir() and is_locked(job):
                return f"its {kind} job {job.name} is running"
    return None


def new_name_problem(run_dir: Path, name: str) -> str | None:
    """Why the run cannot be renamed ``name``, or None."""
    if (problem := run_name_problem(name)) is not None:
        return problem
    if (run_dir.parent / name).exists():
        return f"{run_dir.parent / name} exists already"
    return None


def rename_run(run_dir: Path, name: str) -> Path:
    """Rename the run's folder; returns the new path.

    Raises:
        ValueError: the name is malformed or taken, or the run is working.
        OSError: the rename failed (nothing changed).
    """
    if (problem := new_name_problem(run_dir, name) or busy(run_dir)) is not None:
        raise ValueError(f"cannot rename {run_dir.name}: {problem}")
    target = run_dir.parent / name
    os.rename(run_dir, target)
    return target


def delete_run(run_dir: Path) -> None:
    """Delete the run's folder and everything in it.

    Raises:
        ValueError: the run is working (stop it first).
        OSError: a file could not be removed (what was removed stays removed).
    """
    if (problem := busy(run_dir)) is not None:
        raise ValueError(f"cannot delete {run_dir.name}: {problem}; stop it first")
    shutil.rmtree(run_dir)
