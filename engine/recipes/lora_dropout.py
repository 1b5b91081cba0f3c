"""LoRA dropout that keeps a one-bit mask for backward instead of two float copies, and draws it cheaply on CPU.

peft computes ``lora_B(lora_A(dropout(x)))``: the dropout keeps its float mask (4 bytes an
element on CPU) and ``lora_A`` keeps the dropped-out input (another 4), for every adapted layer,
even where several layers read the same ``x`` (q, k and v; gate and up). :class:`DropoutLinear`
fuses the dropout into ``lora_A``: it keeps ``x`` itself (one tensor shared by the layers that
read it) and the mask, and forms ``x * mask`` again in backward (one elementwise multiply; no
matmul is redone). The 1/(1-p) scale is applied to the layer's narrow output (rank-wide), not to
the input. On CPU the mask is kept packed eight to a byte (numpy's ``packbits``, a few milliseconds
a step): a one-byte bool mask a layer was still about a tenth of everything a SmolLM2 LoRA run
keeps for backward.

The mask on CPU: torch's ``bernoulli_`` (what ``F.dropout`` runs) draws each element from the
Mersenne Twister one at a time, about 5 ns an element here: with the multiplies around it, 27% of a
cutoff-256 step of SmolLM2 LoRA. :func:`keep_mask` draws the same distribution from numpy's PCG64
instead, 16 bits an element compared with the keep probability (rounded to 1/65536: 0.95 keeps with
probability 0.949997), seeded for each mask from torch's generator: a run seeded the same draws the
same masks, and a resume, which restores torch's generator, draws those of the uninterrupted run.
The masks are not peft's own, so a run's losses move by the dropout's noise (as with any other
seed), the same as a change of padding moves them; with the same masks the outputs and gradients
are peft's (tests/engine/test_speed_techniques.py). On CUDA the mask is ``native_dropout``'s, as
with ``F.dropout``.

:func:`fuse_lora_dropout` swaps it in on a peft model: plain LoRA layers only (DoRA and other
variants take the dropout out separately), and only where the dropout probability is above 0.
The adapter's parameters, their names and the saved files do not change.

Under mixed precision (bf16 base weights, float32 adapter weights, autocast: a GPU run's default, or
``train.precision: bf16``) peft casts each adapted layer's input to the adapter's float32 before
``lora_A``, a new full-width copy for every adapted layer (three of the same input for q, k and v, two
for gate and up), which ``lora_A`` keeps for backward, only for autocast to cast it back to bf16 for
the matmul. A fused layer takes the input as it comes instead (peft's cast is turned off for it) and
casts it itself only when autocast is off: the same values reach the matmul, and what it keeps is the
bf16 input the base layer keeps anyway.
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
            out = F.linear(dropped, weight)
        else:
            kept = keep_mask(x.shape, p)
            mask = pack_mask(kept)
            out = F.linear(x * kept, weight).mul_(1 / (1 - p))
        ctx.save_for_backward(x, mask, weight)
        ctx.p = p
        return out

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor | None, None]:
        """Gradients of ``x`` and ``weight``; the dropped-out input is formed again from x and the mask."""
        x, mask, weight = ctx.saved_tensors
        if mask.dtype == torch.uint8:  # packed on CPU
            mask = unpack_mask(mask, x.shape)
        grad = grad * (1 / (1 - ctx.p))  # rank-wide: cheaper here than on the input
        grad_x = (grad @ weight.to(grad.dtype)) * mask if ctx.needs_input_grad[0] else None
        grad_w = None
        if ctx.needs_input_grad[1]:
            dropped = (x * mask).to(grad.dtype)
            grad_w = grad.reshape(-1, grad.shape[-1]).t().mm(dropped.reshape(-1, x.shape[-1]))
            grad_w = grad_w.to(weight.dtype)
        return grad_x, grad_w, None


KEEP_LEVELS = 1 << 16
"""The keep probability's resolution: each element draws 16 bits."""


def keep_mask(shape: torch.Size, p: float) -> torch.Tensor:
    """A CPU bool tensor of ``shape``, each element True with probability 1-p (to 1/65536), independently.

    Drawn by numpy's PCG64 seeded from torch's default generator (one draw of it a mask), see the module docstring.
    """
    seed = int(torch.randint(0, 2**63 - 1, (1,)))
    draws = np.random.Generator(np.random.PCG64(seed)).integers(0, KEEP_LEVELS, shape.numel(), dtype=np.uint16)
    return torch.from_numpy(draws < round((1 - p) * KEEP_LEVELS)).view(shape)


def pack_mask(mask: torch.Tensor) -> torch.Tensor:
    """A CPU bool tensor packed eight elements to a byte (in its logical order)."""
    return torch.from_numpy(np.packbits(mask.numpy().reshape(-1)))


def unpack_mask(packed: torch.Tensor, shape: torch.Size) -> torch.Tensor:
    """The bool tensor of ``shape`` that :func:`pack_mask` packed."""
    bits = np.unpackbits(packed.numpy(), count=shape.numel())
    return torch.from_numpy(bits.view(np.bool_)).view(shape)


class DropoutLinear(nn.Linear):
    """peft's ``lora_A`` linear with the adapter's dropout folded in (see the module docstring)."""

    dropout_p: float = 0.0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Dropout then the linear map in training; the plain linear map otherwise."""
        if x.dtype != self.weight.dtype and not torch.is_autocast_enabled(x.device.type):
            x = x.to(self.weight.dtype)  # peft's cast, which fuse_lora_dropout turns off (see the module docstring)
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
        if downs and all(isinstance(down, DropoutLinear) for down in downs.values()):
            module.cast_input_dtype_enabled = False  # every lora_A casts for itself
    return fused
