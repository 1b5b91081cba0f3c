"""Random access to the records of a data file, for browsing pages of it. Standard library only.

For JSON Lines the first page is read straight from the start of the file, and the byte
offset of every record is indexed in the background (:meth:`RecordIndex.build`), about a
second per million records, so any page is then one seek away and nothing but the page is
ever held in memory. JSON arrays and datasets folders are read whole by :func:`iter_records`
(an array must be parsed to find its elements).
"""

from __future__ import annotations

from array import array
from collections.abc import Callable

from engine.data import hub
from engine.data.problems import Problem, SourceError
from engine.data.source import BOM, RawRecord, iter_records, parse_line, resolve_path, source_kind

CHUNK = 8 * 1024 * 1024
"""Bytes read per step while indexing."""
BLANK = frozenset(b" \t\r\n")
"""First bytes of lines that may be blank (checked further); any other starts a record."""


class RecordIndex:
    """Pages of records of one file or folder; thread-safe for one builder and one reader.

    Raises:
        SourceError: when the path does not exist.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        """The path as the user named it (problems carry it)."""
        self.real = resolve_path(path)
        if not hub.is_hub(path) and not self.real.exists():
            raise SourceError(Problem(path, None, None, None, "no such file or folder"))
        self.kind = "hub" if hub.is_hub(path) else source_kind(self.real)
        """jsonl, json, arrow, txt or hub (a Hub dataset, read whole by the first page)."""
        self.size = self.real.stat().st_size if self.real.is_file() else 0
        self.offsets = array("q")
        """Byte offset of each record's line (JSON Lines)."""
        self.lines = array("q")
        """1-based line of each record (JSON Lines)."""
        self.records: list[RawRecord] = []
        """All records (JSON arrays and datasets folders)."""
        self.complete = False
        """Whether the count is final."""

    @property
    def count(self) -> int:
        """Records known so far (all of them once ``complete``)."""
        return len(self.offsets) if self.kind == "jsonl" else len(self.records)

    def first_page(self, size: int) -> list[RawRecord]:
        """The first ``size`` records, without waiting for the index."""
        if self.kind != "jsonl":
            if not self.complete:
                self.build()
            return self.records[:size]
        rows: list[RawRecord] = []
        with self.real.open("rb") as file:
            for lineno, raw in enumerate(file, 1):
                if len(rows) >= size:
                    break
                raw = raw.removeprefix(BOM) if lineno == 1 else raw
                if raw.strip():
                    rows.append(parse_line(raw, lineno, len(rows), self.path))
        return rows

    def page(self, start: int, size: int) -> list[RawRecord]:
        """Records ``start`` to ``start + size`` among those indexed so far."""
        if self.kind != "jsonl":
            return self.records[start:start + size]
        end = min(start + size, self.count)
        if start >= end:
            return []
        rows = []
        with self.real.open("rb") as file:
            file.seek(self.offsets[start])
            for index in range(start, end):
                raw = file.readline()
                while raw and not raw.strip():  # blank lines are not records; the index skipped them too
                    raw = file.readline()
                rows.append(parse_line(raw.removeprefix(BOM), self.lines[index], index, self.path))
        return rows

    def build(self, progress: Callable[[int, float], None] | None = None,
              cancelled: Callable[[], bool] = lambda: False) -> None:
        """Index every record; ``progress(count, fraction)`` is called after each chunk."""
        if self.complete:  # a JSON array or folder is read whole by the first page already
            pass
        elif self.kind != "jsonl":
            for raw in iter_records(self.path):
                if cancelled():
                    return
                self.records.append(raw)
        else:
            self._index_lines(progress, cancelled)
        self.complete = not cancelled()
        if progress is not None:
            progress(self.count, 1.0)

    def _index_lines(self, progress: Callable[[int, float], None] | None, cancelled: Callable[[], bool]) -> None:
        offsets, lines = self.offsets, self.lines
        base, line, carry = 0, 1, b""
        with self.real.open("rb") as file:
            while not cancelled():
                chunk = file.read(CHUNK)
                if not chunk:
                    break
                data = carry + chunk
                start = base - len(carry)
                pos = 0
                while True:
                    end = data.find(b"\n", pos)
                    if end < 0:
                        break
                    if data[pos] not in BLANK or data[pos:end].strip(BOM + b" \r\t"):
                        offsets.append(start + pos)
                        lines.append(line)
                    line += 1
                    pos = end + 1
                carry = data[pos:]
                base += len(chunk)
                if progress is not None:
                    progress(len(offsets), base / max(self.size, 1))
        if carry.strip(BOM + b" \r\t\n"):
            offsets.append(base - len(carry))
            lines.append(line)
