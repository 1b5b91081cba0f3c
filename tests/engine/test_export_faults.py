"""Exports under faults, with the real command line and engine processes on a tiny trained run: two exports to one
destination, an export into the run's own folders, a destination that is a file or read-only, and a truncated
adapter. Each is refused before any work starts, in one line naming what and where, with exit status 2."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import yaml

from engine.protocol import read_events
from tuitune.runs.launch import read_pids, start_job, wait_until_gone

REPO = Path(__file__).resolve().parents[2]
BUSY = "is being written by another export; wait for it to end or choose another destination"


@pytest.fixture(scope="module")
def runs(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A runs folder holding ``tiny``: the tiny model trained 2 steps, with its adapter."""
    root = tmp_path_factory.mktemp("export-faults") / "runs"
    run_dir = root / "tiny"
    run_dir.mkdir(parents=True)
    data = root.parent / "tiny.jsonl"
    data.write_text('{"messages": [{"role": "user", "content": "Say hello."}, '
                    '{"role": "assistant", "content": "Hello there!"}]}\n' * 4, encoding="utf-8")
    (run_dir / "config.yaml").write_text(yaml.safe_dump({
        "model": {"name_or_path": str(tiny_model_dir)}, "data": {"train": [str(data)], "cutoff_len": 64},
        "train": {"max_steps": 2, "batch_size": 2, "logging_steps": 1, "save_steps": 100, "warmup_ratio": 0.0}}))
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    with open(run_dir / "engine.log", "ab") as log:
        subprocess.run([sys.executable, "-m", "engine", "launch", "--run-dir", str(run_dir)], cwd=REPO, env=env,
                       stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True, timeout=600)
    assert read_events(run_dir)[-1]["type"] == "run_finished", (run_dir / "engine.log").read_text()[-3000:]
    return root


def refused(proc: subprocess.Popen[str]) -> str:
    """The one line a refused export printed; fails unless it exited 2 with exactly one line on stderr."""
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 2 and len(err.strip().splitlines()) == 1 and not out, (proc.returncode, out, err)
    return err.strip()


def test_two_exports_to_one_destination_at_once_one_is_refused_at_once(runs: Path, tmp_path: Path, cli) -> None:
    from gguf import GGUFReader

    run_dir = runs / "tiny"
    destination = tmp_path / "served"
    pair = [cli("export", "tiny", "--gguf", "f16", "--to", str(destination), "--name", name, runs=runs)
            for name in ("a", "b")]
    ended = [(proc.communicate(timeout=600), proc.returncode) for proc in pair]
    codes = sorted(code for _, code in ended)
    assert codes == [0, 2], ended
    (_, err), _ = next(item for item in ended if item[1] == 2)
    assert err.strip() == f"error: {destination} {BUSY}", ended
    assert len(GGUFReader(destination / "tiny-f16.gguf").tensors) == 20  # whole, and written once
    ends = [read_events(job)[-1]["type"] for job in (run_dir / "exports" / "a", run_dir / "exports" / "b")
            if job.exists()]
    assert ends.count("job_finished") == 1 and set(ends) <= {"job_finished", "job_failed"}, ends

    # One export holds a destination while it lives (here paused before it wrote anything): another to the
    # same folder is refused by the command line before any job starts, and the first one then finishes.
    destination = tmp_path / "shelf"
    first = cli("export", "tiny", "--gguf", "q8_0", "--to", str(destination), "--name", "first", runs=runs)
    job = run_dir / "exports" / "first"
    try:
        deadline = time.monotonic() + 120
        while not (child := read_pids(job).get("trainer")):
            assert first.poll() is None and time.monotonic() < deadline, first.communicate()
            time.sleep(0.02)
        os.kill(child, signal.SIGSTOP)
        second = cli("export", "tiny", "--merged", "--to", str(destination), "--name", "second", runs=runs)
        assert refused(second) == f"error: {destination} {BUSY}"
        assert not (run_dir / "exports" / "second").exists()
        os.kill(child, signal.SIGCONT)
        out, err = first.communicate(timeout=600)
    finally:
        if first.poll() is None:
            first.kill()
    assert first.returncode == 0, err[-3000:]
    assert not (destination / "merged").exists() and (destination / "tiny-q8_0.gguf").is_file()


@pytest.mark.parametrize("inside", ["adapter/x", "checkpoints", ".", "logs/new"])
def test_an_export_into_the_runs_own_folders_is_refused_before_it_starts(runs: Path, cli, inside: str) -> None:
    run_dir = runs / "tiny"
    before = sorted(str(p.relative_to(run_dir)) for p in run_dir.rglob("*") if "exports" not in p.parts)
    destination = (run_dir / inside).resolve()
    line = refused(cli("export", "tiny", "--gguf", "f16", "--to", str(destination), "--name", "inside", runs=runs))
    assert line == (f"error: {destination} is inside the run {run_dir}, beside its adapter and checkpoints: "
                    f"exports go outside the run or into {run_dir / 'exports'}")
    assert sorted(str(p.relative_to(run_dir)) for p in run_dir.rglob("*") if "exports" not in p.parts) == before
    assert not (run_dir / "exports" / "inside").exists()


def test_an_export_into_the_runs_exports_folder_is_written(runs: Path, cli) -> None:
    run_dir = runs / "tiny"
    proc = cli("export", "tiny", "--gguf", "f16", "--to", str(run_dir / "exports" / "served"), "--name", "shelved",
               runs=runs)
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err[-3000:]
    assert (run_dir / "exports" / "served" / "tiny-f16.gguf").is_file()


@contextmanager
def read_only(folder: Path) -> Iterator[None]:
    """``folder`` made unwritable to this process: no write bits, and immutable for root, whom they do not stop."""
    folder.chmod(0o555)
    immutable = os.access(folder, os.W_OK)
    if immutable:
        subprocess.run(["chattr", "+i", str(folder)], check=True)
    try:
        assert not os.access(folder, os.W_OK)
        yield
    finally:
        if immutable:
            subprocess.run(["chattr", "-i", str(folder)], check=True)
        folder.chmod(0o755)


def test_a_destination_that_is_a_file_is_refused_before_it_starts(runs: Path, tmp_path: Path, cli) -> None:
    a_file = tmp_path / "model.gguf"
    a_file.write_text("the user's")
    line = refused(cli("export", "tiny", "--merged", "--to", str(a_file), "--name", "file", runs=runs))
    assert line == f"error: {a_file} is a file, not a folder: exports go into a folder; choose another destination"
    line = refused(cli("export", "tiny", "--merged", "--to", str(a_file / "sub"), "--name", "file", runs=runs))
    assert line == f"error: {a_file} is a file, not a folder: exports go into a folder; choose another destination"
    assert a_file.read_text() == "the user's"
    assert not (runs / "tiny" / "exports" / "file").exists()


def test_a_read_only_destination_is_refused_before_it_starts(runs: Path, tmp_path: Path, cli) -> None:
    locked_up = tmp_path / "read-only"
    locked_up.mkdir()
    with read_only(locked_up):
        line = refused(cli("export", "tiny", "--merged", "--to", str(locked_up), "--name", "ro", runs=runs))
        assert line == f"error: {locked_up} is read-only to this user; choose another destination"
        line = refused(cli("export", "tiny", "--merged", "--to", str(locked_up / "new"), "--name", "ro", runs=runs))
        assert line == (f"error: {locked_up / 'new'} cannot be made: {locked_up} is read-only to this user; "
                        "choose another destination")
    assert not list(locked_up.iterdir()) and not (runs / "tiny" / "exports" / "ro").exists()


@pytest.mark.parametrize("damage", ["cut short", "header"])
def test_a_truncated_adapter_is_refused_before_the_model_loads_naming_the_file(runs: Path, cli, damage: str) -> None:
    run_dir = runs / f"damaged-{damage.replace(' ', '-')}"
    shutil.copytree(runs / "tiny", run_dir, ignore=shutil.ignore_patterns("exports"))
    weights = run_dir / "adapter" / "adapter_model.safetensors"
    whole = weights.read_bytes()
    weights.write_bytes(whole[:len(whole) // 2] if damage == "cut short" else whole[:8] + b"\x00garbage" + whole[16:])
    line = refused(cli("export", run_dir.name, "--gguf", "q8_0", "--name", "damaged", runs=runs))
    assert line.startswith(f"error: the weights file {weights} ") and line.endswith(
        "; export one of the run's checkpoints, or train it again"), line
    assert ("is cut short: " if damage == "cut short" else "has a header that does not parse") in line, line
    assert not (run_dir / "exports").exists()
    # The job asks again before it loads anything (the app and a hand-written job.yaml start it directly).
    job_dir, _ = start_job(run_dir, "export", {"weights": "adapter", "gguf": ["q8_0"]}, "direct")
    assert wait_until_gone(job_dir, timeout=240)
    events = read_events(job_dir)
    assert [e["type"] for e in events] == ["job_failed"] and events[0]["cause"] == line.removeprefix("error: "), events
