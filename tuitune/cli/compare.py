"""``tuitune compare RUN RUN…``: open the app on Compare for two or more runs."""

from __future__ import annotations

import argparse
from pathlib import Path

from tuitune.cli.common import Refusal, runs_root


def chosen_runs(names: list[str], root: Path) -> list[Path]:
    """The run folders ``names`` give (paths or names in ``root``), each once, in the order given.

    Raises:
        Refusal: a name that is no run.
    """
    from tuitune.runs.folder import resolve_run

    found: list[Path] = []
    for name in names:
        try:
            path = resolve_run(name, root)
        except FileNotFoundError as exc:
            raise Refusal(str(exc)) from None
        if path not in found:
            found.append(path)
    return found


def run(args: argparse.Namespace) -> int:
    """Open the app on Compare; refused (exit 2) for a run not found or fewer than two runs."""
    from tuitune.settings import load_settings

    root = runs_root(args)
    runs = chosen_runs(args.runs, root)
    if len(runs) < 2:
        raise Refusal(f"compare needs two or more runs; got {len(runs)} ({', '.join(p.name for p in runs)})")
    from tuitune.app import TuituneApp

    TuituneApp(runs_dir=root, settings=load_settings(), compare=runs).run()
    return 0
