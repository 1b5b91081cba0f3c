"""`tuitune data check` without a model (the structural report, in its own process) and the report's
figures; with a model, and the data service, are tests/engine/test_data_service.py."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from engine.services.jsonlines import PIPE_CLOSED
from tuitune.__main__ import main as tuitune_main

BAD = Path(__file__).resolve().parent.parent / "fixtures" / "bad_data"
GOOD_FILE = Path(__file__).resolve().parent.parent / "fixtures" / "good_data" / "two_conversations.jsonl"
"""Two conversations: one of two exchanges, one whose answer starts past a cutoff of 80 tokens."""


@pytest.fixture()
def good_file(tmp_path: Path) -> Path:
    path = tmp_path / "good.jsonl"
    path.write_bytes(GOOD_FILE.read_bytes())
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


def test_token_stats_percentiles_and_histogram() -> None:
    from engine.data.report import percentile, token_stats

    values = list(range(1, 21))
    assert percentile(values, 0.5) == 10 and percentile(values, 0.95) == 19 and percentile([], 0.5) == 0
    stats = token_stats([10, 64, 65, 500, 513, 900], cutoff=512, truncated=2, dropped=1, trained=40)
    assert [b["count"] for b in stats["histogram"]] == [2, 1, 0, 0, 0, 0, 0, 1, 2]
    assert stats["histogram"][0] == {"upto": 64, "count": 2} and stats["histogram"][-1] == {"upto": None, "count": 2}
    assert (stats["p50"], stats["max"], stats["records"]) == (65, 900, 6)
