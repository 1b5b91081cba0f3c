"""The settings file's ``notify`` section, what a notification says, and a webhook that refuses (engine.notify)."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import pytest

from engine.notify import send
from engine.notify.announce import run_facts
from engine.notify.settings import DEFAULT_EVENTS, load_notify, parse_notify
from tuitune.settings import load_settings


def test_the_notify_section_is_read_and_its_mistakes_named(tmp_path: Path) -> None:
    path = tmp_path / "settings.yaml"
    path.write_text("notify:\n  webhook: https://ntfy.sh/t\n  command: shutdown -h now\n"
                    "  events: [queue_empty, done]\n  on: [finished]\n", encoding="utf-8")
    notify, problems = load_notify(path)
    assert notify.webhook == "https://ntfy.sh/t" and notify.command == "shutdown -h now"
    assert notify.events == {"queue_empty"}
    assert any("events: done unknown" in p for p in problems), problems
    assert any("`on:` reads as true" in p for p in problems), problems
    assert load_settings(path).notify == notify  # the app reads the same section the engine reads


def test_nothing_is_sent_unless_a_webhook_or_command_is_set() -> None:
    notify, problems = parse_notify({"webhook": "ftp://x"})
    assert problems == ["notify.webhook: must be an http:// or https:// URL"]
    assert notify.events == set(DEFAULT_EVENTS) and not notify.wants("finished")
    assert parse_notify({"command": "true"})[0].wants("finished")
    assert not parse_notify({"command": "true"})[0].wants("alert")  # alerts are asked for by name


def test_a_run_end_says_its_step_loss_and_duration() -> None:
    attempt = [{"type": "run_started", "t": 100.0}, {"type": "log", "step": 3, "loss": 1.5, "t": 130.0}]
    end = {"type": "run_failed", "t": 165.0, "cause": "CUDA out of memory"}
    facts = run_facts(Path("/runs/r1"), end, attempt)
    assert facts | {"text": None} == facts | {
        "run": "r1", "event": "failed", "state": "failed", "step": 3, "loss": 1.5, "duration_s": 65.0,
        "cause": "CUDA out of memory", "text": None}
    assert facts["text"] == "tuitune: r1 failed at step 3, loss 1.5 after 1m05s: CUDA out of memory"


def test_an_end_before_the_first_step_says_so_not_step_none() -> None:
    attempt = [{"type": "run_started", "t": 100.0}]
    end = {"type": "run_failed", "t": 101.5, "cause": "out of memory"}
    facts = run_facts(Path("/runs/r1"), end, attempt)
    assert facts["step"] is None
    assert facts["text"] == "tuitune: r1 failed before the first step after 1s: out of memory"


def test_a_refusing_webhook_is_tried_again_then_given_up(monkeypatch: pytest.MonkeyPatch,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as closed:  # a port nothing listens on: every POST is refused
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    monkeypatch.setattr(send, "RETRY_WAIT_S", 0.01)
    began = time.monotonic()
    assert send.post(f"http://127.0.0.1:{port}/", {"event": "finished"}, tries=3, timeout=2.0) is False
    assert time.monotonic() - began < 5
    said = capsys.readouterr().out
    assert said.count("failed") == 3 and "not sent after 3 tries" in said


def test_an_alert_says_its_kind_and_message() -> None:
    attempt = [{"type": "run_started", "t": 10.0}, {"type": "log", "step": 7, "loss": 9.0, "t": 12.0}]
    alert = {"type": "alert", "t": 13.0, "kind": "spike", "message": "the loss jumped", "step": 7}
    facts = run_facts(Path("/runs/r2"), alert, attempt)
    assert (facts["event"], facts["state"], facts["alert"], facts["message"]) == ("alert", "running", "spike",
                                                                                  "the loss jumped")
    assert facts["text"] == "tuitune: r2: alert spike at step 7: the loss jumped"


def test_a_loss_that_is_not_a_number_is_null_in_the_body() -> None:
    import json

    assert json.loads(send.body({"event": "alert", "loss": float("nan"), "step": 3})) == {
        "event": "alert", "loss": None, "step": 3}
