"""The speed and memory techniques a recipe puts on its model before training, as configured.

Each leaves the computation as it was — same losses, same gradients, tested one by one against
the plain path in tests/engine/test_speed_techniques.py — and removes work or memory:

* ``train.fused_lora_dropout``: :mod:`engine.recipes.lora_dropout` (on CPU its masks are drawn from
  another generator than peft's: the same distribution, the same computation given the same masks).
* ``train.chunked_loss``: :mod:`engine.recipes.loss` (Liger's kernel on CUDA when installed).
* ``data.padding_free``: the collator (:class:`engine.recipes.datasets.FlatCollator`) and attention
  run per record (:mod:`engine.recipes.attention`) where the model uses sdpa.
* without gradient checkpointing, the SwiGLU MLP keeps two of its four wide activations
  (:mod:`engine.recipes.mlp`; exact, it re-forms two elementwise products in backward).
* on CPU, freed activation memory is reused without page faults where the trainer runs on tcmalloc,
  else glibc's malloc gives it back (:mod:`engine.machine.allocator`): either way the peak RSS follows
  what is live instead of the heap's high-water mark. Not a change to the computation at all.

A stage trained by a TRL trainer (its row in engine.stages) gets only the last two, which hold
whatever the loss: TRL computes its log-probabilities through a head of its own, pads its batches
itself and turns dropout off where the stage needs it.
"""

from __future__ import annotations

import logging
from typing import Any

import torch

from engine.config import RunConfig
from engine.machine.allocator import return_freed_memory, tcmalloc_in_use
from engine.recipes.attention import SUPPORTED as ATTENTION_SUPPORTED
from engine.recipes.attention import use_record_attention
from engine.recipes.datasets import FlatCollator, PadCollator
from engine.recipes.lora_dropout import fuse_lora_dropout
from engine.recipes.loss import use_chunked_loss
from engine.recipes.mlp import use_lean_mlp
from engine.stages import STAGES

log = logging.getLogger("engine.recipes.techniques")


def apply_techniques(model: Any, config: RunConfig) -> list[str]:
    """Put the configured techniques the stage allows on ``model`` (in place); returns what was turned on,
    for the log."""
    done = []
    if STAGES[config.stage].trainer == "engine":
        done += _loss_and_batch_techniques(model, config)
    if lean_mlp(config):
        lean = use_lean_mlp(model)
        if lean:
            done.append(f"SwiGLU keeping gate and up only in {lean} layers")
    if not torch.cuda.is_available():
        if tcmalloc_in_use():
            done.append("freed memory reused (tcmalloc)")
        elif return_freed_memory():
            done.append("freed memory returned (glibc mmap threshold)")
    log.info("techniques: %s", ", ".join(done) or "none")
    return done


def _loss_and_batch_techniques(model: Any, config: RunConfig) -> list[str]:
    """The techniques that change how the engine's own Trainer computes its loss and lays out batches."""
    done = []
    if config.train.fused_lora_dropout and config.adapter.method != "full":
        fused = fuse_lora_dropout(model)
        if fused:
            done.append(f"LoRA dropout fused in {fused} layers")
    if config.train.chunked_loss and use_chunked_loss(model):
        done.append("chunked loss")
    if padding_free(model, config):
        done.append("padding-free batches" + (", attention per record" if use_record_attention(model) else ""))
    return done


def lean_mlp(config: RunConfig) -> bool:
    """Whether the MLP keeps only gate and up: on unless turned off, never under gradient checkpointing.

    Checkpointing drops the whole layer's activations; the MLP's saved-tensor hook would keep gate and
    up alive there instead.
    """
    return config.train.lean_mlp and not config.train.gradient_checkpointing


def padding_free(model: Any, config: RunConfig) -> bool:
    """Whether batches go padding-free: asked for, and the model keeps records apart by position ids.

    That holds for the model types :mod:`engine.recipes.attention` knows (sdpa and eager build the
    block-diagonal mask, or attention runs per record) and under flash-attention (varlen). Any other
    model (remote code, older attention code) might attend across records unseen: it gets padding.
    """
    if not config.data.padding_free:
        return False
    lm = model.get_base_model() if hasattr(model, "get_base_model") else model
    model_config = getattr(lm, "config", None)
    return (getattr(model_config, "model_type", None) in ATTENTION_SUPPORTED
            or getattr(model_config, "_attn_implementation", None) == "flash_attention_2")


def collator(model: Any, config: RunConfig, pad_token_id: int | None, cuda: bool) -> FlatCollator | PadCollator:
    """The batch collator: padding-free where :func:`padding_free` allows, else padded batches."""
    if padding_free(model, config):
        return FlatCollator()
    if config.data.padding_free:
        log.info("padded batches: padding-free batching is not known to keep records apart for this model")
    # Pad to a multiple of 8 on GPU so matmul shapes hit tensor-core friendly sizes.
    return PadCollator(pad_token_id, pad_to_multiple_of=8 if cuda else None)
