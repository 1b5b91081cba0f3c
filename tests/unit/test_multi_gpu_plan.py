"""Choosing processes and GPUs: the trainer's command (one process or torchrun), the GPUs a config means on a
machine, and the command line's one-line refusals (exit 2) before a run folder exists."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from engine.config import RunConfig
from engine.machine.allocator import preload_env
from engine.machine.gpus import DeviceError, Gpu, parse_gpus, resolve_devices
from engine.supervisor.launch import Processes, processes, train_command, visible_gpus

REPO = Path(__file__).resolve().parents[2]
TWO = [Gpu(0, "H100", 80 << 30, 80 << 30), Gpu(1, "H100", 80 << 30, 80 << 30)]


def config(**sections: dict) -> RunConfig:
    return RunConfig.model_validate(sections)


def test_one_process_is_the_plain_trainer_and_more_go_through_torchrun(tmp_path: Path) -> None:
    command, env = train_command(tmp_path, False, Processes(nproc=1))
    # without a GPU, tcmalloc preloaded where the machine has it (engine.machine.allocator), nothing else
    assert command[1:] == ["-m", "engine", "train", "--run-dir", str(tmp_path)]
    assert env == (preload_env() if visible_gpus() == 0 else {})

    command, env = train_command(tmp_path, True, processes(config(train={"gpus": [2, 3]})))
    assert command[1:4] == ["-m", "engine", "torchrun"]  # one machine: the rendezvous listens on loopback only
    assert command[command.index("--rdzv-backend") + 1] == "tuitune-loopback"
    assert command[command.index("--nproc-per-node") + 1] == "2" and command[-1] == "--resume"
    assert env == {"CUDA_DEVICE_ORDER": "PCI_BUS_ID", "CUDA_VISIBLE_DEVICES": "2,3",
                   "GLOO_SOCKET_IFNAME": "lo", "NCCL_SOCKET_IFNAME": "lo"}

    two_nodes = processes(config(distributed={"nproc": 1, "nnodes": 2, "node_rank": 1, "master": "10.0.0.1:29500"}))
    command, env = train_command(tmp_path, False, two_nodes)
    assert "--rdzv-backend" not in command and "GLOO_SOCKET_IFNAME" not in env and two_nodes.world_size == 2
    for flag, value in (("--nnodes", "2"), ("--node-rank", "1"), ("--master-addr", "10.0.0.1"),
                        ("--master-port", "29500")):
        assert command[command.index(flag) + 1] == value


def test_the_gpus_a_config_means_are_checked_against_the_machine() -> None:
    resolved = resolve_devices(config(), TWO)
    assert (resolved.train.gpus, resolved.distributed.nproc) == ([0, 1], 2)
    assert resolve_devices(config(train={"gpus": 1}), TWO).train.gpus == [0]
    assert resolve_devices(config(), [], "no NVIDIA driver").train.gpus == "all"  # the CPU: nproc decides
    with pytest.raises(DeviceError, match="GPU 5 not found: this machine has GPU 0, 1"):
        resolve_devices(config(train={"gpus": [5]}), TWO)
    with pytest.raises(DeviceError, match="no GPU"):
        resolve_devices(config(train={"gpus": [0]}), [], "no NVIDIA driver")
    assert resolve_devices(config(distributed={"nproc": 1}), TWO).train.gpus == [0]  # --nproc 1 alone: GPU 0
    with pytest.raises(DeviceError, match="nproc 3"):
        resolve_devices(config(distributed={"nproc": 3}), TWO)
    with pytest.raises(DeviceError, match="nproc 3"):
        resolve_devices(config(train={"gpus": [0, 1]}, distributed={"nproc": 3}), TWO)
    assert parse_gpus("0,1") == [0, 1] and parse_gpus("all") == "all"
    with pytest.raises(ValueError):
        parse_gpus("0,0")


@pytest.mark.parametrize("args, says", [
    (["--gpus", "0"], "no GPU"),  # this test machine has none (the GPU path is not taken here)
    (["--nnodes", "2"], "needs distributed.master"),
    (["--nnodes", "2", "--master", "nohost"], "not ADDR:PORT"),
    (["--node-rank", "2", "--nnodes", "2", "--master", "127.0.0.1:29500"], "not below nnodes"),
    (["--nproc", "0"], "at least 1"),
])
def test_bad_choices_are_one_clear_line_and_exit_2(tmp_path: Path, args: list[str], says: str) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO), "TUITUNE_RUNS_DIR": str(tmp_path / "runs")}
    done = subprocess.run([sys.executable, "-m", "tuitune", "train", *args, "--detach"], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    assert done.returncode == 2 and says in done.stderr, done.stderr
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def test_the_estimate_is_per_gpu_for_ddp_and_fsdp(tmp_path: Path) -> None:
    """DDP: each GPU holds the whole run (and a copy of the gradients in DDP's buckets); FSDP: a share of the
    weights, gradients and optimizer state, and a layer or two gathered whole; the verdict is per GPU."""
    import importlib.util

    from engine.estimate.fit import verdict
    from engine.estimate.memory import estimate
    from engine.models.info import read_model_info

    spec = importlib.util.spec_from_file_location("builders", REPO / "tests/fixtures/models/builders.py")
    builders = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(builders)
    info = read_model_info(str(builders.make_model(tmp_path / "tiny")))
    full = config(adapter={"method": "full"})
    alone = estimate(info, full, "cuda")

    ddp = verdict(info, config(adapter={"method": "full"}, distributed={"strategy": "ddp"}), TWO)
    assert ddp.estimate.total == alone.total + alone.gradients and "DDP over 2" in ddp.estimate.notes[-1]
    fsdp = verdict(info, full, TWO)  # auto: full fine-tuning is sharded
    assert fsdp.estimate.optimizer == alone.optimizer // 2 and fsdp.estimate.gradients == alone.gradients // 2
    assert alone.weights // 2 < fsdp.estimate.weights <= alone.weights and "FSDP over 2" in fsdp.estimate.notes[-1]
    assert fsdp.capacity.label == "GPU 0 H100 (each of 2 GPUs)"
    one = verdict(info, config(adapter={"method": "full"}, train={"gpus": [1]}), TWO)
    assert one.estimate.total == alone.total and one.capacity.label == "GPU 1 H100"


def test_a_run_over_several_machines_is_told_the_ports_it_opens_and_one_machine_is_not() -> None:
    """One machine listens on loopback only (tests/engine/test_multi_gpu.py); several cannot, so every door says so."""
    from engine.estimate.prestart import check_run

    two_nodes = config(distributed={"nproc": 1, "nnodes": 2, "master": "10.0.0.1:29500"})
    said = [line for line in check_run(two_nodes, []).warnings if "listens on" in line]
    assert said and "10.0.0.1:29500" in said[0] and "unauthenticated" in said[0]
    assert not [line for line in check_run(config(distributed={"nproc": 2}), []).warnings if "listens on" in line]
