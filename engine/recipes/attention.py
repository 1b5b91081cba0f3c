"""Attention over padding-free batches: each record attends to itself, one sdpa call per record.

A padding-free batch (:class:`engine.recipes.datasets.FlatCollator`) is one row of records laid end
to end, with position ids restarting at 0 for each. transformers' sdpa path turns those position
ids into an L x L block-diagonal mask over the row's L tokens: exact, but the kernel then computes
all L² scores and masks most of them (on CPU with 4 records of about 115 tokens, 2.4 times the
scores of the padded batch, and the masked path of the kernel is slower per score). Here the row
is cut at the record starts and each record runs through transformers' own sdpa function with
``is_causal`` and no mask: ``sum(len²)`` scores, the causal kernel, nothing else — what
flash-attention's varlen kernel does on GPU, with any sdpa backend.

:func:`use_record_attention` registers this as the attention implementation ``tuitune_records``
and sets it on a model. transformers builds no mask for an implementation it does not know, so a
batch must never need one: padding-free batches (no padding at all) or right-padded ones (causal
attention already keeps real tokens from the padding after them).
"""

from __future__ import annotations

import logging
from typing import Any

import torch
from torch import nn

log = logging.getLogger("engine.recipes.attention")

NAME = "tuitune_records"
SUPPORTED = {"llama", "mistral", "qwen2", "qwen3", "phi3", "smollm3", "olmo2"}
"""Model types whose attention modules pass ``position_ids`` on to the attention function."""
_lengths_cache: dict[str, Any] = {"tensor": None, "version": None, "lengths": None}
"""The last position ids read and their record lengths. The tensor itself is held (not its id or
address, which a new batch's tensor may reuse once the old one is freed)."""


def record_attention(module: nn.Module, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                     attention_mask: torch.Tensor | None, dropout: float = 0.0, scaling: float | None = None,
                     **kwargs: Any) -> tuple[torch.Tensor, None]:
    """sdpa per record of a one-row padding-free batch; plain causal sdpa for anything else."""
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    kwargs.pop("is_causal", None)
    lengths = None
    if query.shape[0] == 1 and attention_mask is None and key.shape[2] == query.shape[2]:
        lengths = record_lengths(kwargs.get("position_ids"))
    if not lengths or len(lengths) == 1:
        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout, scaling=scaling,
                                      is_causal=attention_mask is None, **kwargs)
    outputs = [sdpa_attention_forward(module, q, k, v, None, dropout=dropout, scaling=scaling, is_causal=True,
                                      **kwargs)[0]
               for q, k, v in zip(query.split(lengths, 2), key.split(lengths, 2), value.split(lengths, 2))]
    return torch.cat(outputs, dim=1), None


def record_lengths(position_ids: torch.Tensor | None) -> list[int] | None:
    """Lengths of the records in a one-row batch, from where its position ids fall back to 0.

    Every layer asks for the same position ids tensor; it is read once per forward pass (one device
    sync) and remembered as long as it is the same, unmodified tensor.
    """
    if position_ids is None or position_ids.shape[0] != 1:
        return None
    if _lengths_cache["tensor"] is not position_ids or _lengths_cache["version"] != position_ids._version:
        starts = (position_ids[0] == 0).nonzero().flatten().tolist()
        if not starts or starts[0] != 0:
            starts = [0, *starts]
        bounds = [*starts, position_ids.shape[1]]
        _lengths_cache.update(tensor=position_ids, version=position_ids._version,
                              lengths=[b - a for a, b in zip(bounds, bounds[1:]) if b > a])
    return _lengths_cache["lengths"]


def use_record_attention(model: nn.Module) -> bool:
    """Set ``tuitune_records`` attention on ``model`` when it now uses sdpa and its type is known."""
    from transformers import AttentionInterface

    lm = model.get_base_model() if hasattr(model, "get_base_model") else model
    config = getattr(lm, "config", None)
    if getattr(config, "model_type", None) not in SUPPORTED or getattr(config, "_attn_implementation", None) != "sdpa":
        return False
    AttentionInterface.register(NAME, record_attention)
    lm.set_attn_implementation(NAME)
    return True
