"""The JSON-lines layer under every engine service: one message a line, a bad line reported, never raised."""

from __future__ import annotations

import io
import json

import pytest

from engine.services.jsonlines import BadLine, dumps, leading_fields, read_messages, read_requests, write_message

GOOD_FIRST = b'{"type": "ready", "cutoff": 512}\n'
MALFORMED = [
    (b"Loading the tokenizer...\n", "not JSON (Expecting value)"),
    (b'[{"type": "ready"}]\n', "a JSON list, not an object"),
    (b'{"cutoff": 512}\n', 'no "type"'),
    (b'{"type": "error", "message": "caf\xe9"}\n', "not valid UTF-8"),
    (b"\n", "empty line"),
    (b'{"type": "encoded", "ids": [1, 2\n', "not JSON (Expecting ',' delimiter)"),
]
GOOD_LAST = b'{"type": "done", "errors": 0, "warnings": 0}'  # no newline: the stream ended


def stream_of(data: bytes, kind: str) -> io.IOBase:
    """``data`` as the reader meets it: raw bytes, or text decoded as the app's pipes decode it."""
    raw = io.BytesIO(data)
    return raw if kind == "bytes" else io.TextIOWrapper(raw, encoding="utf-8", errors="surrogateescape")


@pytest.mark.parametrize("kind", ["bytes", "text"])
def test_bad_lines_are_reported_in_place_and_reading_goes_on(kind: str) -> None:
    data = GOOD_FIRST + b"".join(line for line, _ in MALFORMED) + GOOD_LAST
    read = list(read_messages(stream_of(data, kind)))
    assert read[0] == {"type": "ready", "cutoff": 512}
    assert read[-1] == {"type": "done", "errors": 0, "warnings": 0}
    bad = read[1:-1]
    assert all(isinstance(b, BadLine) for b in bad)
    assert [(b.number, b.reason) for b in bad] == [(n, reason) for n, (_, reason) in enumerate(MALFORMED, 2)]
    assert bad[3].text == '{"type": "error", "message": "caf\\xe9"}'  # the bad byte shown, not lost


def test_a_bad_line_says_where_and_what_it_was() -> None:
    [bad] = read_messages(["x" * 200 + "\n"])
    assert str(bad) == f"line 1: not JSON (Expecting value): {'x' * 80 + '…'!r}"


def test_requests_are_keyed_by_what_the_service_asks_for() -> None:
    read = list(read_messages(['{"id": 1, "messages": []}\n', '{"messages": []}\n'], key="id"))
    assert read[0] == {"id": 1, "messages": []}
    assert isinstance(read[1], BadLine) and read[1].reason == 'no "id"'


def test_written_messages_are_one_flushed_line_each_and_read_back() -> None:
    class Flushes(io.StringIO):
        def __init__(self) -> None:
            super().__init__()
            self.flushed: list[str] = []

        def flush(self) -> None:
            self.flushed.append(self.getvalue())

    out = Flushes()
    messages = [{"type": "ready", "text": "line one\nline two ünï"}, {"type": "done"}]
    for message in messages:
        write_message(out, message)
    assert out.flushed == [dumps(messages[0]), dumps(messages[0]) + dumps(messages[1])]
    assert list(read_messages(io.StringIO(out.getvalue()))) == messages


def test_a_request_line_over_the_limit_is_refused_by_its_beginning_and_reading_goes_on() -> None:
    at_limit = b'{"type": "stop", "pad": "' + b"x" * 36 + b'"}\n'  # 64 bytes with its newline
    over = b'{"type": "generate", "id": 3, "messages": [{"role": "user", "content": "' + b"y" * 500 + b'"}]}\n'
    read = list(read_requests(io.BytesIO(at_limit + over + b'{"type": "stop"}\n'), max_bytes=len(at_limit)))
    assert read[0] == json.loads(at_limit) and read[2] == {"type": "stop"}
    bad = read[1]
    assert isinstance(bad, BadLine) and (bad.number, bad.reason) == (2, "longer than 64 B, the most a request may be")
    assert bad.start == {"type": "generate", "id": 3} and bad.request_id == 3 and bad.text.startswith('{"type"')


@pytest.mark.parametrize(("prefix", "fields"), [
    ('{"id": 3, "messages": [{"ro', {"id": 3}),
    ('{"id": 12', {}),  # the cut may fall inside a number: only a field followed by another is whole
    ('{"a": [1, {"b": "}"}], "id": 5, "t', {"a": [1, {"b": "}"}], "id": 5}),
    ("Loading...", {}),
])
def test_the_fields_a_cut_line_begins_with(prefix: str, fields: dict) -> None:
    assert leading_fields(prefix) == fields
