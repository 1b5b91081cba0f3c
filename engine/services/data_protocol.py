"""The protocol of ``python -m engine data``: every message it reads or writes. Standard library only.

The app may not import the ML stack, so it runs the data service in a subprocess and talks to
it in JSON lines (:mod:`engine.services.jsonlines`): one JSON object a line, flushed as it goes.
Both ends name the message types and fields through this module: the service
(:mod:`engine.services.data`) and :class:`engine.data.report.Reporter` write them, ``tuitune
data check`` and the Data screen read them.

Report mode, ``python -m engine data PATH… [--format F] [--stage S] [--model M] [--cutoff N]``, prints the
events of a data report (:mod:`engine.data.report_events`, re-exported here)::

    {"type": "started", "paths": [...], "cutoff": 512}
    {"type": "format", "path": "...", "format": "alpaca"}
    {"type": "problem", "file": ..., "line": ..., "column": ..., "record": ..., "field": ..., "message": ...,
     "severity": ...}
    {"type": "progress", "phase": "check"|"tokens", "records": 1200, "fraction": 0.4}
    {"type": "checked", "records": ..., "usable": ..., "errors": ..., "warnings": ..., "turns": {...}}
    {"type": "token_stats", "records": ..., "p50": ..., "p95": ..., "max": ..., "mean": ..., "cutoff": ...,
     "truncated": ..., "dropped": ..., "trained_tokens": ..., "histogram": [{"upto": 64, "count": 3}, ...]}
    {"type": "done", "errors": ..., "warnings": ...}

The structural pass comes first (problems stream before transformers is even imported); token
statistics follow only with ``--model``. Exit status: 1 when there are errors, 2 when the
tokenizer cannot be loaded (a ``failed`` event says why), 141 when the reader closed stdout early.

Serve mode, ``python -m engine data --serve --model M --cutoff N``, prints :class:`Ready`, then
answers each request line (:class:`EncodeRequest`, ``{"id": 1, "messages": [...]}``) on stdin
with :class:`Encoded` or, for a request it cannot encode (the field that is wrong named,
:func:`encode_problem`) or a line that is not a request, with :class:`Error`. A request line longer
than :data:`engine.services.jsonlines.MAX_REQUEST_BYTES` (4 MiB) is refused as soon as that much of
it has come, unread past it, with an :class:`Error` carrying the ``id`` it began with. It ends when
its stdin closes, once it has answered what it read. If the tokenizer cannot be loaded it prints
``failed`` and exits with 2. Both modes make labels with
:func:`engine.data.encode.encode_conversation`, as training does.

A new service gets a module like this one beside it (``chat_protocol.py``), and its ends read
and write through :mod:`engine.services.jsonlines` as these do.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypedDict

from engine.data.formats import json_type, messages_problem
from engine.data.report_events import (
    CHECKED,
    DONE,
    FAILED,
    FORMAT,
    PROBLEM,
    PROGRESS,
    REPORT_EVENTS,
    STARTED,
    TOKEN_STATS,
    Bin,
    Checked,
    Done,
    Failed,
    Format,
    ProblemEvent,
    Progress,
    Started,
    TokenStats,
    Turns,
)
from engine.services.jsonlines import BadLine

__all__ = [
    "CHECKED", "DONE", "ENCODED", "ERROR", "FAILED", "FORMAT", "MESSAGES", "PROBLEM", "PROGRESS", "READY",
    "REPORT_EVENTS", "REQUEST_KEY", "STARTED", "TOKEN_STATS", "Bin", "Checked", "Done", "EncodeRequest", "Encoded",
    "Error", "Failed", "Format", "ProblemEvent", "Progress", "Ready", "Segment", "Side", "Started", "TokenStats",
    "Turns",
    "bad_line_error", "encode_problem",
]

READY = "ready"
ENCODED = "encoded"
ERROR = "error"

REQUEST_KEY = "id"
"""The key every request line must have (requests carry no ``type``: the service takes one kind)."""


class EncodeRequest(TypedDict, total=False):
    """A request line on the service's stdin: encode one record as training would.

    Attributes:
        id: chosen by the app; the answer carries it back (required).
        messages: the record's turns, ``[{"role": ..., "content": ...}, ...]``; the service adds
            its ``--system-prompt`` when the record has no system turn. For a preference pair, the
            chosen conversation (prompt + chosen answer: ``CheckedRecord.messages``, or
            ``Example.conversation("chosen")``).
        rejected: a preference pair's rejected conversation (``Example.conversation("rejected")``):
            then only each side's last turn (the answer) is trained, and the answer's ``rejected``
            holds that side.
        answer_only: a kto answer: only the last turn is trained.
        text: a raw-text record (stage pt) instead of ``messages``: every token trained.
    """

    id: int
    messages: list[dict[str, str]]
    rejected: list[dict[str, str]]
    answer_only: bool
    text: str


class Ready(TypedDict):
    """Serve mode: the tokenizer is loaded and requests are welcome.

    Attributes:
        cutoff: the cutoff length in tokens.
        chat_template: whether the tokenizer has a chat template of its own.
    """

    type: str
    cutoff: int
    chat_template: bool


class Segment(TypedDict):
    """A run of tokens that are alike for display.

    Attributes:
        text: the decoded tokens.
        trained: whether training learns from them.
        cut: whether they lie past the cutoff.
        tokens: how many tokens.
    """

    text: str
    trained: bool
    cut: bool
    tokens: int


class Side(TypedDict):
    """One side of a record as tokens (the fields of :class:`Encoded` a pair has twice).

    Attributes: as in :class:`Encoded`.
    """

    ids: list[int]
    trained: list[bool]
    segments: list[Segment]
    full_length: int
    truncated: bool
    trained_tokens: int


class Encoded(TypedDict):
    """The answer to an :class:`EncodeRequest`: the whole record, with what the cutoff drops marked.

    Attributes:
        id: the request's id.
        ids: token ids of the whole record (past the cutoff too).
        trained: per token, whether training learns from it.
        segments: the record as display runs; their ``tokens`` add up to ``full_length``.
        full_length: tokens in the whole record.
        cutoff: the cutoff length.
        truncated: whether the cutoff drops tokens.
        trained_tokens: tokens trained on, after the cut.
        rejected: for a preference pair, its rejected side (:class:`Side`, cut at the same cutoff);
            None otherwise. The fields above are then the chosen side.
    """

    type: str
    id: int
    ids: list[int]
    trained: list[bool]
    segments: list[Segment]
    full_length: int
    cutoff: int
    truncated: bool
    trained_tokens: int
    rejected: Side | None


class Error(TypedDict):
    """Something said instead of an answer; the service (or its reader) carries on.

    Attributes:
        id: the request's id, or None when the line was no request at all (or the app's reader
            met a line from the service that was no message).
        message: what went wrong, for people.
    """

    type: str
    id: int | None
    message: str


MESSAGES: dict[str, Any] = {**REPORT_EVENTS, READY: Ready, ENCODED: Encoded, ERROR: Error}
"""Each message type the service writes and the TypedDict of its fields."""


def encode_problem(request: Mapping[str, Any]) -> str | None:
    """What is wrong with an :class:`EncodeRequest` as ``FIELD: what`` (``messages[0].content: expected a string,
    got number``), or None when it can be encoded as it stands."""
    if "text" in request:
        text = request["text"]
        return None if isinstance(text, str) else f"text: expected a string, got {json_type(text)}"
    if problem := messages_problem(request.get("messages")):
        return problem
    if request.get("rejected") is not None and (problem := messages_problem(request["rejected"], "rejected")):
        return problem
    answer_only = request.get("answer_only")
    if answer_only is not None and not isinstance(answer_only, bool):
        return f"answer_only: expected a boolean, got {json_type(answer_only)}"
    return None


def bad_line_error(bad: BadLine, sender: str) -> Error:
    """An :class:`Error` telling people that ``sender`` wrote ``bad`` (a line that is no message); it carries
    the request's id when a line too long to read began with one."""
    return Error(type=ERROR, id=bad.request_id, message=f"{sender} wrote a line that is not a message: {bad}")
