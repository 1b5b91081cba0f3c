"""``tuitune pull ORG/NAME``: the pull job fetches a model from a Hub on 127.0.0.1 (tests/fixtures/hub/server.py)
into the Hugging Face cache, as a user's terminal runs it; refusals come before any weights are fetched."""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

import pytest

from engine.models import hf_cache
from engine.paths import pull_dir
from engine.protocol import read_events
from tests.conftest import FIRST_SHARD as FIRST
from tests.conftest import SECOND_SHARD as SECOND
from tests.engine.conftest import tuitune_cli


def pull(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """``tuitune pull ARGS`` to its end."""
    proc = tuitune_cli("pull", *args)
    out, err = proc.communicate(timeout=timeout)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def test_a_pull_stopped_after_its_first_shard_does_not_fetch_that_shard_again(fake_hub, sharded_tiny: Path) -> None:
    """The big shard is held after its first chunk while the rest arrives; Ctrl-C stops the pull; the next pull
    fetches only what is missing and prints the folder a run can use."""
    fake_hub.add("org/tiny", sharded_tiny)
    release = fake_hub.hold("org/tiny", FIRST)
    folder = pull_dir("org/tiny")
    proc = tuitune_cli("pull", "org/tiny")
    try:
        deadline = time.monotonic() + 60
        while fake_hub.sent["org/tiny/" + SECOND] < (sharded_tiny / SECOND).stat().st_size or not any(
                e["type"] == "progress" and e["files_done"] >= 1 for e in read_events(folder)):
            assert proc.poll() is None and time.monotonic() < deadline, (proc.poll(), read_events(folder))
            time.sleep(0.05)
        time.sleep(0.6)  # the second shard renamed into place and reported
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        release.set()
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 1, (out, err)
    events = read_events(folder)
    started = next(e for e in events if e["type"] == "job_started")
    assert started["repo_id"] == "org/tiny" and started["files"] == len(list(sharded_tiny.iterdir()))
    assert events[-1]["type"] == "job_stopped", events[-1]
    assert "pull again to fetch the rest" in err
    snapshot = Path(started["destination"])
    assert (snapshot / SECOND).is_file() and not (snapshot / FIRST).exists()
    assert not list(snapshot.parent.parent.glob("blobs/*.incomplete"))  # the cut-off shard was removed

    stale = snapshot.parent.parent / "blobs" / "0123abcd.deadbeef.incomplete"  # what a killed pull leaves
    stale.write_bytes(b"cut off")
    again = pull("org/tiny")
    assert again.returncode == 0, again.stderr
    assert again.stdout.strip() == str(snapshot) and not stale.exists()
    assert fake_hub.sent["org/tiny/" + SECOND] == (sharded_tiny / SECOND).stat().st_size  # not sent twice
    assert (snapshot / FIRST).read_bytes() == (sharded_tiny / FIRST).read_bytes()
    progress = [e for e in read_events(folder) if e["type"] == "progress"]
    assert progress[-1]["done"] == progress[-1]["total"] == started["total_bytes"]
    assert read_events(folder)[-1]["type"] == "job_finished"

    whole = pull("org/tiny")  # a third pull finds it whole and starts no job
    assert whole.returncode == 0 and whole.stdout.strip() == str(snapshot) and "already here" in whole.stderr


def test_a_typo_a_gated_repo_and_no_network_are_each_one_line_with_exit_2(fake_hub, tiny_model_dir: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    fake_hub.add("org/tiny", tiny_model_dir)
    fake_hub.add("org/gated", tiny_model_dir, gated=True)
    typo = pull("org/tiyn")
    assert typo.returncode == 2 and typo.stderr.strip().splitlines() == [
        f"error: no model org/tiyn on the Hub (if it is private, set HF_TOKEN or log in: hf auth login); check the "
        f"spelling at {fake_hub.url}"], typo.stderr
    gated = pull("org/gated")
    assert gated.returncode == 2 and len(gated.stderr.strip().splitlines()) == 1, gated.stderr
    assert f"accept its license at {fake_hub.url}/org/gated, then set HF_TOKEN or log in" in gated.stderr
    assert not fake_hub.sent.get("org/gated/model.safetensors")
    assert not pull_dir("org/tiyn").exists() and not pull_dir("org/gated").exists()  # nothing started

    monkeypatch.setenv("HF_TOKEN", "hf_test_token")
    opened = pull("org/gated")
    assert opened.returncode == 0, opened.stderr
    assert (Path(opened.stdout.strip()) / "model.safetensors").is_file()
    assert "hf_test_token" not in "".join(p.read_text() for p in pull_dir("org/gated").iterdir() if p.is_file())

    monkeypatch.delenv("HF_TOKEN")
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # nothing listens on the discard port
    offline = pull("org/tiny")
    assert offline.returncode == 2 and len(offline.stderr.strip().splitlines()) == 1, offline.stderr
    assert offline.stderr.startswith("error: cannot reach the Hub at http://127.0.0.1:9 for org/tiny (no network?)")
    here = pull("org/gated")  # unreachable too, but whole in the cache: its folder
    assert here.returncode == 0 and here.stdout.strip() == opened.stdout.strip(), here.stderr
    assert here.stderr.startswith("note: cannot reach the Hub") and "the copy already here is whole" in here.stderr


def test_a_pull_is_refused_when_the_disk_lacks_room(fake_hub, sharded_tiny: Path, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """The cache on an 8 MiB tmpfs: the model needs more, so the pull says how much is needed and free."""
    small = tmp_path / "small"
    small.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(small)], capture_output=True)
    assert mounted.returncode == 0, mounted.stderr  # the tests run as root here
    try:
        monkeypatch.setenv("HF_HUB_CACHE", str(small / "hub"))
        fake_hub.add("org/tiny", sharded_tiny)
        full = pull("org/tiny")
        assert full.returncode == 2, full.stderr
        assert full.stderr.startswith(f"error: not enough disk space for org/tiny in {small / 'hub'}: 8 MiB free, "
                                      "the model needs 16 MiB; free some space"), full.stderr
        assert len(full.stderr.strip().splitlines()) == 1
        assert not fake_hub.sent.get("org/tiny/" + FIRST)
    finally:
        subprocess.run(["umount", str(small)], check=True)


def test_train_with_a_hub_id_downloads_it_as_the_runs_first_phase(fake_hub, sharded_tiny: Path, tiny_data: Path,
                                                                   tmp_path: Path) -> None:
    """The run's events show the download (the pull's progress shape) before training starts, and it trains."""
    fake_hub.add("org/tiny", sharded_tiny)
    run_dir = tmp_path / "run"
    proc = tuitune_cli("train", "--model", "org/tiny", "--data", str(tiny_data), "--max-steps", "1",
                       "--preset", "cpu-first-try", "--run-dir", str(run_dir))
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, (out, err, (run_dir / "engine.log").read_text()[-3000:])
    events = read_events(run_dir)
    types = [e["type"] for e in events]
    phases = [e["name"] for e in events if e["type"] == "phase"]
    assert phases[0] == "downloading" and "loading_model" in phases, phases
    progress = [e for e in events if e["type"] == "progress"]
    assert progress and progress[-1]["phase"] == "download" and progress[-1]["done"] == progress[-1]["total"]
    assert types.index("progress") < types.index("run_started") and types[-1] == "run_finished"
    size = (sharded_tiny / FIRST).stat().st_size  # fetched once, besides the header range the check before read
    assert size <= fake_hub.sent["org/tiny/" + FIRST] <= size + 100_001


def test_a_detached_pull_lives_on_a_second_pull_of_it_is_refused_and_tuitune_stop_ends_it(
        fake_hub, sharded_tiny: Path) -> None:
    fake_hub.add("org/tiny", sharded_tiny)
    release = fake_hub.hold("org/tiny", FIRST)
    try:
        detached = pull("org/tiny", "--detach")
        folder = pull_dir("org/tiny")
        assert detached.returncode == 0 and detached.stdout.strip() == str(folder), detached.stderr
        second = pull("org/tiny")
        assert second.returncode == 2, second.stderr
        assert second.stderr.strip() == (f"error: org/tiny is already being pulled (in {folder}); wait for it, or "
                                         f"stop it with tuitune stop {folder}")
        stopped = tuitune_cli("stop", str(folder))
        out, err = stopped.communicate(timeout=60)
        assert stopped.returncode == 0, (out, err)
        assert out.splitlines() == [f"stopping: {folder}", "stopped on request"]
        assert read_events(folder)[-1]["type"] == "job_stopped"
    finally:
        release.set()


def test_a_run_stopped_while_it_downloads_its_model_ends_at_once(fake_hub, sharded_tiny: Path, tiny_data: Path,
                                                                  tmp_path: Path) -> None:
    """The big shard is held mid-download: tuitune stop ends the run (nothing to save yet) without waiting for it."""
    fake_hub.add("org/tiny", sharded_tiny)
    release = fake_hub.hold("org/tiny", FIRST)
    run_dir = tmp_path / "run"
    try:
        started = tuitune_cli("train", "--model", "org/tiny", "--data", str(tiny_data), "--max-steps", "1",
                              "--preset", "cpu-first-try", "--run-dir", str(run_dir), "--detach")
        assert started.wait(timeout=120) == 0, started.communicate()
        deadline = time.monotonic() + 60
        while not any(e["type"] == "progress" for e in read_events(run_dir)):
            assert time.monotonic() < deadline, read_events(run_dir)
            time.sleep(0.1)
        asked = time.monotonic()
        stop = tuitune_cli("stop", str(run_dir))
        out, err = stop.communicate(timeout=60)
        took = time.monotonic() - asked
    finally:
        release.set()
    assert stop.returncode == 0, (out, err)
    assert "stopped before training started (nothing saved)" in out
    assert took < 8, took  # not held by the download thread blocked in its read (a 10 s timeout, then retries)
    end = read_events(run_dir)[-1]
    assert end["type"] == "run_stopped" and end["step"] is None, end
    assert not list(hf_cache.repo_dir("org/tiny").glob("blobs/*.incomplete"))  # the cut-off shard removed
