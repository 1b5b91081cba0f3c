"""Follow a run folder's ``events.jsonl`` and ``engine.log`` by polling. No Textual here.

The run folder is the only link between the app and the engine, so the dashboard reads the
files the engine appends to, never a pipe. ``EventTail`` remembers a byte offset and reads
only what was appended since; a last line still being written (no ``\\n`` yet) is left for
the next poll. A new tail starts at offset 0, so attaching brings back the whole history.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from engine.protocol import EVENTS_FILE, read_events_from

Event = dict[str, Any]

CHUNK_BYTES = 1 << 20
"""Most bytes parsed in one read, so a long history arrives in batches the UI can take."""


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
        """Complete lines that were not events (kept for reporting, never fatal)."""

    def read(self, max_bytes: int | None = CHUNK_BYTES) -> list[Event]:
        """The complete events appended since the last read (at most ``max_bytes`` of them)."""
        result = read_events_from(self.path, self.offset, max_bytes)
        if max_bytes is not None and not result.events and result.offset == self.offset:
            # One line longer than the chunk: read it whole rather than stall on it.
            if self._size() - self.offset > max_bytes:
                result = read_events_from(self.path, self.offset, None)
        self.offset = result.offset
        self.bad_lines.extend(result.bad_lines)
        return result.events

    def read_all(self) -> list[Event]:
        """Every complete event not read yet, in as many chunks as it takes."""
        events: list[Event] = []
        while batch := self.read():
            events.extend(batch)
        return events

    def _size(self) -> int:
        try:
            return self.path.stat().st_size
        except FileNotFoundError:
            return 0


def follow(
    tail: EventTail,
    post: Callable[[list[Event]], None],
    cancelled: Callable[[], bool],
    interval: float = 0.5,
    idle: Callable[[], None] | None = None,
) -> None:
    """Poll ``tail`` until ``cancelled()``; each non-empty batch goes to ``post``.

    Args:
        tail: Where to read from (its offset decides whether history is replayed).
        post: Called with each batch of new events, in order.
        cancelled: Polled between reads; returning True ends the loop.
        interval: Seconds to sleep when nothing new was read.
        idle: Called once per quiet poll (e.g. to check whether the engine is alive).
    """
    while not cancelled():
        batch = tail.read()
        if batch:
            post(batch)
            continue
        if idle is not None:
            idle()
        _sleep(interval, cancelled)


def _sleep(seconds: float, cancelled: Callable[[], bool]) -> None:
    """Sleep in short slices so cancellation is seen quickly."""
    end = time.monotonic() + seconds
    while not cancelled() and (left := end - time.monotonic()) > 0:
        time.sleep(min(left, 0.05))
