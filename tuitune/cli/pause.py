"""``tuitune pause RUN`` and ``tuitune continue RUN``: hold a run's trainer where it is, then let it go on.

The trainer keeps the model loaded while paused and uses no compute; its supervisor records
``paused`` and ``continued`` in the run folder, so every view of the run says so. Whether the run
is running at all is its folder's lock, as for ``tuitune stop`` (:func:`tuitune.cli.common.running_attempt`),
which says the same line when it is not.
"""

from __future__ import annotations

import argparse
import sys
import time

from engine.protocol import CONTINUED, LOG_FILE, PAUSED
from tuitune.cli.common import running_attempt

WAIT_S = 10.0
"""Seconds to wait for the supervisor to record the pause or the continue."""


def run(args: argparse.Namespace) -> int:
    """Send the request and wait until the run folder records it; 0 then (or when it was so already), 1 when
    the run is not running or its supervisor cannot be asked.

    Raises:
        tuitune.cli.common.Refusal: no such run, or its folder cannot be read (exit 2).
    """
    from tuitune.runs.launch import continue_run, is_alive, look, pause_run
    from tuitune.runs.tail import EventTail

    pausing = args.command == "pause"
    attempt = running_attempt(args)
    if attempt is None:
        return 1
    run_dir = attempt.run_dir
    if attempt.paused == pausing:
        print(f"{run_dir} is {'paused' if pausing else 'running'} already")
        return 0
    if not (pause_run(run_dir) if pausing else continue_run(run_dir)):
        print(f"{run_dir} is running, but its supervisor is gone: it cannot be "
              f"{'paused' if pausing else 'continued'} (tuitune stop ends it)", file=sys.stderr)
        return 1
    wanted, tail = PAUSED if pausing else CONTINUED, EventTail(run_dir, attempt.offset)
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        if any(e["type"] == wanted for e in tail.read_all()):
            print(f"paused {run_dir}: the model stays loaded; tuitune continue {run_dir.name} goes on" if pausing
                  else f"continued {run_dir}")
            return 0
        if not is_alive(run_dir):  # it ended meanwhile
            print(look(run_dir).not_running(), file=sys.stderr)
            return 1
        time.sleep(0.1)
    print(f"tuitune {args.command}: the run did not record it within {WAIT_S:.0f} s; see {run_dir / LOG_FILE}",
          file=sys.stderr)
    return 1
