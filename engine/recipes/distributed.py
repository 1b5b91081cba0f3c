"""What a trainer does differently when torchrun started several of it: the Trainer's DDP/FSDP arguments.

torchrun sets ``WORLD_SIZE``/``RANK``/``LOCAL_RANK`` in each worker (``engine.machine.place`` reads them);
the Trainer (through accelerate) then initialises the process group itself. This module only chooses
what the Trainer cannot guess.
"""

from __future__ import annotations

import os
from typing import Any

import torch

from engine.config import RunConfig
from engine.machine.place import place


def strategy(config: RunConfig) -> str:
    """``ddp`` or ``fsdp`` (``auto``: FSDP for full fine-tuning, DDP for adapters), as the estimate judges it."""
    from engine.estimate.fit import strategy as chosen

    return chosen(config)


def trainer_arguments(config: RunConfig) -> dict[str, Any]:
    """TrainingArguments fields for a run of several processes; none for a single one.

    DDP (adapters): every process holds the whole model and the gradients are averaged. FSDP (full
    fine-tuning, or ``distributed.strategy: fsdp``): accelerate's FSDP2 shards each decoder layer
    (the model's ``_no_split_modules``) over the processes and gathers one at a time; checkpoints and
    the saved model stay whole (``FULL_STATE_DICT``), so a resume and the adapter folder read as usual.
    """
    if not place().several:
        return {}
    arguments: dict[str, Any] = {
        # NCCL needs GPUs; on a CPU-only machine the workers talk over gloo.
        "ddp_backend": "nccl" if torch.cuda.is_available() else "gloo",
        # A LoRA model's frozen base never gets gradients: searching for unused parameters would
        # cost a graph walk every step and warn each time.
        "ddp_find_unused_parameters": False,
        # How long a rank waits at a collective (e.g. while rank 0 writes a checkpoint) before failing.
        "ddp_timeout": config.distributed.timeout,
    }
    if strategy(config) == "fsdp":
        if config.quant.mode != "none":
            raise ValueError(f"distributed.strategy fsdp cannot shard quant.mode {config.quant.mode} weights "
                             "(bitsandbytes): use strategy ddp, or quant.mode none")
        arguments.update(fsdp=True, fsdp_config={
            "version": 2, "auto_wrap_policy": "TRANSFORMER_BASED_WRAP", "reshard_after_forward": True,
            "state_dict_type": "FULL_STATE_DICT"})
    return arguments


def agree(stop: bool, save: bool) -> tuple[bool, bool]:
    """``(stop, save)`` as any rank has them: one all-reduce (MAX) of two flags; unchanged when alone.

    Every rank must call it at the same point (each step end), as with any collective.
    """
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return stop, save
    # NCCL reduces only tensors on the GPU; gloo those in host memory.
    device = torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else torch.device("cpu")
    flags = torch.tensor([int(stop), int(save)], dtype=torch.int32, device=device)
    dist.all_reduce(flags, op=dist.ReduceOp.MAX)
    agreed = flags.tolist()
    return bool(agreed[0]), bool(agreed[1])


def run_fields() -> dict[str, Any]:
    """What ``run_started`` says about the run's processes: ``world_size``, ``nnodes``, ``node_rank``,
    ``nproc`` (on this node) and ``gpus`` (the indices this node trains on; empty on CPU)."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    gpus = [int(i) for i in visible.split(",") if i.strip().isdigit()][:count] if visible else list(range(count))
    here = place()
    return {"world_size": here.world_size, "nnodes": here.nnodes, "node_rank": here.node_rank, "nproc": here.nproc,
            "gpus": gpus}
