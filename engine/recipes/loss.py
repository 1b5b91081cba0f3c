"""The causal-LM loss without the full logits: a chunked linear + cross-entropy.

A plain ``XForCausalLM`` forward turns every position's hidden state into a float32 row of
vocabulary logits (SmolLM2: 49,152 a token, 192 KiB), keeps them for the log-softmax backward,
and at the start of the backward pass also holds their gradient: at this model size the biggest
activation of all, and a third of the matmul time. Two things make it cheaper without changing
the result:

* Only positions with a label get logits. In supervised fine-tuning the prompt is masked
  (label -100): its logits contribute nothing to the loss and a zero gradient, so skipping them
  is exact. The output head's work shrinks to the trained tokens (about half of them).
* :class:`LinearCrossEntropy` walks the kept positions in chunks of ``chunk_rows`` and, in the
  forward pass, computes each chunk's logits, its loss and at once the gradient of the loss with
  respect to the chunk's hidden states (``(softmax - onehot) @ W``), and, when the head is trained,
  with respect to the head's weight. Only those gradients (``tokens x hidden``, much smaller than
  ``tokens x vocabulary``) are kept for backward, which just scales them by the incoming
  gradient. Nothing is recomputed: the same three matmuls as the plain path (logits, then the
  gradients of input and weight), done a chunk at a time. This is Liger-Kernel's
  ``fused_linear_cross_entropy`` written in plain torch, so it runs on CPU.

On CUDA with ``liger-kernel`` installed its Triton kernel does the same in fused form and is used
instead. :func:`use_chunked_loss` installs either on a loaded model by replacing its forward when
called with labels; models whose logits are transformed after the head (soft-capping, scaling)
or whose head is itself adapted keep the plain forward.
"""

from __future__ import annotations

import logging
import types
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

log = logging.getLogger("engine.recipes.loss")

IGNORE_INDEX = -100
LOGITS_PER_CHUNK = 1 << 22
"""Logit elements computed at a time (16 MiB in float32): chunks of about 85 tokens at a 49k vocabulary
(64 at least, :func:`chunk_rows_for`), large enough that the matmuls keep their speed. The chunk's logits
and their exponentials are live at the end of the forward pass, when every activation is: at 1 << 24
(64 MiB) they added about 0.15 GiB to a SmolLM2 run's peak RSS."""
SUPPORTED = {"llama", "mistral", "qwen2", "qwen3", "phi3", "smollm3", "olmo2"}
"""Model types whose causal-LM forward is ``head(decoder(...).last_hidden_state)`` followed by
transformers' shifted cross-entropy, nothing more (no soft-capping, logit scaling or auxiliary loss)."""


class LinearCrossEntropy(torch.autograd.Function):
    """Summed cross-entropy of ``hidden @ weight.T (+ bias)`` against ``targets``, chunk by chunk.

    The gradients are computed in the forward pass and only they are kept for backward (see the
    module docstring). ``hidden`` holds only positions with a real target.
    """

    @staticmethod
    def forward(ctx: Any, hidden: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
                targets: torch.Tensor, chunk_rows: int) -> torch.Tensor:
        """The loss summed over the rows of ``hidden``, as float32."""
        need_h, need_w = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        need_b = bias is not None and ctx.needs_input_grad[2]
        grad_h = torch.empty_like(hidden) if need_h else None
        grad_w = torch.zeros(weight.shape, dtype=torch.float32, device=weight.device) if need_w else None
        grad_b = torch.zeros(bias.shape, dtype=torch.float32, device=bias.device) if need_b else None
        total = torch.zeros((), dtype=torch.float32, device=hidden.device)
        for start in range(0, hidden.shape[0], chunk_rows):
            h, t = hidden[start:start + chunk_rows], targets[start:start + chunk_rows]
            # The head's matmul in the ambient (autocast) dtype, then float32, as the plain path's
            # ``logits.float()`` in transformers' loss.
            logits = F.linear(h, weight, bias).float()
            lse = torch.logsumexp(logits, dim=-1)
            total += (lse - logits.gather(1, t[:, None]).squeeze(1)).sum()
            if not (need_h or need_w or need_b):
                continue
            # d loss / d logits = softmax - onehot, computed in place over the logits.
            grad = logits.sub_(lse[:, None]).exp_()
            grad[torch.arange(t.shape[0], device=t.device), t] -= 1
            grad = grad.to(h.dtype)
            if need_h:
                grad_h[start:start + chunk_rows] = grad @ weight.to(grad.dtype)
            if need_w:
                grad_w.addmm_(grad.t().float(), h.float())
            if need_b:
                grad_b += grad.float().sum(0)
        ctx.save_for_backward(grad_h, grad_w, grad_b)
        ctx.dtypes = (weight.dtype, bias.dtype if bias is not None else None)
        return total

    @staticmethod
    def backward(ctx: Any, grad_output: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        """Scale the gradients kept from the forward pass by the loss's incoming gradient."""
        grad_h, grad_w, grad_b = ctx.saved_tensors
        w_dtype, b_dtype = ctx.dtypes
        scale = grad_output.float()
        return (
            (grad_h * scale.to(grad_h.dtype)) if grad_h is not None else None,
            (grad_w * scale).to(w_dtype) if grad_w is not None else None,
            (grad_b * scale).to(b_dtype) if grad_b is not None else None,
            None,
            None,
        )


def chunk_rows_for(vocab_size: int) -> int:
    """Rows per chunk so that a chunk's logits hold about LOGITS_PER_CHUNK elements."""
    return max(64, LOGITS_PER_CHUNK // max(vocab_size, 1))


def causal_lm_loss(hidden: torch.Tensor, head: nn.Linear, labels: torch.Tensor,
                   num_items_in_batch: torch.Tensor | int | None = None) -> torch.Tensor:
    """transformers' ``ForCausalLMLoss`` of ``head(hidden)`` without the full logits.

    The same shift (position i predicts label i+1, the last position nothing), the same
    normalisation (summed, divided by ``num_items_in_batch`` when the Trainer gives it, else the
    mean over labelled positions).
    """
    shifted = F.pad(labels, (0, 1), value=IGNORE_INDEX)[..., 1:].reshape(-1)
    keep = shifted != IGNORE_INDEX
    rows = hidden.reshape(-1, hidden.shape[-1])[keep]
    targets = shifted[keep]
    total = _summed_loss(rows, head, targets)
    if num_items_in_batch is None:
        return total / keep.sum().clamp(min=1)
    if torch.is_tensor(num_items_in_batch):
        num_items_in_batch = num_items_in_batch.to(total.device)
    return total / num_items_in_batch


def _summed_loss(rows: torch.Tensor, head: nn.Linear, targets: torch.Tensor) -> torch.Tensor:
    """The summed loss: Liger's fused Triton kernel on CUDA when installed, else LinearCrossEntropy."""
    if rows.is_cuda and liger_available():
        from liger_kernel.transformers.fused_linear_cross_entropy import LigerFusedLinearCrossEntropyLoss

        out = LigerFusedLinearCrossEntropyLoss(reduction="sum")(head.weight, rows, targets, head.bias)
        out = out[0] if isinstance(out, tuple) else getattr(out, "loss", out)  # versions return a tuple or a record
        return out.float()
    return LinearCrossEntropy.apply(rows, head.weight, head.bias, targets, chunk_rows_for(head.weight.shape[0]))


def liger_available() -> bool:
    """Whether liger-kernel (Triton, CUDA only) can be imported."""
    try:
        import liger_kernel.transformers.fused_linear_cross_entropy  # noqa: F401
    except Exception:  # not installed, or Triton missing: the pure-torch path is used
        return False
    return True


def causal_lm(model: nn.Module) -> nn.Module:
    """The transformers ``XForCausalLM`` inside a peft wrapper (or the model itself)."""
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def chunked_loss_problem(model: nn.Module) -> str | None:
    """Why the chunked loss cannot replace this model's loss, or None when it can."""
    lm = causal_lm(model)
    config = getattr(lm, "config", None)
    kind = getattr(config, "model_type", None)
    if kind not in SUPPORTED:
        return f"model type {kind} is not known to compute its logits plainly"
    if any(getattr(config, name, None) for name in ("final_logit_softcapping", "logit_scale", "logits_scaling")):
        return "the model transforms its logits after the output head"
    head = lm.get_output_embeddings() if hasattr(lm, "get_output_embeddings") else None
    if type(head) is not nn.Linear:
        return "the output head is not a plain linear layer (adapted or quantized)"
    return None


def use_chunked_loss(model: nn.Module) -> bool:
    """Make ``model``'s forward with labels compute the loss without the full logits.

    Returns False (and changes nothing) where :func:`chunked_loss_problem` finds a reason. The
    forward without labels (generation, evaluation of logits) is the model's own. The returned
    output has ``loss`` and no ``logits``.
    """
    problem = chunked_loss_problem(model)
    if problem:
        log.info("plain loss kept: %s", problem)
        return False
    lm = causal_lm(model)
    lm.forward = types.MethodType(_make_forward(lm.forward), lm)
    return True


def _make_forward(original: Any) -> Any:
    """A causal-LM forward that returns only the loss when labels are given."""
    from transformers.modeling_outputs import CausalLMOutputWithPast

    def forward(self: nn.Module, input_ids: torch.Tensor | None = None, attention_mask: torch.Tensor | None = None,
                position_ids: torch.Tensor | None = None, labels: torch.Tensor | None = None,
                num_items_in_batch: Any = None, inputs_embeds: torch.Tensor | None = None, **kwargs: Any) -> Any:
        if labels is None or kwargs.get("use_cache") or kwargs.get("output_hidden_states"):
            return original(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids,
                            labels=labels, inputs_embeds=inputs_embeds, num_items_in_batch=num_items_in_batch,
                            **kwargs)
        kwargs.pop("use_cache", None)
        outputs = self.get_decoder()(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids,
                                     inputs_embeds=inputs_embeds, use_cache=False, **kwargs)
        loss = causal_lm_loss(outputs.last_hidden_state, self.get_output_embeddings(), labels, num_items_in_batch)
        return CausalLMOutputWithPast(loss=loss)

    return forward
