"""What can be wrong with data, located as precisely as the file allows. Standard library only.

Every check (structure, format, template, cutoff) reports a :class:`Problem`; ``tuitune data
check``, the Data screen and the trainer all show them with :func:`location`, so a problem
reads the same wherever it appears.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from typing import Any, Literal

Severity = Literal["error", "warning"]
SHOWN = 20
"""Problems written into a DataError's message (all are in ``.problems``)."""
HUB_PREFIX = "hf:"
"""Data named ``hf:ORG/NAME[:SPLIT]`` is a dataset on the Hugging Face Hub (:mod:`engine.data.hub`)."""
HUB_DEFAULT_SPLIT = "train"
"""The split read when ``hf:ORG/NAME`` names none."""
_HUB_WITHOUT_SPLIT = re.compile(r"^hf:[\w.-]+/[\w.-]+$", re.ASCII)
"""A Hub dataset named without its split (its problems name the split read)."""


def location(file: str, line: int | None = None, column: int | None = None, record: int | None = None,
             field: str | None = None) -> str:
    """``file:line:col record N field F``, leaving out what is unknown; a Hub dataset's place is its split and
    row: ``hf:org/name:train row 12 field output``."""
    hub = file.startswith(HUB_PREFIX)
    where = f"{file}:{HUB_DEFAULT_SPLIT}" if _HUB_WITHOUT_SPLIT.match(file) else file
    if line is not None:
        where += f":{line}" + (f":{column}" if column is not None else "")
    if record is not None:
        where += f" {'row' if hub else 'record'} {record}"
    if field:
        where += f" field {field}"
    return where


@dataclass(frozen=True)
class Problem:
    """One thing wrong with the data, located as precisely as the file allows."""

    file: str
    """The data file or folder (or ``hf:`` dataset), as the user named it."""
    line: int | None
    """1-based line in the file (None for datasets folders and whole-file problems)."""
    record: int | None
    """0-based record index in the file (the row number datasets would give it; a Hub dataset's row)."""
    field: str | None
    """Field path inside the record, such as ``messages[2].role``."""
    message: str
    """What is wrong, and where it helps, what is allowed."""
    severity: Severity = "error"
    """errors stop training; warnings (duplicates, truncation) are reported and allowed."""
    column: int | None = None
    """1-based column for JSON syntax and encoding errors."""

    def __str__(self) -> str:
        return f"{location(self.file, self.line, self.column, self.record, self.field)}: {self.message}"

    def to_dict(self) -> dict[str, Any]:
        """The problem as a JSON-ready dict (what ``python -m engine data`` streams)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Problem:
        """The inverse of :meth:`to_dict`; unknown keys are ignored."""
        return cls(**{k: data.get(k) for k in cls.__dataclass_fields__ if k in data})


class SourceError(Exception):
    """A data path that cannot be read at all; ``problem`` says why."""

    def __init__(self, problem: Problem) -> None:
        super().__init__(str(problem))
        self.problem = problem


class DataError(ValueError):
    """Data that cannot be trained on; ``problems`` locate every error (file, line, record, field)."""

    def __init__(self, problems: list[Problem], omitted: int = 0) -> None:
        self.problems = problems
        self.omitted = omitted
        lines = [str(p) for p in problems[:SHOWN]]
        more = len(problems) - SHOWN + omitted
        if more > 0:
            lines.append(f"… and {more} more problems (run `tuitune data check` for all)")
        super().__init__("\n".join(lines))
