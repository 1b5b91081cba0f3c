"""One attempt per folder, decided by the folder's lock, for training and for any other job."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from engine.config import RunConfig, write_config
from engine.locks import LOCKED, FolderLock, is_locked
from engine.protocol import JOB_FAILED, read_events
from tuitune.runs.launch import is_alive, read_pids, resume_run, wait_until_gone

REPO = Path(__file__).resolve().parents[2]
SLEEPER = f"{sys.executable} -c 'import time; time.sleep(60)'"


def supervise(folder: Path, *args: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    with open(folder / "engine.log", "ab") as log:
        return subprocess.Popen([sys.executable, "-m", "engine", "launch", *args], cwd=REPO, env=env,
                                stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True)


def wait(predicate, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_a_lock_is_exclusive_and_asking_about_it_takes_nothing(tmp_path: Path) -> None:
    assert not is_locked(tmp_path)
    first, second = FolderLock(tmp_path), FolderLock(tmp_path)
    assert first.acquire()
    assert is_locked(tmp_path) and is_locked(tmp_path)  # asking twice leaves it held
    assert not second.acquire(wait_s=0.1)
    first.release()
    assert not is_locked(tmp_path)
    assert second.acquire()
    second.release()


def test_a_second_supervisor_in_a_locked_folder_exits_without_touching_the_run(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    write_config(RunConfig(), run_dir / "config.yaml")
    first = supervise(run_dir, "--run-dir", str(run_dir), "--child-command", SLEEPER)
    try:
        wait(lambda: is_locked(run_dir) and read_pids(run_dir).get("trainer"))
        pids = read_pids(run_dir)
        second = supervise(run_dir, "--run-dir", str(run_dir), "--child-command", SLEEPER)
        assert second.wait(timeout=30) == LOCKED
        assert read_pids(run_dir) == pids and read_events(run_dir) == []
        with pytest.raises(RuntimeError, match="still running"):
            resume_run(run_dir)
    finally:
        os.killpg(first.pid, signal.SIGKILL)
        first.wait(timeout=30)


def test_an_orphaned_child_keeps_the_folder_locked_until_it_dies(tmp_path: Path) -> None:
    """The supervisor hands its lock to the child: killing the supervisor alone frees nothing."""
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    supervisor = supervise(run_dir, "--run-dir", str(run_dir), "--child-command", SLEEPER)
    wait(lambda: read_pids(run_dir).get("trainer"))
    child = read_pids(run_dir)["trainer"]
    try:
        os.kill(supervisor.pid, signal.SIGKILL)
        supervisor.wait(timeout=30)
        assert is_alive(run_dir)
    finally:
        os.kill(child, signal.SIGKILL)
    assert wait_until_gone(run_dir, timeout=30)


def test_any_job_gets_its_own_folder_lock_and_failure_event(tmp_path: Path) -> None:
    """A job other than training (evaluation, export) is supervised the same way in its own folder."""
    job_dir = tmp_path / "run" / "evals" / "first"
    job_dir.mkdir(parents=True)
    dies = f"{sys.executable} -c 'import os, signal; os.kill(os.getpid(), signal.SIGKILL)'"
    supervisor = supervise(job_dir, "--job", "eval", "--job-dir", str(job_dir), "--child-command", dies)
    assert supervisor.wait(timeout=60) == 137
    events = read_events(job_dir)
    assert [e["type"] for e in events] == [JOB_FAILED]
    assert events[0]["signal"] == "SIGKILL" and "eval job was killed" in events[0]["cause"]
    assert not is_locked(job_dir) and not (tmp_path / "run" / "events.jsonl").exists()
