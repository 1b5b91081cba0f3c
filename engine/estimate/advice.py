"""Turning a memory estimate into rows to show and into advice when it will not fit. Stdlib only."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from engine.estimate.memory import Estimate
from engine.units import fmt_bytes

if TYPE_CHECKING:
    from engine.config import RunConfig


def what_to_change(est: Estimate, config: RunConfig, available: int,
                   estimate_of: Callable[[RunConfig], Estimate] | None = None) -> list[str]:
    """Concrete changes that bring ``est`` under ``available`` bytes, each with what the run then needs
    (when ``estimate_of`` can re-estimate a changed config), the one that leaves it smallest first.

    On a CPU only what helps there is offered: 4-bit weights and 8-bit optimizers are GPU features
    (bitsandbytes), and suggesting QLoRA to a CPU run sends the user the wrong way.
    """
    train, on_gpu = config.train, est.device == "cuda"
    candidates: list[tuple[str, dict[str, Any] | None]] = []
    if not train.gradient_checkpointing and est.activations_other < est.activations:
        candidates.append((f"train.gradient_checkpointing: true saves "
                           f"{fmt_bytes(est.activations - est.activations_other)}",
                           {"train": {"gradient_checkpointing": True}}))
    if train.batch_size > 1:
        candidates.append(("halve train.batch_size and double train.grad_accum (same effective batch)",
                           {"train": {"batch_size": train.batch_size // 2, "grad_accum": train.grad_accum * 2}}))
    if config.data.cutoff_len > 256:
        candidates.append((f"data.cutoff_len: {config.data.cutoff_len // 2} (or your data's longest record: "
                           "tuitune data check --model M shows it)",
                           {"data": {"cutoff_len": config.data.cutoff_len // 2}}))
    if on_gpu and config.quant.mode != "4bit" and config.adapter.method != "full":
        candidates.append(("quant.mode: 4bit (QLoRA) stores the base weights in about a quarter of the memory",
                           {"quant": {"mode": "4bit"}}))
    if config.adapter.method == "full":
        candidates.append(("adapter.method: lora trains a few million parameters instead of all of them",
                           {"adapter": {"method": "lora"}}))
    if on_gpu and train.optimizer == "adamw_torch":
        candidates.append(("train.optimizer: adamw_8bit cuts optimizer state by 75%",
                           {"train": {"optimizer": "adamw_8bit"}}))
    tips: list[tuple[int, str]] = []
    for tip, change in candidates:
        after = _needs(config, change, estimate_of)
        if after is None:
            tips.append((0, tip))  # no re-estimate: the order above, most effective first
        else:
            fits = after <= available
            tips.append((after, f"{tip} → needs {fmt_bytes(after)}" + (", fits" if fits else ", not enough alone")))
    tips.sort(key=lambda item: item[0])  # what leaves the run smallest first: what fits alone comes first
    together = _together(config, candidates, available, estimate_of) if tips and tips[0][0] > available else None
    if together:
        return [together, *(tip for _, tip in tips)]
    if tips:
        return [tip for _, tip in tips]
    return [f"it needs {fmt_bytes(est.total)} of {fmt_bytes(available)}: use "
            + ("a larger GPU or a smaller model" if on_gpu else "a smaller model, or a machine with more memory")]


def _together(config: RunConfig, candidates: list[tuple[str, dict[str, Any] | None]], available: int,
              estimate_of: Callable[[RunConfig], Estimate] | None) -> str | None:
    """When no change fits alone: the fewest of them, most effective first, that fit together."""
    ranked = sorted(((_needs(config, change, estimate_of), name, change) for name, change in candidates
                     if change is not None), key=lambda item: item[0] if item[0] is not None else 1 << 62)
    merged: dict[str, Any] = {}
    names: list[str] = []
    for need, name, change in ranked:
        if need is None:
            continue
        for section, fields in change.items():
            merged[section] = {**merged.get(section, {}), **fields}
        names.append(name.split(" saves ")[0].split(" (")[0].split(" → ")[0])
        after = _needs(config, merged, estimate_of)
        if after is not None and after <= available and len(names) > 1:
            return f"together: {' + '.join(names)} → needs {fmt_bytes(after)}, fits"
    return None


def _needs(config: RunConfig, change: dict[str, Any] | None, estimate_of: Callable[[RunConfig], Estimate] | None
           ) -> int | None:
    """What the run needs with ``change`` laid over ``config`` (None when it cannot be re-estimated)."""
    if estimate_of is None or change is None:
        return None
    values = config.model_dump(mode="json")
    for section, fields in change.items():
        values[section] = {**values[section], **fields}
    try:
        return estimate_of(type(config).model_validate(values)).total
    except ValueError:
        return None


def breakdown(est: Estimate, config: RunConfig) -> list[tuple[str, int, str]]:
    """The estimate's terms as (name, bytes, what it is) rows, for display."""
    gc = config.train.gradient_checkpointing
    quant = f", {config.quant.mode} linear layers" if config.quant.mode != "none" else ""
    return [
        ("weights", est.weights, f"{est.dtype}{quant}"),
        ("adapter", est.adapter, "float32" if est.adapter else "none (full fine-tuning)"),
        ("gradients", est.gradients, f"+ {fmt_bytes(est.step_temp)} in the optimizer step; "
                                     "shares the peak with activations"),
        ("optimizer", est.optimizer, config.train.optimizer),
        ("activations", est.activations,
         f"{fmt_bytes(est.activations_other)} " + ("without checkpointing" if gc else "checkpointed")),
        ("overhead", est.overhead,
         "CUDA context, allocator slack" if est.device == "cuda" else "Python + torch runtime"),
    ]
