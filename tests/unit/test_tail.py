"""EventTail reads by byte offset, holds back a torn last line and replays history from 0."""

from __future__ import annotations

import json
from pathlib import Path

from engine.protocol import EventWriter
from engine.protocol import read_log_tail
from tuitune.runs.tail import EventTail


def _line(seq: int, step: int) -> str:
    return json.dumps({"v": 1, "seq": seq, "t": 1.0 + seq, "type": "log", "step": step, "loss": 2.0}) + "\n"


def test_torn_last_line_is_held_back_until_complete(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    whole, torn = _line(1, 5), _line(2, 10)
    path.write_text(whole + torn[:17])
    tail = EventTail(tmp_path)
    assert [e["seq"] for e in tail.read()] == [1]
    assert tail.offset == len(whole.encode())
    assert tail.read() == []
    with open(path, "a") as file:
        file.write(torn[17:])
    assert [e["step"] for e in tail.read()] == [10]
    assert tail.bad_lines == []


def test_new_tail_replays_history_and_then_only_new_events(tmp_path: Path) -> None:
    with EventWriter(tmp_path) as writer:
        for step in range(1, 4):
            writer.emit("log", step=step, loss=1.0)
    first = EventTail(tmp_path)
    assert [e["step"] for e in first.read_all()] == [1, 2, 3]
    with EventWriter(tmp_path) as writer:
        writer.emit("log", step=4, loss=0.5)
    assert [e["seq"] for e in first.read()] == [4]
    assert [e["step"] for e in EventTail(tmp_path).read_all()] == [1, 2, 3, 4]


def test_history_larger_than_a_chunk_comes_in_batches(tmp_path: Path) -> None:
    (tmp_path / "events.jsonl").write_text("".join(_line(i, i) for i in range(1, 501)))
    tail = EventTail(tmp_path)
    batches = []
    while batch := tail.read(max_bytes=4096):
        batches.append(batch)
    assert len(batches) > 1
    assert [e["seq"] for b in batches for e in b] == list(range(1, 501))


def test_bad_line_is_reported_not_fatal_and_missing_file_reads_empty(tmp_path: Path) -> None:
    assert EventTail(tmp_path).read() == []
    (tmp_path / "events.jsonl").write_text(_line(1, 1) + "not json\n" + _line(2, 2))
    tail = EventTail(tmp_path)
    assert [e["seq"] for e in tail.read()] == [1, 2]
    assert tail.bad_lines == ["not json"]


def test_log_tail_keeps_last_lines_and_collapses_carriage_returns(tmp_path: Path) -> None:
    assert read_log_tail(tmp_path) == []
    lines = [f"line {i}" for i in range(100)] + ["10%\r50%\r100%", ""]
    (tmp_path / "engine.log").write_text("\n".join(lines))
    tail = read_log_tail(tmp_path, lines=3)
    assert tail == ["line 98", "line 99", "100%"]
    assert read_log_tail(tmp_path, lines=500, max_bytes=64)[0].startswith("line ")
