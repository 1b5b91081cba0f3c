"""``tuitune pull ORG/NAME``: the pull job fetches a model from a Hub on 127.0.0.1 (tests/fixtures/hub/server.py)
into the Hugging Face cache, as a user's terminal runs it; refusals come before any weights are fetched."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from engine.paths import pull_dir
from engine.protocol import read_events
from tests.engine.conftest import tuitune_cli

FIRST, SECOND = "model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"


@pytest.fixture(scope="session")
def sharded_tiny(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path) -> Path:
    """The tiny random Llama with its weights in two shards and an index, as large models are published."""
    from safetensors.numpy import load_file, save_file

    folder = tmp_path_factory.mktemp("sharded-tiny")
    for path in tiny_model_dir.iterdir():
        if path.name != "model.safetensors":
            shutil.copy(path, folder / path.name)
    tensors = load_file(tiny_model_dir / "model.safetensors")
    names = sorted(tensors)
    halves = {FIRST: [n for n in names if "embed" in n], SECOND: [n for n in names if "embed" not in n]}
    for shard, members in halves.items():
        save_file({n: tensors[n] for n in members}, folder / shard, metadata={"format": "pt"})
    index = {"metadata": {"total_size": sum(t.nbytes for t in tensors.values())},
             "weight_map": {n: shard for shard, members in halves.items() for n in members}}
    (folder / "model.safetensors.index.json").write_text(json.dumps(index))
    return folder


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

    again = pull("org/tiny")
    assert again.returncode == 0, again.stderr
    assert again.stdout.strip() == str(snapshot)
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
