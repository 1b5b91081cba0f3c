"""The adapter merged into the base at full precision, and the merged folder written.

The base is loaded **unquantized**, in the dtype its own files store (``dtype="auto"``), even
for a QLoRA run: the adapter learned on top of 4-bit weights, but merging it into the
de-quantized 4-bit weights would bake the quantization error into every weight of the exported
model, and a 4-bit rounding of the merged sum would then round a second time. Merged into the
original weights, the export is the model the user would have had with LoRA on the full base,
and any later quantization (a GGUF type) rounds once. The LoRA product is computed by peft in
fp32 on the CPU and added once to each weight (one rounding in the base's dtype).

A full fine-tune's weights are the model already: they are loaded and written the same way.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from peft import PeftModel
from transformers import GenerationConfig

from engine.config import RunConfig
from engine.models.loading import load_model

SHARD_SIZE = "2GB"
"""Largest safetensors shard of the merged folder (transformers' sharding, with its index)."""


def load_merged(config: RunConfig, base_path: str, weights: Path, pad_token_id: int | None) -> Any:
    """The tuned model with no adapter left in it, on the CPU, in the base's stored dtype.

    Args:
        config: The run's config (its model's revision and remote code, its stage's head).
        base_path: The base model's folder or hub id (the demo alias already resolved).
        weights: The adapter folder, or a full fine-tune's weights folder (method ``full``).
    """
    full = config.adapter.method == "full"
    model = load_model(config, str(weights) if full else base_path, pad_token_id=pad_token_id, full_precision=True)
    if not full:
        model = PeftModel.from_pretrained(model, str(weights)).merge_and_unload()
    model.eval()
    model.config.use_cache = True  # training turned it off; a served model wants it
    return model


def save_merged(model: Any, tokenizer: Any, base_path: str, into: Path, hub: dict[str, Any]) -> None:
    """Write the merged model into ``into``: sharded safetensors, config, generation config and the
    tokenizer with its chat template, loadable by ``AutoModelForCausalLM.from_pretrained`` (a reward
    model's by ``AutoModelForSequenceClassification``: its stage's head)."""
    try:  # the base's own sampling defaults travel with it
        model.generation_config = GenerationConfig.from_pretrained(base_path, **hub)
    except (OSError, ValueError):
        pass
    model.save_pretrained(into, max_shard_size=SHARD_SIZE, safe_serialization=True)
    tokenizer.save_pretrained(into)


def state_dict(model: Any) -> dict[str, torch.Tensor]:
    """The merged model's tensors by transformers name (tied weights listed under each name)."""
    return dict(model.state_dict())
