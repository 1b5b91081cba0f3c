"""The events of a data report, named once. Standard library only.

:class:`engine.data.report.Reporter` makes them; ``tuitune data check`` prints them and the Data
screen shows them, whether they come from a Reporter in the same process or over JSON lines from
``python -m engine data`` (whose whole protocol is :mod:`engine.services.data_protocol`). They
live here, under ``engine.data``, because the report is a data-layer thing that the service only
carries. Each event is a plain dict whose ``type`` is one of the constants below; its fields are
those of the TypedDict of that type. Fields may be added but never renamed.

In order: ``started``, one ``format`` per path, the structural pass (``problem`` and ``progress``
as they come, then ``checked``), the token pass with a tokenizer (``progress``, ``problem``,
``token_stats``, one ``verdict`` per check of the chat-template doctor), and ``done``; or ``failed`` in
place of the token pass and ``done``.
"""

from __future__ import annotations

from typing import Any, TypedDict

STARTED = "started"
FORMAT = "format"
PROBLEM = "problem"
PROGRESS = "progress"
CHECKED = "checked"
TOKEN_STATS = "token_stats"
DONE = "done"
FAILED = "failed"
VERDICT = "verdict"


class Started(TypedDict):
    """The report began.

    Attributes:
        paths: the data paths, as given.
        cutoff: the cutoff length in tokens the token pass measures against.
    """

    type: str
    paths: list[str]
    cutoff: int


class Format(TypedDict):
    """The format of one path, detected or chosen.

    Attributes:
        path: the data path.
        format: the layout (a name of :data:`engine.data.formats.LAYOUTS`: ``alpaca``, ``sharegpt``,
            ``openai``, ``alpaca_pairs``, ``sharegpt_pairs``, ``trl_pairs``, ``alpaca_kto``, ``sharegpt_kto``,
            ``trl_kto``, ``text``); None when it cannot be told.
    """

    type: str
    path: str
    format: str | None


class ProblemEvent(TypedDict):
    """One thing wrong with the data: the fields of :class:`engine.data.problems.Problem`.

    Attributes:
        file: the data file or folder.
        line: 1-based line in the file, or None.
        column: 1-based column for JSON syntax and encoding errors, or None.
        record: 0-based record index, or None.
        field: field path inside the record, such as ``messages[2].role``, or None.
        message: what is wrong.
        severity: ``error`` (stops training) or ``warning``.
    """

    type: str
    file: str
    line: int | None
    column: int | None
    record: int | None
    field: str | None
    message: str
    severity: str


class Progress(TypedDict):
    """How far a pass has gone, at most every 0.1 s.

    Attributes:
        phase: ``check`` (the structural pass) or ``tokens`` (the token pass).
        records: records seen in this pass so far.
        fraction: share of the input read, 0.0 to 1.0.
    """

    type: str
    phase: str
    records: int
    fraction: float


class Turns(TypedDict):
    """User and assistant turns per usable record: ``min``, ``max`` and ``mean``."""

    min: int
    max: int
    mean: float


class Checked(TypedDict):
    """The structural pass ended.

    Attributes:
        records: records read.
        usable: records that training would use.
        errors: errors found so far.
        warnings: warnings found so far.
        turns: turns per usable record (the prompt and chosen answer of a pair; none for raw text).
        labels: usable kto answers by label, ``{"desirable": N, "undesirable": M}``; empty for other data.
        prompts: usable records read as prompts (the stages that sample answers),
            ``{"records": N, "with_reference": M}``; empty for other stages.
    """

    type: str
    records: int
    usable: int
    errors: int
    warnings: int
    turns: Turns
    labels: dict[str, int]
    prompts: dict[str, int]


class Bin(TypedDict):
    """One histogram bin: ``count`` records of at most ``upto`` tokens (None: past the cutoff)."""

    upto: int | None
    count: int


class TokenStats(TypedDict):
    """The token pass ended: lengths as training encodes the records.

    Attributes:
        records: records measured.
        p50: median full length in tokens.
        p95: 95th percentile full length.
        max: longest full length.
        mean: mean full length.
        cutoff: the cutoff length.
        truncated: records longer than the cutoff.
        dropped: records left with no trained token after the cut (training skips them).
        trained_tokens: tokens trained on, after the cut.
        histogram: eight bins up to the cutoff, then one past it.
        sides: per part of the records, their own statistics (the same fields but ``histogram`` and
            ``sides``, lengths of that part alone, ``truncated``/``dropped``/``trained_tokens`` of it):
            ``prompt``, ``chosen``, ``rejected`` for preference pairs; ``desirable``, ``undesirable``
            (prompt + answer) for kto answers; empty for SFT and raw text. For pairs and kto the top-level
            lengths are prompt + answer (a pair's longer side) and ``trained_tokens`` counts every answer.
    """

    type: str
    records: int
    p50: int
    p95: int
    max: int
    mean: float
    cutoff: int
    truncated: int
    dropped: int
    trained_tokens: int
    histogram: list[Bin]
    sides: dict[str, Any]


class Done(TypedDict):
    """The report ended.

    Attributes:
        errors: errors in the data.
        warnings: warnings in the data.
    """

    type: str
    errors: int
    warnings: int


class Failed(TypedDict):
    """The work could not go on (the tokenizer cannot be loaded); the last event.

    Attributes:
        message: why, for people.
    """

    type: str
    message: str


class VerdictEvent(TypedDict):
    """One verdict of the chat-template doctor (:mod:`engine.data.template_doctor`) on the model's template and
    the data sampled, after ``token_stats``: the fields of :class:`engine.data.verdicts.Verdict`.

    Attributes:
        check: what was judged (``end_of_turn``, ``stop``, ``bos``, ``system``, ``roles``, ``multi_turn``,
            ``generation_prompt``, ``reasoning``, ``template``).
        severity: ``ok``, ``warning`` or ``error`` (an error counts in ``done``'s errors).
        message: what was found, in one line naming the token it speaks of.
        token: that token, or None.
        evidence: rendered text and token ids around the problem.
        fix: what to do.
    """

    type: str
    check: str
    severity: str
    message: str
    token: str | None
    evidence: str
    fix: str


REPORT_EVENTS: dict[str, Any] = {STARTED: Started, FORMAT: Format, PROBLEM: ProblemEvent, PROGRESS: Progress,
                                 CHECKED: Checked, TOKEN_STATS: TokenStats, VERDICT: VerdictEvent, DONE: Done,
                                 FAILED: Failed}
"""Each event type and the TypedDict of its fields."""
