"""Right after a resume, pids.json names the new supervisor, never the previous attempt's."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest

from engine.config import RunConfig, write_config
from engine.protocol import PIDS_FILE
from tuitune.runs.launch import is_alive, read_pids, resume_run


def test_resume_names_the_new_supervisor_at_once_and_refuses_a_second_resume(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    write_config(RunConfig(), run_dir / "config.yaml")
    (run_dir / PIDS_FILE).write_text(json.dumps({"supervisor": 999_999, "trainer": 999_998, "pgid": 999_999}))

    pid = resume_run(run_dir)
    try:
        assert read_pids(run_dir)["supervisor"] == pid
        assert is_alive(run_dir)
        with pytest.raises(RuntimeError, match="still running"):
            resume_run(run_dir)
    finally:
        os.killpg(pid, signal.SIGKILL)
