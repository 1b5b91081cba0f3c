"""`python -m engine data` (report and serve) and `tuitune data check --model`: the same checks and the same
labels as training, spoken in the schema of :mod:`engine.services.data_protocol`."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from engine.config import DataSection
from engine.services.data_protocol import ENCODED, ERROR, MESSAGES, READY, EncodeRequest, Segment
from engine.services.jsonlines import dumps, read_messages

GOOD_FILE = Path(__file__).resolve().parent.parent / "fixtures" / "good_data" / "two_conversations.jsonl"
GOOD = [json.loads(line) for line in GOOD_FILE.read_text().splitlines()]


@pytest.fixture()
def good_file(tmp_path: Path) -> Path:
    path = tmp_path / "good.jsonl"
    path.write_bytes(GOOD_FILE.read_bytes())
    return path


def test_check_with_model_reports_tokens_and_dropped_records(good_file: Path, demo_model_dir: Path) -> None:
    result = subprocess.run([sys.executable, "-m", "tuitune", "data", "check", str(good_file), "--model",
                             str(demo_model_dir), "--cutoff", "80"], capture_output=True, text=True, timeout=120)
    lines = result.stdout.splitlines()
    assert result.returncode == 0, result.stderr
    assert any(f"warning {good_file}:2 record 1: no trained token left after truncation at cutoff_len 80" in line
               for line in lines)
    tokens = next(line for line in lines if line.startswith("tokens (cutoff 80)"))
    assert "truncated 1, dropped 1" in tokens
    assert lines[-1] == "0 errors, 1 warning"


def test_check_with_unloadable_model_exits_two(good_file: Path, tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, "-m", "tuitune", "data", "check", str(good_file), "--model",
                             str(tmp_path / "no-model")], capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and "cannot load the tokenizer" in result.stderr
    assert "Traceback" not in result.stderr


def test_served_record_view_split_equals_training_labels(good_file: Path, demo_model_dir: Path) -> None:
    from transformers import AutoTokenizer

    from engine.recipes.datasets import build_datasets

    cutoff = 40
    requests = [dumps(EncodeRequest(id=7, messages=GOOD[0]["messages"])).encode(), b"not json\n", b'{"messages": []}\n',
                b'{"id": 8, "messages": [{"role": "user", "content": "caf\xe9"}]}\n',
                dumps(EncodeRequest(id=9, messages=[{"role": "user"}])).encode(),
                dumps(EncodeRequest(id=10, messages=GOOD[1]["messages"])).encode()]
    process = subprocess.Popen([sys.executable, "-m", "engine", "data", "--serve", "--model", str(demo_model_dir),
                                "--cutoff", str(cutoff)], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        process.stdin.write(b"".join(requests))
        process.stdin.close()
        answers = list(read_messages(process.stdout))
    finally:
        process.wait(timeout=30)
    assert [(a["type"], a.get("id")) for a in answers] == [
        (READY, None), (ENCODED, 7), (ERROR, None), (ERROR, None), (ERROR, None), (ERROR, 9), (ENCODED, 10)]
    for answer in answers:  # every field named by the schema, and no other
        assert set(answer) == set(MESSAGES[answer["type"]].__annotations__), answer
        assert all(set(seg) == set(Segment.__annotations__) for seg in answer.get("segments", []))
    assert "line 2: not JSON" in answers[2]["message"] and 'line 3: no "id"' in answers[3]["message"]
    assert "line 4: not valid UTF-8" in answers[4]["message"] and "content" in answers[5]["message"]
    view = answers[1]
    built = build_datasets(DataSection(train=[str(good_file)], cutoff_len=cutoff), AutoTokenizer.from_pretrained(
        demo_model_dir), seed=0)
    row = built.train[0]
    assert view["id"] == 7 and view["truncated"] and view["full_length"] > cutoff
    assert view["ids"][:cutoff] == row["input_ids"]
    assert view["trained"][:cutoff] == [label != -100 for label in row["labels"]]
    assert sum(seg["tokens"] for seg in view["segments"]) == view["full_length"]
    assert "".join(seg["text"] for seg in view["segments"] if seg["trained"]) == (
        "I am Tuito.<|im_end|>Quite sure.<|im_end|>")
    assert [seg["cut"] for seg in view["segments"]][-1] is True


def test_a_line_over_the_limit_is_refused_at_once_and_the_service_ends_with_stdin(service,
                                                                                 tiny_model_dir: Path) -> None:
    encoder = service("data", "--serve", "--model", str(tiny_model_dir))
    assert encoder.replies(lambda m: True, timeout=120)[0]["type"] == READY
    huge = EncodeRequest(id=5, messages=[{"role": "user", "content": "x " * 25_000_000},  # 50 MB
                                         {"role": "assistant", "content": "y"}])
    started = time.monotonic()
    encoder.send(huge, EncodeRequest(id=6, messages=GOOD[0]["messages"]), {"id": 7, "text": 7},
                 {"id": 8, "messages": GOOD[0]["messages"], "rejected": [{"role": "judge", "content": "no"}]})
    replies = encoder.replies(lambda m: m["id"] == 8, timeout=60)
    assert time.monotonic() - started < 30, "the refusal took as long as encoding the line"
    assert [(m["type"], m["id"]) for m in replies] == [(ERROR, 5), (ENCODED, 6), (ERROR, 7), (ERROR, 8)]
    assert "line 1: longer than 4 MiB, the most a request may be" in replies[0]["message"]
    assert replies[2]["message"] == "encode request: text: expected a string, got number"
    assert replies[3]["message"] == ("encode request: rejected[0].role: unknown role 'judge'; allowed: system, user, "
                                     "assistant")
    assert encoder.close(timeout=30) == 0
