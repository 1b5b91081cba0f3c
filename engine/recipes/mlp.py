"""The SwiGLU MLP keeping two of its four wide activations for backward instead of four.

A Llama-style MLP computes ``down(silu(gate(x)) * up(x))``. Autograd keeps, for every token of every
layer, four ``intermediate_size`` rows: ``gate`` (for silu's backward), ``silu(gate)`` and ``up`` (for
the product's) and the product ``h`` (for the gradient of ``down``'s LoRA matrix ``A``). Without
gradient checkpointing they are the largest saved activations of a LoRA run: on SmolLM2 (1,536 wide
against a 576-wide residual stream) half of all it keeps.

Here only ``gate`` and ``up`` are kept. :class:`SwiGLU` forms ``silu(gate) * up`` and computes its
backward from ``gate`` and ``up`` with the very operations autograd would run (``silu_backward`` and
two products), forming ``silu(gate)`` again; and while ``down`` runs, a saved-tensor hook swaps any
tensor it would keep that is ``h`` for a note to form ``h`` again from ``gate`` and ``up`` when the
backward pass reads it. That re-forms two elementwise products a layer (no matmul is redone): the
same bits as the plain path, so the same losses and gradients, for half the memory of the MLP.

:func:`use_lean_mlp` puts it on a model's MLP modules when they have that shape (``gate_proj``,
``up_proj``, ``down_proj`` and a SiLU activation). It is for runs without gradient checkpointing:
under checkpointing the hook would keep ``gate`` and ``up`` that the checkpoint means to drop.
"""

from __future__ import annotations

import types
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

SILU = {"silu", "swish"}


class SwiGLU(torch.autograd.Function):
    """``silu(gate) * up`` keeping only ``gate`` and ``up`` for backward."""

    @staticmethod
    def forward(ctx: Any, gate: torch.Tensor, up: torch.Tensor) -> torch.Tensor:
        """The gated product, as the MLP's ``act_fn(gate) * up``."""
        ctx.save_for_backward(gate, up)
        return F.silu(gate) * up

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """What autograd's MulBackward and SiluBackward compute, with ``silu(gate)`` formed again."""
        gate, up = ctx.saved_tensors
        grad_gate = torch.ops.aten.silu_backward(grad * up, gate) if ctx.needs_input_grad[0] else None
        grad_up = grad * F.silu(gate) if ctx.needs_input_grad[1] else None
        return grad_gate, grad_up


class _Product:
    """A saved tensor given up for the note to form it again: ``silu(gate) * up`` seen as it was saved."""

    def __init__(self, gate: torch.Tensor, up: torch.Tensor, saved: torch.Tensor) -> None:
        self.gate, self.up = gate, up
        self.size, self.stride, self.offset = saved.size(), saved.stride(), saved.storage_offset()

    def tensor(self) -> torch.Tensor:
        """The saved tensor again, bit for bit (same operations on the same inputs)."""
        with torch.no_grad():
            product = F.silu(self.gate) * self.up
        return product.as_strided(self.size, self.stride, self.offset)


def lean_forward(self: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """``down(silu(gate(x)) * up(x))`` keeping ``gate`` and ``up`` only (see the module docstring)."""
    gate = self.gate_proj(x)
    up = self.up_proj(x)
    if not torch.is_grad_enabled():
        return self.down_proj(self.act_fn(gate) * up)
    product = SwiGLU.apply(gate, up)
    storage = product.untyped_storage().data_ptr()

    def pack(saved: torch.Tensor) -> Any:
        if saved.untyped_storage().data_ptr() == storage and saved.dtype == product.dtype:
            return _Product(gate, up, saved)
        return saved

    def unpack(saved: Any) -> torch.Tensor:
        return saved.tensor() if isinstance(saved, _Product) else saved

    with torch.autograd.graph.saved_tensors_hooks(pack, unpack):
        return self.down_proj(product)


def use_lean_mlp(model: nn.Module) -> int:
    """Give every SwiGLU MLP of ``model`` :func:`lean_forward`; returns how many changed."""
    changed = 0
    for module in model.modules():
        if not all(hasattr(module, name) for name in ("gate_proj", "up_proj", "down_proj", "act_fn")):
            continue
        hidden_act = getattr(getattr(module, "config", None), "hidden_act", None)
        if hidden_act not in SILU or type(module.act_fn).__name__ not in ("SiLU", "SiLUActivation"):
            continue
        module.forward = types.MethodType(lean_forward, module)
        changed += 1
    return changed
