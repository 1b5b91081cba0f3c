"""Loading a model's tokenizer (transformers, without torch models or peft).

Training, the data service and later chat all tokenise with the model's own tokenizer and
chat template; this is the one place it is loaded. An alias (the demo model) is resolved to
its folder first.
"""

from __future__ import annotations

from typing import Any

from engine.models.demo import resolve_model
from engine.models.info import ModelError


def load_tokenizer(name_or_path: str, revision: str | None = None, trust_remote_code: bool = False) -> Any:
    """The tokenizer of ``name_or_path`` (alias, folder or hub id) with a pad token.

    A tokenizer without a pad token gets its EOS token as pad: padded positions are masked, so
    the choice never reaches the loss.

    Raises:
        ModelError: the model cannot be found or read (no such hub id offline, a broken folder).
    """
    from transformers import AutoTokenizer

    kwargs: dict[str, Any] = {}
    if revision:
        kwargs["revision"] = revision
    if trust_remote_code:
        kwargs["trust_remote_code"] = True
    try:
        tokenizer = AutoTokenizer.from_pretrained(resolve_model(name_or_path), **kwargs)
    except OSError as exc:  # transformers' way of saying "not found" (hub, network or files)
        raise ModelError.not_found(name_or_path, exc) from exc
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer
