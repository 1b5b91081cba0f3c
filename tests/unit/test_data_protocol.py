"""The data service's schema: what the Reporter writes is what the schema names, and both readers survive bad lines."""

from __future__ import annotations

import io
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from engine.data.report import Reporter, token_stats
from engine.services.data_protocol import ERROR, MESSAGES, TOKEN_STATS
from tuitune.cli.data_check import readable_events
from tuitune.services import EngineProcesses

BAD = Path(__file__).resolve().parent.parent / "fixtures" / "bad_data"
ENGINE_OUTPUT = '{"type": "started", "paths": ["a"], "cutoff": 8}\n{"type": "chec\n{"type": "done", "errors": 0}\n'


def assert_follows_schema(message: dict[str, Any]) -> None:
    """``message`` has a known type and exactly the fields its TypedDict names."""
    assert set(message) == set(MESSAGES[message["type"]].__annotations__), message


@pytest.mark.parametrize("name", ["openai_unknown_role.jsonl", "syntax_error.jsonl", "duplicates.jsonl",
                                  "unknown_format.jsonl"])
def test_every_report_event_has_exactly_the_fields_the_schema_names(name: str) -> None:
    events: list[dict[str, Any]] = []
    Reporter([str(BAD / name)], "auto", 512, emit=events.append).run()
    assert [e["type"] for e in events][0] == "started" and events[-1]["type"] == "done"
    for event in events:
        assert_follows_schema(event)


def test_token_stats_event_follows_the_schema() -> None:
    assert_follows_schema({"type": TOKEN_STATS, **token_stats([3, 9], 8, truncated=1, dropped=0, trained=5)})


def test_the_screens_reader_turns_a_bad_line_into_an_error_and_reads_on() -> None:
    process = SimpleNamespace(stdout=io.StringIO(ENGINE_OUTPUT))
    events = list(EngineProcesses().events(process))
    assert [e["type"] for e in events] == ["started", ERROR, "done"]
    assert events[1]["id"] is None and "line 2: not JSON" in events[1]["message"]
    assert_follows_schema(events[1])


def test_data_check_says_a_bad_line_on_stderr_and_reads_on(capsys: pytest.CaptureFixture[str]) -> None:
    assert [e["type"] for e in readable_events(io.StringIO(ENGINE_OUTPUT))] == ["started", "done"]
    err = capsys.readouterr().err
    assert err.startswith("error: python -m engine data wrote a line that is not an event: line 2: not JSON")
