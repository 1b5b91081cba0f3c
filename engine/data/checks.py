"""Structural checks of instruction data, record by record. Standard library only.

The app imports this module to list problems while the user browses a file, ``tuitune data
check`` prints them, and the engine runs the very same checks before training and refuses
with the same messages — so the three never disagree. Token-level checks (truncation,
records left with no trained token) need the tokenizer and live in :mod:`engine.data.encode`.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

from engine.data.formats import TRAINABLE, UNTRAINABLE, detect_format, printable, to_messages
from engine.data.problems import Problem, SourceError
from engine.data.source import RawRecord, iter_records

DETECT_SCAN = 20
"""Records looked at to recognise a file's format (the first recognisable one decides)."""
KEEP_PROBLEMS = 1000
"""Problems kept in a summary; the rest are counted."""
FORMAT_HELP = ("expected instruction/output (alpaca), conversations of from/value (sharegpt) "
               "or messages of role/content (openai); or choose the format")


@dataclass
class CheckedRecord:
    """One record after checking: its chat messages when usable, and its problems."""

    index: int
    """0-based record index in its file."""
    line: int | None
    """1-based line where it starts (None in datasets folders)."""
    messages: list[dict[str, str]] | None
    """Chat messages (system/user/assistant), None when the record has errors."""
    problems: list[Problem]
    """Errors and warnings of this record."""
    raw: Any = None
    """The record as read, for displays."""
    file: str = ""
    """The file it came from, as the user named it."""
    offset: int | None = None
    """Where it starts in the file, for progress (see RawRecord.offset)."""


def detect_file_format(path: str, fmt: str = "auto") -> tuple[str | None, Problem | None]:
    """The format of a file: ``fmt`` unless it is ``auto``, else recognised from its first records.

    Returns:
        (format, problem): format is a TRAINABLE name, ``preference``, ``text`` or None; problem
        is set when the file cannot be trained on as it is.
    """
    if fmt != "auto":
        return fmt, None
    first: RawRecord | None = None
    for n, raw in enumerate(iter_records(path)):
        if n >= DETECT_SCAN:
            break
        if not isinstance(raw.value, dict):
            continue
        first = first or raw
        found = detect_format(raw.value)
        if found in UNTRAINABLE:
            return found, Problem(path, raw.line, raw.index, None, UNTRAINABLE[found])
        if found:
            return found, None
    if first is None:
        return None, None
    keys = printable(", ".join(list(first.value)[:8])) or "none"
    return None, Problem(path, first.line, first.index, None,
                         f"cannot tell the format from the record's keys ({keys}): {FORMAT_HELP}")


def layout_problem(path: str, fmt: str = "auto") -> Problem | None:
    """Why ``path`` cannot be trained or evaluated on as a whole, from its first records, or None.

    The quick check commands make before they start a job (the job checks every record): a path
    that cannot be read, a layout that is unknown or not trainable, or a file without records.
    """
    try:
        found, problem = detect_file_format(path, fmt)
    except SourceError as exc:
        return exc.problem
    if problem is None and found is None:
        return Problem(path, None, None, None, "no records")
    return problem


def check_file(path: str, fmt: str = "auto") -> Iterator[CheckedRecord | Problem]:
    """Every record of ``path`` checked, preceded by any whole-file problem (then nothing else).

    Yields:
        A :class:`Problem` for a file that cannot be used as a whole (missing, unknown or
        untrainable format), otherwise one :class:`CheckedRecord` per record.
    """
    try:
        found, problem = detect_file_format(path, fmt)
        if problem is not None:
            yield problem
            return
        seen: dict[int, tuple[int, int | None]] = {}  # content hash -> (record, line), not the record
        for raw in iter_records(path):
            yield _check(path, raw, found, seen)
    except SourceError as exc:
        yield exc.problem


def _check(path: str, raw: RawRecord, fmt: str | None, seen: dict[int, tuple[int, int | None]]) -> CheckedRecord:
    if raw.problem is not None:
        return CheckedRecord(raw.index, raw.line, None, [raw.problem], raw.value, path, raw.offset)
    if fmt is None:  # no record could be read to tell the format: only syntax problems remain
        return CheckedRecord(raw.index, raw.line, None, [], raw.value, path, raw.offset)
    messages, found = to_messages(raw.value, fmt)
    problems = [Problem(path, raw.line, raw.index, f or None, m) for f, m in found]
    if messages is not None:
        key = hash(tuple((m["role"], m["content"]) for m in messages))
        first = seen.setdefault(key, (raw.index, raw.line))
        if first[0] != raw.index:
            where = f"record {first[0]}" + (f" (line {first[1]})" if first[1] else "")
            problems.append(Problem(path, raw.line, raw.index, None, f"duplicate of {where}", "warning"))
    return CheckedRecord(raw.index, raw.line, messages, problems, raw.value, path, raw.offset)


@dataclass
class CheckSummary:
    """Counts and problems of a check over one or more files."""

    formats: dict[str, str | None] = field(default_factory=dict)
    """Format of each file checked."""
    records: int = 0
    """Records read (usable or not)."""
    usable: int = 0
    """Records without errors."""
    errors: int = 0
    """Error problems (each stops training)."""
    warnings: int = 0
    """Warning problems."""
    turns: Counter = field(default_factory=Counter)
    """Usable records by number of user+assistant turns."""
    problems: list[Problem] = field(default_factory=list)
    """The first KEEP_PROBLEMS problems, in file order."""

    def add_problem(self, problem: Problem) -> None:
        """Count ``problem`` and keep it while fewer than KEEP_PROBLEMS are kept."""
        if problem.severity == "error":
            self.errors += 1
        else:
            self.warnings += 1
        if len(self.problems) < KEEP_PROBLEMS:
            self.problems.append(problem)

    def add(self, item: CheckedRecord | Problem) -> None:
        """Fold one item of :func:`check_file` into the summary."""
        if isinstance(item, Problem):
            self.add_problem(item)
            return
        self.records += 1
        for problem in item.problems:
            self.add_problem(problem)
        if item.messages is not None:
            self.usable += 1
            self.turns[sum(1 for m in item.messages if m["role"] != "system")] += 1

    @property
    def omitted(self) -> int:
        """Problems counted but not kept."""
        return self.errors + self.warnings - len(self.problems)

    def turn_stats(self) -> dict[str, float]:
        """Turns per usable record: min, mean and max (zeros when there is none)."""
        if not self.turns:
            return {"min": 0, "mean": 0.0, "max": 0}
        total = sum(n * c for n, c in self.turns.items())
        return {"min": min(self.turns), "mean": total / sum(self.turns.values()), "max": max(self.turns)}

    def to_dict(self) -> dict[str, Any]:
        """The summary as JSON-ready data (problems excluded; they are streamed one by one)."""
        return {"formats": self.formats, "records": self.records, "usable": self.usable,
                "errors": self.errors, "warnings": self.warnings, "turns": self.turn_stats()}


def check_paths(
    paths: list[str],
    fmt: str = "auto",
    on_record: Callable[[CheckedRecord], None] | None = None,
) -> CheckSummary:
    """Check every file of ``paths``; ``on_record`` sees each checked record (e.g. to keep messages)."""
    summary = CheckSummary()
    for path in paths:
        found = None
        for item in check_file(path, fmt):
            summary.add(item)
            if isinstance(item, CheckedRecord) and on_record is not None:
                on_record(item)
        try:
            found = detect_file_format(path, fmt)[0]
        except SourceError:
            pass
        summary.formats[path] = found if found in TRAINABLE or found in UNTRAINABLE else None
    return summary
