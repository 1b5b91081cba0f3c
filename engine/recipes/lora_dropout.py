"""LoRA dropout that keeps a one-bit mask for backward instead of two float copies.

peft computes ``lora_B(lora_A(dropout(x)))``: the dropout keeps its float mask (4 bytes an
element on CPU) and ``lora_A`` keeps the dropped-out input (another 4), for every adapted layer,
even where several layers read the same ``x`` (q, k and v; gate and up). :class:`DropoutLinear`
fuses the dropout into ``lora_A``: it keeps ``x`` itself (one tensor shared by the layers that
read it) and the mask, and forms ``x * mask * scale`` again in backward (one elementwise
multiply; no matmul is redone). On CPU the mask is kept packed eight to a byte (numpy's
``packbits``, a few milliseconds a step): a one-byte bool mask a layer was still about a tenth of
everything a SmolLM2 LoRA run keeps for backward. The mask is drawn from the same generator with the same calls as
``torch.nn.functional.dropout`` (``bernoulli_`` of an empty float tensor on CPU,
``native_dropout`` on CUDA), so the masks, the outputs and the gradients are those of peft's
own path, and a run gives the same losses.

:func:`fuse_lora_dropout` swaps it in on a peft model: plain LoRA layers only (DoRA and other
variants take the dropout out separately), and only where the dropout probability is above 0.
The adapter's parameters, their names and the saved files do not change.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


class DropoutLinearFunction(torch.autograd.Function):
    """``F.linear(dropout(x, p), weight)`` keeping ``x`` and a boolean mask for backward."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, weight: torch.Tensor, p: float) -> torch.Tensor:
        """Drop out ``x`` with probability ``p`` (scaling the rest by 1/(1-p)) and apply ``weight``."""
        if x.is_cuda:
            dropped, mask = torch.native_dropout(x, p, True)  # what F.dropout runs on CUDA
        else:
            # F.dropout on CPU: a float 0/1 noise from bernoulli_, divided by 1-p, times x.
            noise = torch.empty_like(x).bernoulli_(1 - p)
            mask = pack_mask(noise.bool())
            dropped = x * noise.div_(1 - p)
        ctx.save_for_backward(x, mask, weight)
        ctx.p = p
        return F.linear(dropped, weight)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor | None, None]:
        """Gradients of ``x`` and ``weight``; the dropped-out input is formed again from x and the mask."""
        x, mask, weight = ctx.saved_tensors
        if mask.dtype == torch.uint8:  # packed on CPU
            mask = unpack_mask(mask, x.shape)
        noise = _noise(mask, x.dtype, ctx.p)
        grad_x = (grad @ weight.to(grad.dtype)) * noise if ctx.needs_input_grad[0] else None
        grad_w = None
        if ctx.needs_input_grad[1]:
            dropped = x * noise
            grad_w = grad.reshape(-1, grad.shape[-1]).t().mm(dropped.reshape(-1, x.shape[-1]).to(grad.dtype))
            grad_w = grad_w.to(weight.dtype)
        return grad_x, grad_w, None


def pack_mask(mask: torch.Tensor) -> torch.Tensor:
    """A CPU bool tensor packed eight elements to a byte (in its logical order)."""
    return torch.from_numpy(np.packbits(mask.numpy().reshape(-1)))


def unpack_mask(packed: torch.Tensor, shape: torch.Size) -> torch.Tensor:
    """The bool tensor of ``shape`` that :func:`pack_mask` packed."""
    bits = np.unpackbits(packed.numpy(), count=shape.numel())
    return torch.from_numpy(bits.view(np.bool_)).view(shape)


def _noise(mask: torch.Tensor, dtype: torch.dtype, p: float) -> torch.Tensor:
    """The dropout's multiplier: 1/(1-p) where kept, 0 where dropped, computed as dropout computes it."""
    return mask.to(dtype).div_(1 - p)


class DropoutLinear(nn.Linear):
    """peft's ``lora_A`` linear with the adapter's dropout folded in (see the module docstring)."""

    dropout_p: float = 0.0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Dropout then the linear map in training; the plain linear map otherwise."""
        if not self.training or self.dropout_p == 0:
            return F.linear(x, self.weight, self.bias)
        return DropoutLinearFunction.apply(x, self.weight, self.dropout_p)


def fuse_lora_dropout(model: nn.Module) -> int:
    """Fold each plain LoRA layer's dropout into its ``lora_A``; returns how many layers changed."""
    fused = 0
    for module in model.modules():
        drops, downs = getattr(module, "lora_dropout", None), getattr(module, "lora_A", None)
        if not isinstance(drops, nn.ModuleDict) or not isinstance(downs, nn.ModuleDict):
            continue
        for name, dropout in list(drops.items()):
            down = downs[name] if name in downs else None
            plain = name not in getattr(module, "lora_variant", {}) and type(down) is nn.Linear and down.bias is None
            if plain and isinstance(dropout, nn.Dropout) and dropout.p > 0:
                down.__class__ = DropoutLinear
                down.dropout_p = float(dropout.p)
                drops[name] = nn.Identity()
                fused += 1
    return fused
