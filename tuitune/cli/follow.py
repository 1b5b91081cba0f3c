"""Following a run's or a job's events to its end in the terminal, as ``train`` and ``eval`` do."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from engine.protocol import JOB_STARTED, LOG_FILE, PHASE, PROGRESS, TERMINAL_TYPES, WARNING
from tuitune.runs.launch import is_alive, stop_run, wait_until_gone
from tuitune.runs.tail import EventTail

LOST_GRACE_S = 3.0
"""How long a dead supervisor may leave its terminal event unread before the attempt counts as lost."""


def follow_to_end(folder: Path, offset: int, show: Callable[[dict[str, Any]], None], say: Callable[[str], None],
                  stopping: str, killing: str) -> dict[str, Any]:
    """Show ``folder``'s events from byte ``offset`` until its attempt ends; return the terminal event.

    Ctrl-C asks the attempt to stop (``say(stopping)``), a second one kills it (``say(killing)``).
    Returns once every process of the attempt is gone, so the folder can be resumed, moved or
    deleted right after; an attempt whose processes vanished without a terminal event comes back
    as ``{"type": "lost", …}``.
    """
    tail = EventTail(folder, offset)
    stop_sent = False
    dead_since: float | None = None
    while True:
        try:
            for event in tail.read_all():
                show(event)
                if event["type"] in TERMINAL_TYPES:
                    wait_until_gone(folder)
                    return event
            if is_alive(folder):
                dead_since = None
            elif dead_since is None:
                dead_since = time.monotonic()
            elif time.monotonic() - dead_since > LOST_GRACE_S:
                return {"type": "lost", "cause": "the engine is gone without a terminal event"}
            time.sleep(0.2)
        except KeyboardInterrupt:
            say(killing if stop_sent else stopping)
            stop_run(folder, kill=stop_sent)
            stop_sent = True


def print_failure(end: dict[str, Any], folder: Path) -> None:
    """A failed (or lost) attempt on stderr: the cause, each located error, the hint, where the log is."""
    print(f"failed: {end.get('cause')}", file=sys.stderr)
    for problem in end.get("errors") or []:
        print(f"  {problem}", file=sys.stderr)
    if end.get("hint"):
        print(f"hint: {end['hint']}", file=sys.stderr)
    print(f"log: {folder / LOG_FILE}", file=sys.stderr)


class JobProgress:
    """A progress bar over a job's events (``tuitune eval``, ``tuitune export``) until its terminal event.

    A kind of job says what its start looks like (``started``), how far its ``progress`` events are
    (``describe``), and how its end reads (``report``); warnings and phases are shown alike.
    """

    STOPPING = "stopping (Ctrl-C again to kill)"
    """What the first Ctrl-C says."""
    KILLING = "killing the job"
    """What the second says."""
    TO_STDERR = False
    """Whether the bar and the lines beside it go to stderr, leaving stdout to the result (a path to use)."""

    def __init__(self, job_dir: Path, offset: int = 0) -> None:
        self.job_dir = job_dir
        self.offset = offset
        """Where this attempt's events begin in the job's events.jsonl (a folder used again holds earlier ones)."""

    def follow(self) -> int:
        """Show events until the job ends; returns ``report``'s exit status."""
        from rich.console import Console
        from rich.progress import Progress

        with Progress(*self.columns(), transient=False, console=Console(stderr=self.TO_STDERR)) as progress:
            self.progress = progress
            self.task = progress.add_task("starting", total=None)
            end = follow_to_end(self.job_dir, self.offset, self._show, progress.console.print, self.STOPPING,
                                self.KILLING)
        return self.report(end)

    def columns(self) -> list[Any]:
        """The bar's columns: what it does, the bar, done of total, time elapsed."""
        from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn

        return [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn()]

    def _show(self, event: dict[str, Any]) -> None:
        kind = event["type"]
        if kind == JOB_STARTED:
            self.progress.console.print(self.started(event))
        elif kind == PHASE:
            self.progress.update(self.task, description=str(event.get("name", "")))
        elif kind == PROGRESS:
            self.progress.update(self.task, description=self.describe(event), completed=event.get("done") or 0,
                                 total=event.get("total") or None)
        elif kind == WARNING:
            self.progress.console.print(f"warning: {event.get('message')}")

    def started(self, event: dict[str, Any]) -> str:
        """The line that says what the job does, from its ``job_started``."""
        raise NotImplementedError

    def describe(self, event: dict[str, Any]) -> str:
        """The bar's label for a ``progress`` event."""
        return str(event.get("phase") or "")

    def report(self, end: dict[str, Any]) -> int:
        """Print how the job ended; returns the command's exit status."""
        raise NotImplementedError
