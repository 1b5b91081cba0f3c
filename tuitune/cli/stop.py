"""``tuitune stop RUN [--kill]``: end a running (usually detached) run and report how it ended.

Without ``--kill`` the run saves a checkpoint and its adapter at the end of the current step
and records ``run_stopped``; with ``--kill`` the trainer dies at once, nothing is saved, and the
supervisor records ``run_stopped`` with ``killed: true`` and the checkpoint a resume would use.
Either way this waits for that terminal event, then for every process of the run to be gone (its
folder's lock free), so the folder can be resumed, moved or deleted as soon as this returns.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from engine.protocol import EVENTS_FILE, RUN_STOPPED, TERMINAL_TYPES, terminal_event
from tuitune.cli.common import runs_root
from tuitune.runs.folder import resolve_run
from tuitune.runs.launch import is_alive, read_pids, stop_run, wait_until_gone
from tuitune.runs.state import describe_end
from tuitune.runs.tail import EventTail

WAIT_S = 600.0
"""How long to wait for the terminal event: saving a large model's checkpoint takes a while."""


def wait_for_terminal(run_dir: Path, offset: int, timeout: float) -> dict[str, Any] | None:
    """The first terminal event written after byte ``offset``, or None after ``timeout`` seconds
    (or once the supervisor is gone and still nothing came)."""
    tail = EventTail(run_dir, offset)
    deadline = time.monotonic() + timeout
    gone_checks = 0
    while time.monotonic() < deadline:
        for event in tail.read_all():
            if event["type"] in TERMINAL_TYPES:
                return event
        gone_checks = 0 if is_alive(run_dir) else gone_checks + 1
        if gone_checks > 10:  # about 2 s with no supervisor and no event
            return None
        time.sleep(0.2)
    return None


def run(args: argparse.Namespace) -> int:
    """Stop the run; 0 when its end was recorded, 1 otherwise."""
    try:
        run_dir = resolve_run(args.run, runs_root(args))
    except FileNotFoundError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    events_path = run_dir / EVENTS_FILE
    offset = events_path.stat().st_size if events_path.exists() else 0
    last = terminal_event(EventTail(run_dir).read_all())
    # An end recorded after the current supervisor started means this attempt is over, even if
    # that supervisor has not quite exited yet; an older end belongs to the attempt before a resume.
    ended_now = last is not None and last.get("t", 0) >= (read_pids(run_dir).get("started") or 0)
    if ended_now or not stop_run(run_dir, kill=args.kill):
        ended = f" (it ended: {describe_end(last, run_dir)})" if last else ""
        print(f"{run_dir} is not running{ended}", file=sys.stderr)
        return 1
    print(("killing" if args.kill else "stopping (saving a checkpoint and the adapter)") + f": {run_dir}")
    end = wait_for_terminal(run_dir, offset, WAIT_S)
    if end is None:
        print("no terminal event came; see engine.log", file=sys.stderr)
        return 1
    if not wait_until_gone(run_dir):
        print(f"the run ended but some of its processes are still alive; see {run_dir / 'pids.json'}", file=sys.stderr)
        return 1
    print(describe_end(end, run_dir))
    return 0 if end["type"] == RUN_STOPPED else 1
