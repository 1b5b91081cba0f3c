"""EventTail reads by byte offset, holds back a torn last line and replays history from 0."""

from __future__ import annotations

import json
from pathlib import Path

from engine.protocol import EventWriter, read_log_tail
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


def test_skim_of_a_long_history_keeps_the_alerts_and_attempt_starts_from_its_middle(tmp_path: Path) -> None:
    from tuitune.runs.state import RunState, fold
    from tuitune.runs.tail import SKIM_HEAD_BYTES, SKIM_TAIL_BYTES

    def history(folder: Path, resumed_after_alert: bool) -> list[dict]:
        with EventWriter(folder) as writer:
            writer.emit("run_started", model={}, data={}, total_steps=30000)
            for step in range(1, 20001):
                writer.emit("log", step=step, loss=2.0, learning_rate=1e-4)
                if step == 8000:
                    writer.emit("alert", kind="spike", step=step, message="loss jumped", action="look")
                if step == 12000 and resumed_after_alert:
                    writer.emit("run_started", model={}, data={}, total_steps=30000, resumed_from_step=12000)
        assert (folder / "events.jsonl").stat().st_size > 2 * (SKIM_HEAD_BYTES + SKIM_TAIL_BYTES)
        return EventTail(folder).read_all()

    whole = history(tmp_path / "a", resumed_after_alert=False)
    skimmed = EventTail(tmp_path / "a").skim()
    seqs = [e["seq"] for e in skimmed]
    assert seqs == sorted(set(seqs)) and skimmed[-1] == whole[-1]
    assert [e["step"] for e in skimmed if e["type"] == "alert"] == [8000]
    assert len(skimmed) < len(whole) / 4  # the middle's logs were not parsed
    tail_start = next(i for i, e in enumerate(skimmed) if e["type"] == "log" and e["step"] > 8000)
    assert skimmed[tail_start]["seq"] + len(skimmed) - tail_start - 1 == whole[-1]["seq"]  # no tail event lost
    assert [a["kind"] for a in fold(RunState(name="a"), skimmed).alerts] == ["spike"]

    history(tmp_path / "b", resumed_after_alert=True)
    assert fold(RunState(name="b"), EventTail(tmp_path / "b").skim()).alerts == ()  # an earlier attempt's alert
