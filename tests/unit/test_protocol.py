"""The event stream: round trip, sequence numbers across writers, torn last lines."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from engine.protocol import (
    EVENT_FIELDS,
    EVENTS_FILE,
    EventFieldError,
    EventWriter,
    last_seq,
    read_events,
    read_events_from,
    terminal_event,
)


def test_round_trip_keeps_fields_and_numbers_events(tmp_path: Path) -> None:
    with EventWriter(tmp_path) as writer:
        writer.emit("run_started", run_name="r", total_steps=10)
        writer.emit("log", step=1, loss=2.5, lr=1e-4)
    events = read_events(tmp_path)
    assert [(e["seq"], e["type"]) for e in events] == [(1, "run_started"), (2, "log")]
    assert events[1]["loss"] == 2.5 and events[0]["v"] == 1


def test_a_second_writer_continues_the_sequence(tmp_path: Path) -> None:
    with EventWriter(tmp_path) as first:
        first.emit("run_started")
    with EventWriter(tmp_path) as second:
        event = second.emit("run_failed", cause="boom")
    assert event["seq"] == 2 and last_seq(tmp_path / EVENTS_FILE) == 2


def test_unknown_type_is_refused(tmp_path: Path) -> None:
    with EventWriter(tmp_path) as writer, pytest.raises(ValueError, match="unknown event type"):
        writer.emit("lgo", step=1)


def test_a_field_of_the_wrong_type_is_refused_by_the_writer_and_nothing_is_written(tmp_path: Path) -> None:
    """The field types are declared once (engine.protocol.EVENT_FIELDS): writers built dicts by hand and only the
    app's reader knew them, so a writer could emit a step as text and the dashboard dropped it unseen."""
    with EventWriter(tmp_path) as writer:
        with pytest.raises(EventFieldError, match=r"log event: wrong type for log\.step"):
            writer.emit("log", step="3", loss=1.0)
        with pytest.raises(EventFieldError, match=r"system\.gpus\[0\]\.index, system\.gpus\[1\]"):
            writer.emit("system", gpus=[{"index": "0"}, 7], rss_bytes=1)
        with pytest.raises(EventFieldError, match=r"run_stopped\.killed"):
            writer.emit("run_stopped", step=3, killed="yes")
        with pytest.raises(EventFieldError, match=r"samples\.samples\[0\]\.rewards\.exact_match"):
            writer.emit("samples", step=1, samples=[{"prompt": "p", "rewards": {"exact_match": "high"}}])
        event = writer.emit("log", step=3, loss=1.0, metrics={"rewards/margins": 0.5}, tokens_per_s=None)
    assert [e["seq"] for e in read_events(tmp_path)] == [event["seq"]] == [1]


def test_every_event_type_is_described_in_the_run_folder_contract() -> None:
    contract = (Path(__file__).resolve().parents[2] / "docs" / "run-folder.md").read_text(encoding="utf-8")
    assert [kind for kind in EVENT_FIELDS if f"| `{kind}`" not in contract and f"`{kind}`, " not in contract] == []


def test_torn_last_line_is_held_back_until_complete(tmp_path: Path) -> None:
    path = tmp_path / EVENTS_FILE
    whole = json.dumps({"type": "log", "step": 1}) + "\n"
    torn = json.dumps({"type": "log", "step": 2})
    path.write_text(whole + torn[:10])
    first = read_events_from(path)
    assert [e["step"] for e in first.events] == [1] and first.offset == len(whole)
    path.write_text(whole + torn + "\n")
    second = read_events_from(path, first.offset)
    assert [e["step"] for e in second.events] == [2] and second.bad_lines == []


def test_garbage_lines_are_reported_not_fatal(tmp_path: Path) -> None:
    path = tmp_path / EVENTS_FILE
    path.write_text('not json\n[1, 2]\n{"type": "log", "step": 3}\n')
    result = read_events_from(path)
    assert [e["step"] for e in result.events] == [3]
    assert result.bad_lines == ["not json", "[1, 2]"]


def test_missing_file_reads_as_nothing(tmp_path: Path) -> None:
    assert read_events_from(tmp_path / EVENTS_FILE, 5).events == []


def test_terminal_event_belongs_to_the_latest_start() -> None:
    stopped = {"type": "run_stopped", "step": 4}
    assert terminal_event([{"type": "run_started"}, {"type": "log"}, stopped]) is stopped
    assert terminal_event([{"type": "run_started"}, stopped, {"type": "run_started"}, {"type": "log"}]) is None


def test_non_json_values_are_written_as_plain_json(tmp_path: Path) -> None:
    with EventWriter(tmp_path) as writer:
        writer.emit("checkpoint", step=1, path=tmp_path / "checkpoints")
    assert read_events(tmp_path)[0]["path"] == str(tmp_path / "checkpoints")


def test_nan_and_infinity_are_written_as_null_not_invalid_json(tmp_path: Path) -> None:
    with EventWriter(tmp_path) as writer:
        writer.emit("log", loss=float("nan"), extra={"grad_norm": float("inf")})
    [line] = (tmp_path / EVENTS_FILE).read_text().splitlines()
    event = json.loads(line)
    assert event["loss"] is None and event["extra"]["grad_norm"] is None


def test_a_writer_after_a_torn_line_starts_on_a_line_of_its_own(tmp_path: Path) -> None:
    """A writer that died mid-line must not swallow the next writer's event (the supervisor's run_failed)."""
    (tmp_path / EVENTS_FILE).write_text('{"seq": 1, "type": "run_started"}\n{"seq": 2, "type": "lo')
    with EventWriter(tmp_path) as writer:
        writer.emit("run_failed", cause="killed")
    result = read_events_from(tmp_path / EVENTS_FILE)
    assert [e["type"] for e in result.events] == ["run_started", "run_failed"]
    assert result.bad_lines == ['{"seq": 2, "type": "lo']


def test_two_writers_at_once_keep_the_sequence_unique(tmp_path: Path) -> None:
    """The supervisor writes paused/alert events while the trainer's writer is open."""
    trainer = EventWriter(tmp_path)
    trainer.emit("run_started")
    with EventWriter(tmp_path) as supervisor:
        assert supervisor.emit("paused")["seq"] == 2
    assert trainer.emit("log", step=1)["seq"] == 3
    with EventWriter(tmp_path) as supervisor:
        supervisor.emit("continued")
    trainer.emit("log", step=2)
    trainer.close()
    seqs = [e["seq"] for e in read_events(tmp_path)]
    assert seqs == [1, 2, 3, 4, 5]
