"""The speed and memory techniques a recipe puts on its model before training, as configured.

Each leaves the computation as it was — same losses, same gradients, tested one by one against
the plain path in tests/engine/test_speed_techniques.py — and removes work or memory:

* ``train.fused_lora_dropout``: :mod:`engine.recipes.lora_dropout`.
* ``train.chunked_loss``: :mod:`engine.recipes.loss` (Liger's kernel on CUDA when installed).
* ``data.padding_free``: the collator (:class:`engine.recipes.datasets.FlatCollator`) and attention
  run per record (:mod:`engine.recipes.attention`) where the model uses sdpa.
"""

from __future__ import annotations

import logging
from typing import Any

from engine.config import RunConfig
from engine.recipes.attention import use_record_attention
from engine.recipes.datasets import FlatCollator, PadCollator
from engine.recipes.lora_dropout import fuse_lora_dropout
from engine.recipes.loss import use_chunked_loss

log = logging.getLogger("engine.recipes.techniques")


def apply_techniques(model: Any, config: RunConfig) -> list[str]:
    """Put the configured techniques on ``model`` (in place); returns what was turned on, for the log."""
    done = []
    if config.train.fused_lora_dropout and config.adapter.method != "full":
        fused = fuse_lora_dropout(model)
        if fused:
            done.append(f"LoRA dropout fused in {fused} layers")
    if config.train.chunked_loss and use_chunked_loss(model):
        done.append("chunked loss")
    if config.data.padding_free:
        done.append("padding-free batches" + (", attention per record" if use_record_attention(model) else ""))
    log.info("techniques: %s", ", ".join(done) or "none")
    return done


def collator(config: RunConfig, pad_token_id: int | None, cuda: bool) -> FlatCollator | PadCollator:
    """The batch collator: padding-free unless ``data.padding_free`` is off."""
    if config.data.padding_free:
        return FlatCollator()
    # Pad to a multiple of 8 on GPU so matmul shapes hit tensor-core friendly sizes.
    return PadCollator(pad_token_id, pad_to_multiple_of=8 if cuda else None)
