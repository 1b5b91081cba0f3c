"""The system sampler's figures and the run-launch helpers' process checks (no training here)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

from engine.machine.sampler import GpuProbe, ProcessTree, SystemSampler, system_sample
from tuitune.runs.launch import is_alive, new_run_dir, request_save, stop_run

CHILD_MB = 200


def test_a_sample_counts_the_whole_process_tree_and_says_why_there_is_no_gpu() -> None:
    tree = ProcessTree()
    before, _ = tree.sample()
    child = subprocess.Popen([sys.executable, "-c", f"import sys, time; x = bytearray({CHILD_MB} << 20); "
                              "x[::4096] = b'1' * len(x[::4096]); print('ready', flush=True); time.sleep(60)"],
                             stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "ready"
        sample = system_sample(GpuProbe(), tree)
    finally:
        child.kill()
        child.wait()

    assert sample["rss_bytes"] >= before + CHILD_MB * 2**20 * 0.9
    assert 0 < sample["host_mem_used_bytes"] < sample["host_mem_total_bytes"]
    # Either NVML found GPUs, or the event says why there are none.
    assert sample["gpus"] or sample["gpu_note"], sample
    for gpu in sample["gpus"]:
        assert gpu["mem_total_bytes"] > 0 and gpu["name"]


def test_the_sampler_thread_emits_system_events_until_stopped() -> None:
    got: list[dict] = []
    two = threading.Event()

    def emit(type: str, **fields: object) -> None:
        got.append({"type": type, **fields})
        if len(got) >= 2:
            two.set()

    sampler = SystemSampler(emit, interval=0.05).start()
    assert two.wait(timeout=30)
    sampler.stop()
    count = len(got)
    assert all(e["type"] == "system" and e["rss_bytes"] > 0 for e in got)
    assert not sampler._thread.is_alive() and len(got) == count


def test_new_run_dir_never_reuses_a_folder(tmp_path: Path) -> None:
    first = new_run_dir(tmp_path, "my run/1")
    second = new_run_dir(tmp_path, "my run/1")
    assert first.name == "my-run-1" and second.name == "my-run-1-2"
    assert first.is_dir() and second.is_dir()


def test_a_pid_that_is_not_this_runs_engine_is_not_alive(tmp_path: Path) -> None:
    """pids.json may outlive its processes (a reboot reuses pids): only a process whose command
    line names this run folder counts, and nothing is signalled otherwise."""
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (tmp_path / "config.yaml").write_text("{}\n")
        (tmp_path / "pids.json").write_text(json.dumps({"supervisor": other.pid, "trainer": other.pid,
                                                        "pgid": other.pid}))
        assert not is_alive(tmp_path)
        assert not stop_run(tmp_path) and not request_save(tmp_path)
        assert other.poll() is None
        (tmp_path / "pids.json").write_text(json.dumps({"supervisor": os.getpid() + 10_000_000}))
        assert not is_alive(tmp_path)
    finally:
        other.kill()
        other.wait()
