"""Structural checks of instruction data, record by record. Standard library only.

The app imports this module to list problems while the user browses a file, ``tuitune data
check`` prints them, and the engine runs the very same checks before training and refuses
with the same messages — so the three never disagree. Token-level checks (truncation,
records left with no trained token) need the tokenizer and live in :mod:`engine.data.encode`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from engine.data.formats import (
    LAYOUTS,
    Example,
    accepted_layouts,
    detect_format,
    printable,
    to_example,
    to_messages,
    to_prompt,
    wrong_kind,
)
from engine.data.problems import Problem, SourceError
from engine.data.source import RawRecord, iter_records
from engine.stages import DEFAULT_STAGE, STAGES

DETECT_SCAN = 20
"""Records looked at to recognise a file's format (the first recognisable one decides)."""
KEEP_PROBLEMS = 1000
"""Problems kept in a summary; the rest are counted."""
SHOWN_PROBLEMS = 3
"""Problems named in a refusal (its first line says how many there are)."""
FORMAT_HELP = ("expected instruction/output (alpaca), conversations of from/value (sharegpt) "
               "or messages of role/content (openai); or choose the format")
"""What an unrecognised SFT file should look like (other stages name their own layouts)."""


@dataclass
class CheckedRecord:
    """One record after checking: its chat messages when usable, and its problems."""

    index: int
    """0-based record index in its file."""
    line: int | None
    """1-based line where it starts (None in datasets folders)."""
    messages: list[dict[str, str]] | None
    """Chat messages (system/user/assistant), None when the record has errors. For pairs and kto records,
    the prompt followed by the chosen (kto: the only) answer; None for raw text."""
    problems: list[Problem]
    """Errors and warnings of this record."""
    raw: Any = None
    """The record as read, for displays."""
    file: str = ""
    """The file it came from, as the user named it."""
    offset: int | None = None
    """Where it starts in the file, for progress (see RawRecord.offset)."""
    example: Example | None = None
    """The record of a pairs, kto or text layout in one form (None for SFT records and records with errors)."""

    @property
    def usable(self) -> bool:
        """Whether the record has no error (training uses it)."""
        return self.messages is not None or self.example is not None


def detect_file_format(path: str, fmt: str = "auto",
                       stage: str | None = DEFAULT_STAGE) -> tuple[str | None, Problem | None]:
    """The layout of a file: ``fmt`` unless it is ``auto``, else recognised from its first records.

    Args:
        stage: the training stage the file is for; its layout must be of a kind the stage trains on
            (its ``reads`` in engine.stages). None accepts every layout (``tuitune data check`` without a stage).

    Returns:
        (layout, problem): layout is a name of LAYOUTS or None; problem is set when the file cannot be
        trained on by ``stage`` as it is (unknown layout, or data of another stage, naming what it accepts).
    """
    kinds = STAGES[stage].reads if stage else tuple(set(LAYOUTS.values()))
    if fmt != "auto":
        return fmt, None if LAYOUTS[fmt] in kinds else Problem(path, None, None, None, wrong_kind(fmt, stage))
    first: RawRecord | None = None
    for n, raw in enumerate(iter_records(path)):
        if n >= DETECT_SCAN:
            break
        if not isinstance(raw.value, dict):
            continue
        first = first or raw
        found = detect_format(raw.value)
        if found and LAYOUTS[found] not in kinds:
            return found, Problem(path, raw.line, raw.index, None, wrong_kind(found, stage))
        if found:
            return found, None
    if first is None:
        return None, None
    keys = printable(", ".join(list(first.value)[:8])) or "none"
    expected = FORMAT_HELP if kinds == ("sft",) else f"{accepted_layouts(stage)}; or choose data.format" if stage else \
        "expected instruction data, preference pairs, kto answers or raw text; or choose the format"
    return None, Problem(path, first.line, first.index, None,
                         f"cannot tell the format from the record's keys ({keys}): {expected}")


def layout_problem(path: str, fmt: str = "auto", stage: str | None = DEFAULT_STAGE) -> Problem | None:
    """Why ``path`` cannot be trained or evaluated on as a whole, from its first records, or None.

    The quick check commands make before they start a job (the job checks every record): a path
    that cannot be read, a layout that is unknown or not trainable, or a file without records.
    """
    try:
        found, problem = detect_file_format(path, fmt, stage)
    except SourceError as exc:
        return exc.problem
    if problem is None and found is None:
        return Problem(path, None, None, None, "no records")
    return problem


def check_file(path: str, fmt: str = "auto", stage: str | None = DEFAULT_STAGE) -> Iterator[CheckedRecord | Problem]:
    """Every record of ``path`` checked, preceded by any whole-file problem (then nothing else).

    Yields:
        A :class:`Problem` for a file that cannot be used as a whole (missing, unknown or
        untrainable format), otherwise one :class:`CheckedRecord` per record.
    """
    try:
        found, problem = detect_file_format(path, fmt, stage)
        if problem is not None:
            yield problem
            return
        seen: dict[int, tuple[int, int | None]] = {}  # content hash -> (record, line), not the record
        prompts = stage is not None and STAGES[stage].kind == "prompts"
        for raw in iter_records(path):
            yield _check(path, raw, found, seen, prompts)
    except SourceError as exc:
        yield exc.problem


def _check(path: str, raw: RawRecord, fmt: str | None, seen: dict[int, tuple[int, int | None]],
           prompts: bool = False) -> CheckedRecord:
    """One record checked in layout ``fmt``; ``prompts``: read as a prompt of an RL stage (see :func:`to_prompt`)."""
    if raw.problem is not None:
        return CheckedRecord(raw.index, raw.line, None, [raw.problem], raw.value, path, raw.offset)
    if fmt is None:  # no record could be read to tell the format: only syntax problems remain
        return CheckedRecord(raw.index, raw.line, None, [], raw.value, path, raw.offset)
    example = None
    if prompts or LAYOUTS[fmt] == "prompts":
        example, found = to_prompt(raw.value, fmt)
        messages = example.conversation() if example is not None else None
    elif LAYOUTS[fmt] == "sft":
        messages, found = to_messages(raw.value, fmt)
    else:
        example, found = to_example(raw.value, fmt)
        messages = example.conversation() if example is not None and example.kind != "text" else None
    problems = [Problem(path, raw.line, raw.index, f or None, m) for f, m in found]
    if messages is not None or example is not None:
        key = hash(_content_key(messages, example))
        first = seen.setdefault(key, (raw.index, raw.line))
        if first[0] != raw.index:
            where = f"record {first[0]}" + (f" (line {first[1]})" if first[1] else "")
            problems.append(Problem(path, raw.line, raw.index, None, f"duplicate of {where}", "warning"))
    return CheckedRecord(raw.index, raw.line, messages, problems, raw.value, path, raw.offset, example)


def _content_key(messages: list[dict[str, str]] | None, example: Example | None) -> tuple:
    """What two records must share to be duplicates."""
    turns = tuple((m["role"], m["content"]) for m in messages or ())
    return turns if example is None else (turns, example.rejected, example.label, example.text)


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
    labels: Counter = field(default_factory=Counter)
    """Usable kto records by label: desirable, undesirable."""
    prompts: int = 0
    """Usable records read as prompts (the stages that sample answers)."""
    references: int = 0
    """Of those, the ones with a reference answer."""

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
        if item.usable:
            self.usable += 1
        if item.messages is not None:
            self.turns[sum(1 for m in item.messages if m["role"] != "system")] += 1
        if item.example is not None and item.example.label is not None:
            self.labels["desirable" if item.example.label else "undesirable"] += 1
        if item.example is not None and item.example.kind == "prompts":
            self.prompts += 1
            self.references += item.example.chosen is not None

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
                "errors": self.errors, "warnings": self.warnings, "turns": self.turn_stats(),
                "labels": dict(self.labels),
                **({"prompts": {"records": self.prompts, "with_reference": self.references}} if self.prompts else {})}


def check_paths(
    paths: list[str],
    fmt: str = "auto",
    on_record: Callable[[CheckedRecord], None] | None = None,
    stage: str | None = DEFAULT_STAGE,
) -> CheckSummary:
    """Check every file of ``paths`` for ``stage``; ``on_record`` sees each checked record (e.g. to keep it)."""
    summary = CheckSummary()
    for path in paths:
        found = None
        for item in check_file(path, fmt, stage):
            summary.add(item)
            if isinstance(item, CheckedRecord) and on_record is not None:
                on_record(item)
        try:
            found = detect_file_format(path, fmt, stage)[0]
        except SourceError:
            pass
        summary.formats[path] = found if found in LAYOUTS else None
    return summary


def refusal_lines(paths: list[str], fmt: str = "auto", stage: str | None = DEFAULT_STAGE,
                  job: str = "training") -> list[str]:
    """Why ``job`` must not start on ``paths``, one line each, from every record checked as the job checks
    them (empty: it may): the one problem, located, or how many there are and the first few; a file
    without a single record, said as such once nothing else is wrong with it."""
    summary = check_paths(paths, fmt, stage=stage)
    if not summary.errors:
        return [f"data: {problem}" for path in paths
                if (problem := layout_problem(path, fmt, stage)) is not None]
    first = [f"data: {p}" for p in summary.problems if p.severity == "error"][:SHOWN_PROBLEMS]
    if summary.errors == 1:
        return first
    more = f" (and {summary.errors - len(first)} more: tuitune data check lists them)" \
        if summary.errors > len(first) else ""
    return [f"data: {summary.errors} problems {job} refuses{more}", *first]


def kto_balance_problem(paths: list[str], labels: Counter) -> Problem | None:
    """The error for kto data whose usable records are all desirable or all undesirable, else None.

    KTO weighs desirable answers up and undesirable ones down against each other; with only one
    kind there is nothing to weigh and TRL's loss degenerates.
    """
    if not labels or (labels["desirable"] and labels["undesirable"]):
        return None
    only = "desirable" if labels["desirable"] else "undesirable"
    other = "undesirable (label/kto_tag false)" if only == "desirable" else "desirable (label/kto_tag true)"
    return Problem(", ".join(paths), None, None, None,
                   f"every usable record is {only} ({labels[only]:,}): kto needs {other} examples too")
