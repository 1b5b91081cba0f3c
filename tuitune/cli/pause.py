"""``tuitune pause RUN`` and ``tuitune continue RUN``: hold a run's trainer where it is, then let it go on.

The trainer keeps the model loaded while paused and uses no compute; its supervisor records
``paused`` and ``continued`` in the run folder, so every view of the run says so.
"""

from __future__ import annotations

import argparse
import sys
import time

from engine.protocol import CONTINUED, PAUSED, read_events_from
from tuitune.cli.common import runs_root
from tuitune.runs.folder import resolve_run

WAIT_S = 10.0
"""Seconds to wait for the supervisor to record the pause or the continue."""


def run(args: argparse.Namespace) -> int:
    """Send the request and wait until the run folder records it; 0 then, 1 when the run is not live."""
    from tuitune.runs.launch import continue_run, pause_run
    from tuitune.runs.state import PAUSED as PAUSED_STATUS
    from tuitune.runs.state import RUNNING, RunState, fold, status
    from tuitune.runs.tail import EventTail

    pausing = args.command == "pause"
    try:
        run_dir = resolve_run(args.run, runs_root(args))
    except FileNotFoundError as exc:
        print(f"tuitune {args.command}: {exc}", file=sys.stderr)
        return 1
    tail = EventTail(run_dir)
    state = fold(RunState(name=run_dir.name), tail.read_all())
    now = status(state, None)
    if now not in (RUNNING, PAUSED_STATUS):
        print(f"tuitune {args.command}: {run_dir} is {now}, not training", file=sys.stderr)
        return 1
    if now == (PAUSED_STATUS if pausing else RUNNING):
        print(f"{run_dir} is {'paused' if pausing else 'running'} already")
        return 0
    offset = tail.offset
    if not (pause_run(run_dir) if pausing else continue_run(run_dir)):
        print(f"tuitune {args.command}: no live supervisor for {run_dir}", file=sys.stderr)
        return 1
    wanted = PAUSED if pausing else CONTINUED
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        if any(e.get("type") == wanted for e in read_events_from(tail.path, offset).events):
            print(f"paused {run_dir}: the model stays loaded; tuitune continue {run_dir.name} goes on" if pausing
                  else f"continued {run_dir}")
            return 0
        time.sleep(0.1)
    print(f"tuitune {args.command}: the run did not record it within {WAIT_S:.0f} s; see {run_dir / 'engine.log'}",
          file=sys.stderr)
    return 1
