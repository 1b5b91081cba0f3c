"""Turning a memory estimate into rows to show and into advice when it will not fit. Stdlib only."""

from __future__ import annotations

from typing import TYPE_CHECKING

from engine.estimate.memory import Estimate
from engine.units import fmt_bytes

if TYPE_CHECKING:
    from engine.config import RunConfig


def what_to_change(est: Estimate, config: RunConfig, available: int) -> list[str]:
    """Concrete changes that bring ``est`` under ``available`` bytes, most effective first."""
    tips = []
    if not config.train.gradient_checkpointing and est.activations_other < est.activations:
        tips.append(f"train.gradient_checkpointing: true saves {fmt_bytes(est.activations - est.activations_other)}")
    if config.train.batch_size > 1:
        tips.append("halve train.batch_size and double train.grad_accum (same effective batch)")
    if config.quant.mode != "4bit" and config.adapter.method != "full":
        tips.append("quant.mode: 4bit (QLoRA) stores the base weights in about a quarter of the memory")
    if config.adapter.method == "full":
        tips.append("adapter.method: lora trains a few million parameters instead of all of them")
    if config.data.cutoff_len > 512:
        tips.append("lower data.cutoff_len (activations grow with it)")
    if config.train.optimizer == "adamw_torch" and est.device == "cuda":
        tips.append("train.optimizer: adamw_8bit cuts optimizer state by 75%")
    return tips or [f"it needs {fmt_bytes(est.total)} of {fmt_bytes(available)}: use a larger GPU or a smaller model"]


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
        ("activations", est.activations, f"{fmt_bytes(est.activations_other)} " + ("without checkpointing" if gc else "checkpointed")),
        ("overhead", est.overhead, "CUDA context, allocator slack" if est.device == "cuda" else "Python + torch runtime"),
    ]
