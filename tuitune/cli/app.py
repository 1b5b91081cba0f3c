"""``tuitune`` and ``tuitune attach RUN``: open the app (on a run's dashboard for attach)."""

from __future__ import annotations

import argparse
import sys


def run(args: argparse.Namespace) -> int:
    """Open the app; returns 2 when ``attach`` names no run folder (ours, or a LLaMA-Factory output folder)."""
    from tuitune.app import TuituneApp
    from tuitune.cli.common import runs_root
    from tuitune.runs.folder import resolve_run
    from tuitune.settings import load_settings

    settings = load_settings()
    runs_dir = runs_root(args)
    attach = None
    if args.command == "attach":
        from pathlib import Path

        from tuitune.runs.lf_folder import is_lf_folder

        if is_lf_folder(Path(args.run).expanduser()):  # a LLaMA-Factory output folder, watched read-only
            attach = Path(args.run).expanduser().resolve()
        else:
            try:
                attach = resolve_run(args.run, runs_dir)
            except FileNotFoundError as exc:
                print(f"tuitune attach: {exc}", file=sys.stderr)
                return 2
    TuituneApp(runs_dir=runs_dir, attach=attach, settings=settings).run()
    if (line := still_running_line(runs_dir)):
        print(line)
    return 0


def still_running_line(runs_dir) -> str | None:
    """One line saying which runs keep training after the app closed, and how to come back; None if none."""
    from tuitune.runs.folder import engine_alive, list_run_dirs

    live = [run.name for run in list_run_dirs(runs_dir) if engine_alive(run)]
    if not live:
        return None
    if len(live) == 1:
        return f"{live[0]} keeps training in the background: tuitune attach {live[0]} to come back"
    return f"{len(live)} runs keep training in the background ({', '.join(live)}): tuitune attach NAME to come back"
