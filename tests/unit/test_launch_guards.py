"""What `start_run` and `tuitune train` refuse before anything is started or written."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.config import RunConfig
from tuitune.__main__ import main
from tuitune.runs.launch import start_run


def test_a_folder_holding_other_files_is_not_taken_over(tmp_path: Path) -> None:
    (tmp_path / "adapter").mkdir()
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="not empty"):
        start_run(tmp_path, RunConfig())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["adapter", "notes.txt"]


def test_resume_refuses_flags_it_would_ignore(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["train", "--resume", "--run-dir", str(tmp_path), "--max-steps", "50"])
    assert code == 2
    assert "--max-steps cannot change it" in capsys.readouterr().err


def test_an_unwritable_runs_folder_is_an_error_message_not_a_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    code = main(["--runs-dir", str(blocker / "runs"), "train", "--detach"])
    assert code == 2
    assert capsys.readouterr().err.startswith("error: ")
