"""Follow a run folder's ``events.jsonl`` and ``engine.log`` by polling. No Textual here.

The run folder is the only link between the app and the engine, so the dashboard reads the
files the engine appends to, never a pipe. ``EventTail`` remembers a byte offset and reads
only what was appended since; a last line still being written (no ``\\n`` yet) is left for
the next poll. A new tail starts at offset 0, so attaching brings back the whole history.
"""

from __future__ import annotations

import os
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
