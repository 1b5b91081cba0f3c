"""What a trainer does differently when torchrun started several of it: the Trainer's DDP/FSDP arguments.

torchrun sets ``WORLD_SIZE``/``RANK``/``LOCAL_RANK`` in each worker; the Trainer (through accelerate)
then initialises the process group itself. This module only chooses what the Trainer cannot guess.
"""

from __future__ import annotations

import os
from typing import Any

import torch

from engine.config import RunConfig


def world_size() -> int:
    """Processes of this run across every node (1 when not under torchrun)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def trainer_arguments(config: RunConfig) -> dict[str, Any]:
    """TrainingArguments fields for a run of several processes; none for a single one."""
    if world_size() == 1:
        return {}
    return {
        # NCCL needs GPUs; on a CPU-only machine the workers talk over gloo.
        "ddp_backend": "nccl" if torch.cuda.is_available() else "gloo",
        # A LoRA model's frozen base never gets gradients: searching for unused parameters would
        # cost a graph walk every step and warn each time.
        "ddp_find_unused_parameters": False,
    }
