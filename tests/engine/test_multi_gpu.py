"""Several trainer processes through torchrun, on the CPU with gloo: train, stop, kill, a dead rank, resume,
two "nodes" on one machine. Every run is 2 processes of the tiny model; nothing may outlive a run."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psutil
import pytest

from engine.protocol import NODE_FILE, PIDS_FILE, RUN_FAILED, RUN_FINISHED, RUN_STARTED, RUN_STOPPED, read_events
from tuitune.runs.launch import continue_run, pause_run, request_save, stop_run

LONG = {"max_steps": 2000, "save_steps": 1000}
"""A run that is still training when the test acts on it (a tiny step takes a few milliseconds)."""
GONE_S = 30.0


def run_pids(run_dir: Path, supervisor: int) -> set[int]:
    """Every process of the attempt that pids.json names: supervisor, torchrun's agent, the workers."""
    pids = json.loads((run_dir / PIDS_FILE).read_text())
    return {supervisor, pids["trainer"], *(w["pid"] for w in pids.get("workers", []))}


def assert_all_gone(pids: set[int], timeout: float = GONE_S) -> None:
    """Each of ``pids`` has ended (a zombie waiting for its reaper counts as ended)."""
    deadline = time.monotonic() + timeout
    alive = pids
    while time.monotonic() < deadline:
        alive = {pid for pid in pids if _alive(pid)}
        if not alive:
            return
        time.sleep(0.1)
    raise AssertionError(f"still alive: {alive}")


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


@pytest.fixture
def leftovers() -> Any:
    """Pids a test saw; any still alive at the end is killed (torchrun's workers are outside the group)."""
    seen: set[int] = set()
    yield seen
    for pid in seen:
        if _alive(pid):
            os.kill(pid, signal.SIGKILL)


def workers_listed(run_dir: Path, count: int = 2) -> list[dict[str, int]] | None:
    """pids.json's workers once all ``count`` are listed."""
    try:
        workers = json.loads((run_dir / PIDS_FILE).read_text()).get("workers", [])
    except (OSError, ValueError):
        return None
    return workers if len(workers) == count else None


def wait_workers(run_dir: Path, count: int = 2, timeout: float = 120.0) -> list[dict[str, int]]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if workers := workers_listed(run_dir, count):
            return workers
        time.sleep(0.1)
    raise AssertionError(f"pids.json never listed {count} workers: {(run_dir / PIDS_FILE).read_text()}")


def listening(pids: set[int]) -> list[tuple[int, str, int]]:
    """The TCP sockets the processes ``pids`` listen on: (pid, address, port)."""
    found = []
    for pid in pids:
        proc = psutil.Process(pid)
        sockets = proc.net_connections(kind="inet") if hasattr(proc, "net_connections") else proc.connections("inet")
        found += [(pid, s.laddr.ip, s.laddr.port) for s in sockets if s.status == psutil.CONN_LISTEN]
    return found


def test_tuitune_train_nproc_2_trains_to_the_end_and_the_adapter_loads_back(eng, tiny_model_dir: Path,
                                                                              tiny_data: Path, tmp_path: Path) -> None:
    """The command line a user types: two processes over gloo, world_size 2, one adapter from rank 0."""
    config = eng.make_run(tmp_path, tiny_model_dir, tiny_data, name="cfg") / "config.yaml"
    run_dir = tmp_path / "run"
    done = subprocess.run([sys.executable, "-m", "tuitune", "train", str(config), "--nproc", "2", "--run-dir",
                           str(run_dir)], cwd=eng.repo, env=eng.env(), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "2 processes on the CPU" in done.stdout
    events = read_events(run_dir)
    started = next(e for e in events if e["type"] == RUN_STARTED)
    assert (started["world_size"], started["nnodes"], started["nproc"], started["gpus"]) == (2, 1, 2, [])
    assert eng.kinds(events)[-1] == RUN_FINISHED and events[-1]["step"] == 3
    assert json.loads((run_dir / NODE_FILE).read_text())["world_size"] == 2
    assert "rank 1" in (run_dir / "logs" / "rank-1.log").read_text()  # rank 1's own log; rank 0's is engine.log

    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_model_dir), run_dir / "adapter")
    assert any("lora_A" in name for name, _ in model.named_parameters())


def test_a_stop_reaches_every_rank_at_the_same_step_and_a_resume_continues(eng, tiny_model_dir: Path, tiny_data: Path,
                                                                           tmp_path: Path, leftovers: set[int]) -> None:
    run_dir = eng.make_run(tmp_path, tiny_model_dir, tiny_data, train=LONG, distributed={"nproc": 2})
    proc = eng.launch(run_dir)
    eng.wait_for(run_dir, eng.first("log"), what="the first step")
    pids = run_pids(run_dir, proc.pid) | {w["pid"] for w in wait_workers(run_dir)}
    leftovers.update(pids)
    # torchrun's --standalone stores listened on every interface (*:39911, *:36909) of a box facing the
    # internet: the rendezvous store and the workers' gloo sockets are on loopback only.
    sockets = listening(pids)
    assert sockets and all(address == "127.0.0.1" for _, address, _ in sockets), sockets

    done = subprocess.run([sys.executable, "-m", "tuitune", "stop", str(run_dir)], cwd=eng.repo, env=eng.env(),
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert_all_gone(pids, timeout=1)  # tuitune stop returns once every process of the run is gone
    stopped = read_events(run_dir)[-1]
    assert stopped["type"] == RUN_STOPPED and 0 < stopped["step"] < 2000, stopped
    assert proc.wait(timeout=GONE_S) == 0
    # Both ranks saved their RNG state into the one checkpoint of that step: they stopped together.
    checkpoint = run_dir / stopped["checkpoint_path"]
    assert checkpoint.name == f"checkpoint-{stopped['step']}"
    assert {"rng_state_0.pth", "rng_state_1.pth"} <= {p.name for p in checkpoint.iterdir()}
    assert (run_dir / "adapter" / "adapter_model.safetensors").is_file()

    # Resume, shorter: it continues from the stop's checkpoint with both processes.
    config = (run_dir / "config.yaml").read_text().replace("max_steps: 2000", f"max_steps: {stopped['step'] + 2}")
    (run_dir / "config.yaml").write_text(config)
    seq = read_events(run_dir)[-1]["seq"]
    resumed = eng.launch(run_dir, "--resume")
    started = eng.wait_for(run_dir, eng.first(RUN_STARTED, after=seq), what="the resumed start")
    assert started["resumed_from_step"] == stopped["step"] and started["world_size"] == 2
    end = eng.wait_for(run_dir, eng.terminal(after=seq), what="the resumed end")
    assert end["type"] == RUN_FINISHED and end["step"] == stopped["step"] + 2, end
    assert resumed.wait(timeout=GONE_S) == 0


def test_pause_and_save_now_reach_every_rank_and_a_kill_on_request_leaves_no_process(eng, tiny_model_dir: Path,
                                                                             tiny_data: Path, tmp_path: Path,
                                                                             leftovers: set[int]) -> None:
    run_dir = eng.make_run(tmp_path, tiny_model_dir, tiny_data, train=LONG, distributed={"nproc": 2})
    proc = eng.launch(run_dir)
    eng.wait_for(run_dir, eng.first("log"), what="the first step")
    pids = run_pids(run_dir, proc.pid) | {w["pid"] for w in wait_workers(run_dir)}
    leftovers.update(pids)

    assert pause_run(run_dir)
    eng.wait_for(run_dir, eng.first("paused"), what="the pause")
    def states() -> set[str]:
        return {psutil.Process(w).status() for w in pids - {proc.pid}}

    # the agent and both workers hold where they are, then go on
    eng.wait_for(run_dir, lambda _: states() == {psutil.STATUS_STOPPED}, timeout=5, what="every process stopped")
    assert continue_run(run_dir)
    eng.wait_for(run_dir, eng.first("continued"), what="the continue")
    eng.wait_for(run_dir, lambda _: psutil.STATUS_STOPPED not in states(), timeout=5, what="every process going on")

    assert request_save(run_dir)
    saved = eng.wait_for(run_dir, eng.first("checkpoint"), what="the checkpoint asked for")
    assert eng.wait_for(run_dir, lambda _: (run_dir / saved["path"] / "rng_state_1.pth").is_file(), timeout=10,
                        what="rank 1's part of the checkpoint")
    assert stop_run(run_dir, kill=True)
    end = eng.wait_for(run_dir, eng.terminal(), what="the end")
    assert end["type"] == RUN_STOPPED and end["killed"] is True and end["checkpoint_path"] == saved["path"], end
    proc.wait(timeout=GONE_S)
    assert_all_gone(pids)


def test_a_worker_killed_by_sigkill_fails_the_run_naming_its_rank(eng, tiny_model_dir: Path, tiny_data: Path,
                                                                 tmp_path: Path, leftovers: set[int]) -> None:
    run_dir = eng.make_run(tmp_path, tiny_model_dir, tiny_data, train=LONG, distributed={"nproc": 2})
    proc = eng.launch(run_dir)
    eng.wait_for(run_dir, eng.first("log"), what="the first step")
    workers = wait_workers(run_dir)
    pids = run_pids(run_dir, proc.pid) | {w["pid"] for w in workers}
    leftovers.update(pids)

    killed_at = time.time()
    os.kill(next(w["pid"] for w in workers if w["rank"] == 1), signal.SIGKILL)
    failed = eng.wait_for(run_dir, eng.terminal(), timeout=60, what="the failure")
    assert failed["t"] - killed_at < 15  # the others are taken down within seconds
    assert failed["type"] == RUN_FAILED, failed
    assert (failed["rank"], failed["exit_code"], failed["signal"]) == (1, 137, "SIGKILL")
    assert failed["cause"].startswith("rank 1 of 2") and failed["log_path"] == "logs/rank-1.log"
    assert any("rank 1" in line for line in failed["log_tail"])
    proc.wait(timeout=GONE_S)
    assert_all_gone(pids)


def test_two_nodes_on_one_machine_finish_and_each_folder_says_which_node_it_is(eng, tiny_model_dir: Path,
                                                                               tiny_data: Path, tmp_path: Path,
                                                                               leftovers: set[int]) -> None:
    with socket.socket() as probe:  # a free port for node 0's rendezvous
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    folders = [eng.make_run(tmp_path, tiny_model_dir, tiny_data, name=f"node{rank}",
                            distributed={"nproc": 1, "nnodes": 2, "node_rank": rank, "master": f"127.0.0.1:{port}"})
               for rank in (0, 1)]
    procs = [eng.launch(folder) for folder in folders]
    for proc in procs:
        assert proc.wait(timeout=600) == 0
    main, other = (read_events(folder) for folder in folders)
    assert main[-1]["type"] == RUN_FINISHED and main[-1]["adapter_path"] == "adapter", main[-1]
    started = next(e for e in main if e["type"] == RUN_STARTED)
    assert (started["world_size"], started["nnodes"], started["node_rank"]) == (2, 2, 0)
    assert other[-1]["type"] == RUN_FINISHED and other[-1]["node_rank"] == 1 and other[-1]["adapter_path"] is None
    assert not any(e["type"] == "log" for e in other)  # the training's figures are node 0's
    assert (folders[0] / "adapter").is_dir() and not (folders[1] / "adapter").exists()
    assert [json.loads((folder / NODE_FILE).read_text())["node_rank"] for folder in folders] == [0, 1]


def test_full_fine_tuning_is_sharded_with_fsdp_and_saved_whole(eng, tiny_model_dir: Path, tiny_data: Path,
                                                              tmp_path: Path) -> None:
    """strategy auto + method full → FSDP2 over the two processes; the model folder is whole and trained."""
    import torch
    from transformers import AutoModelForCausalLM

    run_dir = eng.make_run(tmp_path, tiny_model_dir, tiny_data, adapter={"method": "full"}, distributed={"nproc": 2})
    events = eng.run_to_end(run_dir)
    assert events[-1]["type"] == RUN_FINISHED, events[-1]
    args = torch.load(run_dir / "adapter" / "training_args.bin", weights_only=False)
    assert args.fsdp and args.fsdp_config["version"] == 2
    trained, base = (AutoModelForCausalLM.from_pretrained(p) for p in (run_dir / "adapter", tiny_model_dir))
    moved = [(a - b).abs().max().item() for a, b in zip(trained.parameters(), base.parameters())]
    assert len(moved) == len(list(base.parameters())) and max(moved) > 0


def test_a_stop_on_node_0_ends_both_nodes_at_the_same_step(eng, tiny_model_dir: Path, tiny_data: Path,
                                                           tmp_path: Path, leftovers: set[int]) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    folders = [eng.make_run(tmp_path, tiny_model_dir, tiny_data, name=f"node{rank}", train=LONG,
                            distributed={"nproc": 1, "nnodes": 2, "node_rank": rank, "master": f"127.0.0.1:{port}"})
               for rank in (0, 1)]
    procs = [eng.launch(folder) for folder in folders]
    eng.wait_for(folders[0], eng.first("log"), what="the first step")
    for folder, proc in zip(folders, procs):
        leftovers.update(run_pids(folder, proc.pid) | {w["pid"] for w in wait_workers(folder, 1)})

    assert stop_run(folders[0])
    for proc in procs:
        assert proc.wait(timeout=120) == 0
    main, other = (read_events(folder)[-1] for folder in folders)
    assert main["type"] == other["type"] == RUN_STOPPED and main["step"] == other["step"], (main, other)
    assert other["node_rank"] == 1 and other["checkpoint_path"] is None
    assert_all_gone(set(leftovers))


def test_a_stop_while_the_ranks_load_ends_the_run_as_stopped(eng, tiny_model_dir: Path, tiny_data: Path,
                                                             tmp_path: Path, leftovers: set[int]) -> None:
    """Whichever rank hears the stop first, before or after its last check: stopped, and nothing left."""
    run_dir = eng.make_run(tmp_path, tiny_model_dir, tiny_data, train=LONG, distributed={"nproc": 2})
    proc = eng.launch(run_dir)
    workers = wait_workers(run_dir)
    pids = run_pids(run_dir, proc.pid) | {w["pid"] for w in workers}
    leftovers.update(pids)

    assert stop_run(run_dir)
    end = eng.wait_for(run_dir, eng.terminal(), timeout=120, what="the end")
    assert end["type"] == RUN_STOPPED, end
    assert proc.wait(timeout=60) == 0
    assert_all_gone(pids)


def test_a_killed_supervisor_leaves_no_rank_training_alone(eng, tiny_model_dir: Path, tiny_data: Path,
                                                           tmp_path: Path, leftovers: set[int]) -> None:
    """Its workers are not its children: each watches it, and they stop and save together once it is gone."""
    run_dir = eng.make_run(tmp_path, tiny_model_dir, tiny_data, train=LONG, distributed={"nproc": 2})
    proc = eng.launch(run_dir)
    eng.wait_for(run_dir, eng.first("log"), what="the first step")
    pids = run_pids(run_dir, proc.pid) | {w["pid"] for w in wait_workers(run_dir)}
    leftovers.update(pids)

    proc.kill()
    proc.wait()
    end = eng.wait_for(run_dir, eng.terminal(), timeout=60, what="the end")
    assert end["type"] == RUN_STOPPED and end["adapter_path"] == "adapter", end
    assert_all_gone(pids, timeout=60)
