"""Which parameters a run trains, from the model's weight shapes: LoRA, DoRA or all. Stdlib only.

The counts equal peft's ``get_nb_trainable_parameters()`` (tests/unit/test_estimate.py checks
them against peft on the tiny and the demo model): peft's ``all-linear`` adapts every linear
layer but the output head, and a list of names matches a module whose name is, or ends with
``.``, one of them.
"""

from __future__ import annotations

from math import prod
from typing import TYPE_CHECKING, Any

from engine.stages import DEFAULT_STAGE, STAGES

if TYPE_CHECKING:
    from engine.config import AdapterSection
    from engine.models.info import ModelInfo

EMBEDDING_WORDS = ("embed", "wte", "wpe", "lm_head", "embed_out", "word_embeddings")
"""Name parts of embeddings and output heads: 2-D weights that are not adapted linear layers."""


def trainable_params(info: ModelInfo, adapter: AdapterSection | dict[str, Any], stage: str = DEFAULT_STAGE) -> int:
    """Parameters peft (or full fine-tuning) will train: equals ``model.get_nb_trainable_parameters()[0]``.

    LoRA adds ``r·(in + out)`` per targeted linear layer (A is r×in, B is out×r); DoRA adds a
    magnitude vector of ``out``; full trains every parameter (tied embeddings once). A stage with a score
    head (a reward model) also trains its new one-output head whole (``hidden`` weights).
    """
    return sum(prod(shape) for shape in trainable_shapes(info, adapter, stage))


def trainable_shapes(info: ModelInfo, adapter: AdapterSection | dict[str, Any],
                     stage: str = DEFAULT_STAGE) -> list[tuple[int, ...]]:
    """Shapes of every trainable tensor: the adapter's A, B (and DoRA magnitude), or all weights,
    and a reward model's score head."""
    get = as_dict(adapter).get
    method, r = get("method", "lora"), int(get("r", 16))
    head = [(1, info.hidden_size or 0)] if STAGES[stage].score_head else []
    if method == "full":
        tied = info.tie_word_embeddings and any(n.split(".")[-1] == "embed_tokens" for n, _ in info.shapes)
        body = [s for n, s in info.shapes if not (tied and n.split(".")[-1] == "lm_head")]
        # a reward model has no language-model head: the score head takes its place
        return head + [s for n, s in info.shapes if n.split(".")[-1] != "lm_head"] if head else body
    shapes: list[tuple[int, ...]] = head
    for out, inp in target_linears(info, get("target_modules", "all-linear")):
        shapes += [(r, inp), (out, r)] + ([(out,)] if method == "dora" else [])
    return shapes


def target_linears(info: ModelInfo, targets: str | list[str]) -> list[tuple[int, int]]:
    """(out, in) of each linear layer peft would adapt, matched as peft does (name or ``.name`` suffix)."""
    return [(out, inp) for _name, out, inp in named_linears(info, targets)]


def named_linears(info: ModelInfo, targets: str | list[str]) -> list[tuple[str, int, int]]:
    """(name, out, in) of each linear layer peft would adapt for ``targets``."""
    linears = [(name, shape[0], shape[1]) for name, shape in info.shapes if is_linear(name, shape)]
    if targets != "all-linear":
        linears = [lin for lin in linears if any(lin[0] == t or lin[0].endswith("." + t) for t in targets)]
    return linears


def as_dict(adapter: AdapterSection | dict[str, Any]) -> dict[str, Any]:
    """The adapter section as a plain dict, whichever form the caller has."""
    return adapter if isinstance(adapter, dict) else adapter.model_dump()


def is_linear(name: str, shape: tuple[int, ...]) -> bool:
    """A 2-D weight that is not an embedding or the output head: what peft's all-linear adapts."""
    return len(shape) == 2 and not any(word in name.split(".")[-1] for word in EMBEDDING_WORDS)
