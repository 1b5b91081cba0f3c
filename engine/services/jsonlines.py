"""JSON lines: how the engine's services and the app talk. Standard library only.

A message is one JSON object on one line, written whole and flushed at once, so the other end
can act on it as it arrives. A service's messages carry a ``type`` naming what they are; each
service lists its types and their fields in its own schema module (``data_protocol`` for
``python -m engine data``).

Reading never raises on what the other end printed: a line that is not a JSON object, lacks the
key that says what it is, or is not valid UTF-8 comes back as a :class:`BadLine` beside the good
messages, so the reader can say so and carry on. Give :func:`read_messages` bytes, or text decoded
with ``errors="surrogateescape"`` (a strict decoder raises on the first bad byte, before the
reader sees the line).

A service reads its requests with :func:`read_requests`, which never holds more than
:data:`MAX_REQUEST_BYTES` of a line: a longer one is a :class:`BadLine` as soon as that much of
it has come, carrying the fields it began with (its ``id``) so that the refusal can name the
request, and the rest of it is skipped unread.
"""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, BinaryIO, TextIO

from engine.units import fmt_bytes

Message = dict[str, Any]
"""One decoded message: a JSON object."""

SHOWN_CHARS = 80
"""Characters of a bad line quoted when it is shown."""

PIPE_CLOSED = 141
"""Exit status when stdout's reader left early: 128 + SIGPIPE, what a shell shows for ``cat``."""

MAX_REQUEST_BYTES = 4 * 1024**2
"""The longest request line a service reads, newline included. It bounds the work one request can cost
(tokenising 4 MiB takes a few seconds) and the memory its reading takes; a 1 MB question fits."""

SKIP_CHUNK = 1024**2
"""Bytes read at a time while the rest of a line too long to read is skipped."""


@dataclass(frozen=True)
class BadLine:
    """A line that is not a message, handed to the reader instead of an exception.

    Attributes:
        number: 1-based line number in the stream.
        reason: what is wrong, e.g. ``not JSON (Expecting value)`` or ``no "type"``.
        text: the line without its newline; bytes that are not UTF-8 shown as ``\\xNN``. Of a line
            too long to read, only its beginning.
        start: of a line too long to read, the top-level fields it began with that were whole within
            the part read (``{"type": "generate", "id": 3}``); empty for any other bad line.
    """

    number: int
    reason: str
    text: str
    start: Mapping[str, Any] = field(default_factory=dict)

    @property
    def request_id(self) -> int | None:
        """The ``id`` a line too long to read began with, for the refusal to carry (None for any other)."""
        return request_id(self.start)

    def __str__(self) -> str:
        shown = self.text if len(self.text) <= SHOWN_CHARS else self.text[:SHOWN_CHARS] + "…"
        return f"line {self.number}: {self.reason}: {shown!r}"


def request_id(request: Mapping[str, Any]) -> int | None:
    """The ``id`` of a request, which its reply carries back, when it is one: a whole number (not a boolean)."""
    value = request.get("id")
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def dumps(message: Mapping[str, Any]) -> str:
    """``message`` as one line of JSON, newline included."""
    return json.dumps(message, ensure_ascii=False) + "\n"


def write_message(stream: TextIO, message: Mapping[str, Any]) -> None:
    """Write ``message`` as one line and flush it (the other end reads as we go)."""
    stream.write(dumps(message))
    stream.flush()


def parse_line(line: str | bytes, number: int = 1, key: str = "type") -> Message | BadLine:
    """One line as a message, or a :class:`BadLine` saying why it is not one.

    Args:
        line: the line, with or without its newline.
        number: its 1-based line number, for the report.
        key: the key every message must have (``type`` for what a service says).
    """
    try:
        text = line.decode("utf-8") if isinstance(line, bytes) else line
        text.encode("utf-8")  # text decoded with surrogateescape hides bad bytes as lone surrogates
    except UnicodeError:
        return BadLine(number, "not valid UTF-8", _shown(line))
    text = text.rstrip("\r\n")
    if not text.strip():
        return BadLine(number, "empty line", text)
    try:
        message = json.loads(text)
    except (ValueError, RecursionError) as exc:  # RecursionError: nesting deeper than the parser goes
        return BadLine(number, f"not JSON ({getattr(exc, 'msg', exc)})", text)
    if not isinstance(message, dict):
        return BadLine(number, f"a JSON {type(message).__name__}, not an object", text)
    if key not in message:
        return BadLine(number, f'no "{key}"', text)
    return message


def read_messages(lines: Iterable[str | bytes], key: str = "type") -> Iterator[Message | BadLine]:
    """Every line of ``lines`` (a stream, say) as a message or a :class:`BadLine`, until it ends."""
    for number, line in enumerate(lines, 1):
        yield parse_line(line, number, key)


def read_requests(stream: BinaryIO, key: str = "type",
                  max_bytes: int = MAX_REQUEST_BYTES) -> Iterator[Message | BadLine]:
    """Every line of the binary ``stream`` as a message or a :class:`BadLine`, until it ends, holding at most
    ``max_bytes`` of a line: a longer one comes back as a :class:`BadLine` as soon as that much has been
    read (what a service answers at once), and the rest of it is skipped when the next line is asked for."""
    number = 0
    while line := stream.readline(max_bytes + 1):
        number += 1
        if len(line) <= max_bytes or line.endswith(b"\n"):
            yield parse_line(line, number, key)
            continue
        prefix = line.decode("utf-8", "replace")
        yield BadLine(number, f"longer than {fmt_bytes(max_bytes)}, the most a request may be",
                      prefix[:2 * SHOWN_CHARS], leading_fields(prefix))
        while (rest := stream.readline(SKIP_CHUNK)) and not rest.endswith(b"\n"):
            pass


def leading_fields(prefix: str) -> dict[str, Any]:
    """The top-level fields a JSON object cut short begins with, as far as each is whole
    (``'{"id": 3, "messages": [{"ro'`` gives ``{"id": 3}``); empty when it is no object."""
    decoder = json.JSONDecoder()
    fields: dict[str, Any] = {}
    at = _SEPARATOR["{"].match(prefix)
    try:
        while at is not None:
            key, end = decoder.raw_decode(prefix, at.end())
            colon = _SEPARATOR[":"].match(prefix, end)
            if not isinstance(key, str) or colon is None:
                break
            value, end = decoder.raw_decode(prefix, colon.end())
            at = _SEPARATOR[","].match(prefix, end)
            if at is not None:  # whole only when another field follows: the cut may fall inside a number
                fields[key] = value
    except (ValueError, RecursionError):  # the field the line was cut in
        pass
    return fields


_SEPARATOR = {char: re.compile(rf"\s*{re.escape(char)}\s*") for char in "{:,"}


def discard_stdout() -> None:
    """After a ``BrokenPipeError`` on stdout (``| head`` left): send the rest to /dev/null.

    Python flushes stdout again at exit and would print a second error there; this is the
    remedy the Python docs give (``signal`` module, "Note on SIGPIPE").
    """
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


def _shown(line: str | bytes) -> str:
    """A line that is not UTF-8, printable: bad bytes as ``\\xNN``, newline dropped."""
    try:
        raw = line if isinstance(line, bytes) else line.encode("utf-8", "surrogateescape")
    except UnicodeError:  # a lone surrogate that no bad byte made
        raw = line.encode("utf-8", "backslashreplace")
    return raw.rstrip(b"\r\n").decode("utf-8", "backslashreplace")
