"""``tuitune stop RUN [--kill]``: end a running (usually detached) run and report how it ended.

Without ``--kill`` the run saves a checkpoint and its adapter at the end of the current step
and records ``run_stopped``; with ``--kill`` the trainer dies at once, nothing is saved, and the
supervisor records ``run_stopped`` with ``killed: true`` and the checkpoint a resume would use.
Either way this waits for that terminal event, then for every process of the run to be gone (its
folder's lock free), so the folder can be resumed, moved or deleted as soon as this returns.
Whether the run is running at all is its folder's lock, as for ``tuitune pause`` and ``continue``
(:func:`tuitune.cli.common.running_attempt`), which say the same line when it is not.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from engine.protocol import CONFIG_FILE, JOB_STOPPED, LOG_FILE, PIDS_FILE, RUN_STOPPED, TERMINAL_TYPES
from tuitune.cli.common import running_attempt
from tuitune.runs.launch import is_alive, stop_run, wait_until_gone
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
    """Stop the run; 0 when it stopped as asked, 1 when it was not running or ended otherwise.

    Raises:
        tuitune.cli.common.Refusal: no such run, or its folder cannot be read (exit 2).
    """
    attempt = running_attempt(args)
    if attempt is None:
        return 1
    run_dir = attempt.run_dir
    if not stop_run(run_dir, kill=args.kill):
        print(f"{run_dir} is running, but none of its processes could be signalled; see {run_dir / PIDS_FILE}",
              file=sys.stderr)
        return 1
    saving = " (saving a checkpoint and the adapter)" if (run_dir / CONFIG_FILE).is_file() else ""  # not a job's
    print(("killing" if args.kill else f"stopping{saving}") + f": {run_dir}")
    end = wait_for_terminal(run_dir, attempt.offset, WAIT_S)
    if end is None:
        print(f"no terminal event came; see {run_dir / LOG_FILE}", file=sys.stderr)
        return 1
    if not wait_until_gone(run_dir):
        print(f"the run ended but some of its processes are still alive; see {run_dir / PIDS_FILE}", file=sys.stderr)
        return 1
    print(describe_end(end, run_dir))
    return 0 if end["type"] in (RUN_STOPPED, JOB_STOPPED) else 1
