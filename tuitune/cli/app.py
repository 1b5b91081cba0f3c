"""``tuitune`` and ``tuitune attach RUN``: open the app (on a run's dashboard for attach)."""

from __future__ import annotations

import argparse
import sys


def run(args: argparse.Namespace) -> int:
    """Open the app; returns 2 when ``attach`` names no run folder."""
    from tuitune.app import TuituneApp
    from tuitune.cli.common import runs_root
    from tuitune.runs.folder import resolve_run
    from tuitune.settings import load_settings

    settings = load_settings()
    runs_dir = runs_root(args)
    attach = None
    if args.command == "attach":
        try:
            attach = resolve_run(args.run, runs_dir)
        except FileNotFoundError as exc:
            print(f"tuitune attach: {exc}", file=sys.stderr)
            return 2
    TuituneApp(runs_dir=runs_dir, attach=attach, settings=settings).run()
    return 0
