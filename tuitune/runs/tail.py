"""Follow a run folder's ``events.jsonl`` and ``engine.log`` by polling. No Textual here.

The run folder is the only link between the app and the engine, so the dashboard reads the
files the engine appends to, never a pipe. ``EventTail`` remembers a byte offset and reads
only what was appended since; a last line still being written (no ``\\n`` yet) is left for
the next poll. A new tail starts at offset 0, so attaching brings back the whole history.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from engine.protocol import EVENTS_FILE, read_events_from

Event = dict[str, Any]

CHUNK_BYTES = 1 << 20
"""Most bytes parsed in one read, so a long history arrives in batches the UI can take."""
SKIM_HEAD_BYTES = 64 << 10
SKIM_TAIL_BYTES = 256 << 10
"""What a summary reads of a long history: its start (when and what began) and its end (where it is)."""
SKIM_KEPT_TYPES = (b'"type": "alert"', b'"type": "run_started"')
"""Events a summary still needs from the skipped middle: the watchdog's alerts, and the attempt starts
that make earlier alerts history. Found by their bytes, so the middle is scanned, never parsed."""
KEPT_BAD_LINES = 100
LOG_RECORD = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} (\S+) ")
"""A record of the trainer's and jobs' logging (``%(asctime)s %(name)s %(message)s``): group 1 is the logger."""
OWN_LOGGERS = frozenset({"engine", "tuitune", "__main__"})
"""Top-level logger names of our own code; every other logger is a library's."""
PYTHON_WARNING = re.compile(r"\S.*\.py:\d+: \w*Warning: ")
"""The first line of a Python warning as ``warnings`` prints it (``…/x.py:12: FutureWarning: …``)."""


def without_library_noise(lines: Iterable[str]) -> list[str]:
    """``lines`` of engine.log less the libraries' own logging and Python warnings (with their indented
    continuation lines), for the dashboard's log panel; engine.log itself keeps them.

    Chosen by logger, not by known messages: a line the trainer's logging wrote under a logger outside
    :data:`OWN_LOGGERS` (``bitsandbytes.backends.cpu.ops Failed to load CPU gemm_4bit_forward …``,
    ``kernels._internals.hf_hub …``), or a Python warning. Tracebacks, the supervisor's lines, tqdm bars and
    anything printed stay.
    """
    out: list[str] = []
    hiding = False
    for line in lines:
        if record := LOG_RECORD.match(line):
            hiding = record.group(1).split(".", 1)[0] not in OWN_LOGGERS
        elif PYTHON_WARNING.match(line):
            hiding = True
        elif not (hiding and line[:1].isspace()):  # an indented line continues what came before it
            hiding = False
        if not hiding:
            out.append(line)
    return out


class EventTail:
    """Reads new complete events of one run folder, batch by batch.

    Args:
        run_dir: The run folder.
        offset: Byte offset to start from; 0 reads the whole history.
    """

    def __init__(self, run_dir: str | os.PathLike[str], offset: int = 0) -> None:
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / EVENTS_FILE
        self.offset = offset
        """Byte offset just past the last complete line read."""
        self.bad_lines: list[str] = []
        """Complete lines that were not events (the first KEPT_BAD_LINES, for reporting; never fatal)."""
        self.error: str | None = None
        """Why events.jsonl cannot be read at all (a folder, a FIFO, no permission), as of the last read."""

    def read(self, max_bytes: int | None = CHUNK_BYTES) -> list[Event]:
        """The complete events appended since the last read (at most ``max_bytes`` of them)."""
        result = read_events_from(self.path, self.offset, max_bytes)
        if max_bytes is not None and not result.events and result.offset == self.offset:
            # One line longer than the chunk: read it whole rather than stall on it.
            if self._size() - self.offset > max_bytes:
                result = read_events_from(self.path, self.offset, None)
        self.offset = result.offset
        self.bad_lines.extend(result.bad_lines[:max(0, KEPT_BAD_LINES - len(self.bad_lines))])
        self.error = result.error
        return result.events

    def skim(self) -> list[Event]:
        """For a summary: the events at the start and at the end of the history, and from between
        only the SKIM_KEPT_TYPES (alerts, attempt starts).

        A history of hundreds of megabytes would take many seconds and gigabytes to parse whole,
        while a summary needs only when and how the run began, where it is now, and whether the
        watchdog raised an alert in this attempt. Afterwards the tail continues from the end.
        """
        size = self._size()
        if size - self.offset <= SKIM_HEAD_BYTES + SKIM_TAIL_BYTES:
            return self.read_all()
        head = read_events_from(self.path, self.offset, SKIM_HEAD_BYTES)
        start = self._next_line_start(size - SKIM_TAIL_BYTES)
        tail = read_events_from(self.path, start, None)
        self.offset, self.error = tail.offset, tail.error or head.error
        return head.events + self._kept_between(head.offset, start) + tail.events

    def read_last(self, max_bytes: int = SKIM_TAIL_BYTES) -> list[Event]:
        """Only the complete events in the last ``max_bytes`` of the history not read yet (all of it when
        shorter): where a run is now, for a reader that needs no more (a history of hundreds of megabytes
        would take many seconds to parse). Afterwards the tail continues from the end."""
        position = self._size() - max_bytes
        if position > self.offset:
            self.offset = self._next_line_start(position)
        return self.read_all()

    def _next_line_start(self, position: int) -> int:
        """The offset of the first line that begins at or after ``position``."""
        try:
            with open(self.path, "rb") as file:
                file.seek(position - 1)
                return file.tell() + len(file.readline())
        except OSError:
            return position

    def _kept_between(self, begin: int, end: int) -> list[Event]:
        """The SKIM_KEPT_TYPES events of the whole lines in [begin, end), in file order."""
        kept: list[Event | None] = []
        try:
            with open(self.path, "rb") as file:
                file.seek(begin)
                carry, position = b"", begin
                while position < end and (chunk := file.read(min(CHUNK_BYTES, end - position))):
                    position += len(chunk)
                    lines = (carry + chunk).split(b"\n")
                    carry = lines.pop()
                    kept.extend(_parse(line) for line in lines if any(mark in line for mark in SKIM_KEPT_TYPES))
        except OSError:
            return []
        return [event for event in kept if event is not None]

    def read_all(self) -> list[Event]:
        """Every complete event not read yet, in as many chunks as it takes."""
        events: list[Event] = []
        while batch := self.read():
            events.extend(batch)
        return events

    def _size(self) -> int:
        try:
            return self.path.stat().st_size
        except OSError:  # missing, or unreadable: the next read says which in ``error``
            return 0


def _parse(line: bytes) -> Event | None:
    try:
        event = json.loads(line)
    except ValueError:
        return None
    return event if isinstance(event, dict) and "type" in event else None
