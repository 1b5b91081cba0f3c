"""`python -m engine data` (report and serve) and `tuitune data check`: same checks, same labels as training,
spoken in the schema of :mod:`engine.services.data_protocol`."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from engine.config import DataSection
from engine.services.data_protocol import ENCODED, ERROR, MESSAGES, READY, EncodeRequest, Segment
from engine.services.jsonlines import PIPE_CLOSED, dumps, read_messages
from tuitune.__main__ import main as tuitune_main

BAD = Path(__file__).resolve().parent.parent / "fixtures" / "bad_data"
GOOD = [
    {"messages": [{"role": "user", "content": "Who are you?"}, {"role": "assistant", "content": "I am Tuito."},
                  {"role": "user", "content": "Sure?"}, {"role": "assistant", "content": "Quite sure."}]},
    {"messages": [{"role": "user", "content": "word " * 60}, {"role": "assistant", "content": "Late answer."}]},
]


@pytest.fixture()
def good_file(tmp_path: Path) -> Path:
    path = tmp_path / "good.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in GOOD))
    return path


def test_check_clean_file_exits_zero(good_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert tuitune_main(["data", "check", str(good_file)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out == [f"{good_file}: format openai", "records: 2 (2 usable); turns per record: min 2, mean 3.0, max 4",
                   "0 errors, 0 warnings"]


def test_check_bad_file_exits_one_with_located_problem(capsys: pytest.CaptureFixture[str]) -> None:
    path = BAD / "openai_unknown_role.jsonl"
    assert tuitune_main(["data", "check", str(path)]) == 1
    out = capsys.readouterr().out
    assert (f"error   {path}:14 record 13 field messages[2].role: unknown role 'bot'; allowed: system, user, "
            "assistant") in out.splitlines()
    assert out.splitlines()[-1] == "1 error, 0 warnings"


def test_check_format_override(good_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert tuitune_main(["data", "check", str(good_file), "--format", "alpaca"]) == 1
    assert f"error   {good_file}:1 record 0 field instruction: missing field" in capsys.readouterr().out


def test_check_piped_into_a_reader_that_leaves_early_ends_quietly(tmp_path: Path) -> None:
    """``tuitune data check FILE | head -1``: far more output than a pipe holds, and no traceback."""
    folder = tmp_path.joinpath(*["d" * 200] * 5)  # every problem line names the file: 200 lines > 200 KB
    folder.mkdir(parents=True)
    (folder / "bad.jsonl").write_text("not json\n" * 300)
    process = subprocess.Popen([sys.executable, "-m", "tuitune", "data", "check", str(folder / "bad.jsonl")],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert process.stdout.readline().endswith(b"format unknown\n")
    process.stdout.close()
    stderr = process.stderr.read().decode()
    assert process.wait(timeout=30) == PIPE_CLOSED and stderr == ""


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
    assert "".join(seg["text"] for seg in view["segments"] if seg["trained"]) == "I am Tuito.<|im_end|>Quite sure.<|im_end|>"
    assert [seg["cut"] for seg in view["segments"]][-1] is True


def test_token_stats_percentiles_and_histogram() -> None:
    from engine.data.report import percentile, token_stats

    values = list(range(1, 21))
    assert percentile(values, 0.5) == 10 and percentile(values, 0.95) == 19 and percentile([], 0.5) == 0
    stats = token_stats([10, 64, 65, 500, 513, 900], cutoff=512, truncated=2, dropped=1, trained=40)
    assert [b["count"] for b in stats["histogram"]] == [2, 1, 0, 0, 0, 0, 0, 1, 2]
    assert stats["histogram"][0] == {"upto": 64, "count": 2} and stats["histogram"][-1] == {"upto": None, "count": 2}
    assert (stats["p50"], stats["max"], stats["records"]) == (65, 900, 6)
