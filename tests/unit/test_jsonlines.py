"""The JSON-lines layer under every engine service: one message a line, a bad line reported, never raised."""

from __future__ import annotations

import io

import pytest

from engine.services.jsonlines import BadLine, dumps, read_messages, write_message

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
