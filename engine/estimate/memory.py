"""How much memory a run will need, from the model's shapes and the run config. Standard library only.

Every term is bytes, computed from the weight shapes that ``engine.models.info`` reads from
safetensors headers (or derives from config.json), never by loading the model.

Sources for the formulas:

* Weights, gradients and AdamW state: the mixed-precision accounting of ZeRO (Rajbhandari et al.
  2020, §3.1), adapted to what the stack here does: torch's AdamW keeps two moments in the
  parameter's dtype; peft casts adapter weights to float32 (``autocast_adapter_dtype``).
* 4-bit NF4: QLoRA (Dettmers et al. 2023, §3): 4 bits a weight plus a float32 absmax per block
  of 64 (0.5 bit), or with double quantization an 8-bit absmax plus a float32 constant per 256
  blocks (0.127 bit). bitsandbytes leaves the output head and embeddings unquantized.
* 8-bit: LLM.int8 (Dettmers et al. 2022): one byte a weight plus a float32 scale per output row.
* 8-bit Adam: bitsandbytes blockwise 8-bit states (Dettmers et al. 2022, "8-bit Optimizers"):
  2 bytes a parameter; tensors under 4096 elements keep 32-bit states.
* Activations: the per-layer count of Korthikanti et al. 2022 ("Reducing Activation
  Recomputation", §4.1), redone for a Llama block (RMSNorm, grouped-query SDPA attention,
  SwiGLU MLP) with a fused attention kernel, so there is no ``5·a·s²`` score term, and for
  frozen base layers (which keep no inputs) with LoRA branches (which do). Checked against
  the tensors autograd actually saves (tests/unit/test_estimate.py: within 1% on SmolLM2).
  The plain loss adds ``b·s·V`` float32 log-probabilities, their gradient and the logits' gradient;
  the chunked loss (``train.chunked_loss``, engine/recipes/loss.py) instead keeps the gradient of the
  hidden states (``b·s·h``) and, while it runs, one chunk of float32 logits and its exponentials.
  The fused LoRA dropout (``train.fused_lora_dropout``) keeps each adapted layer's input once per
  shared tensor and a one-byte mask per adapted layer. Padding-free batches change nothing here:
  the worst batch is still ``b`` records of ``cutoff_len`` tokens.
  Gradient checkpointing keeps each layer's input and recomputes one layer at a time.
* Stages (``stage``): preference pairs (dpo, orpo, rm) put a pair's chosen and rejected sequences
  in the same forward pass, so a batch of ``b`` pairs keeps the activations of ``2b`` sequences; kto
  trains ``b`` answers. The reference pass of dpo and kto (the base with the adapter off) runs
  without gradients and keeps nothing for backward; with full fine-tuning it is a frozen copy of the
  base (its weights counted twice) unless precomputed. TRL computes dpo's and kto's log-probabilities
  through a chunked head (as the chunked loss); orpo's trainer keeps whole float32 logits (the plain
  loss); the reward model's head has one output instead of the vocabulary. Preference trainers turn
  dropout off (TRL's default), so no dropout copies are kept. The stages that sample answers train
  ``b · num_generations`` sequences of ``cutoff_len + max_completion_length`` tokens (the worst
  case; the sampling's KV cache and the reward model are not counted).
* Overhead: on CUDA the context and cuBLAS workspaces (about 0.5 GiB, outside the allocator
  peak) plus 5% allocator slack; on CPU the resident size of Python with torch, transformers,
  peft and datasets imported (about 0.5 GiB, measured).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from math import prod
from typing import TYPE_CHECKING, Any

from engine.estimate.trainable import as_dict, is_linear, named_linears, trainable_shapes
from engine.stages import STAGES
from engine.units import fmt_bytes

if TYPE_CHECKING:
    from engine.config import AdapterSection, RunConfig
    from engine.models.info import ModelInfo

DTYPE_BYTES = {"float32": 4, "bfloat16": 2, "float16": 2}
CUDA_CONTEXT = 512 * 1024**2
CPU_RUNTIME = 512 * 1024**2
ALLOCATOR_SLACK = 0.05


@dataclass(frozen=True)
class Estimate:
    """Peak memory of a training run, term by term, in bytes."""

    method: str
    """What is trained and how the base is stored, e.g. QLoRA 4-bit."""
    device: str
    """cuda or cpu: decides the default dtypes and the overhead."""
    dtype: str
    """Dtype of the unquantized weights."""
    params_total: int
    trainable_params: int
    weights: int
    """The base model's weights (quantized ones at their packed size)."""
    adapter: int
    """LoRA/DoRA adapter weights (float32); 0 for full fine-tuning."""
    gradients: int
    """Gradients of the trainable parameters."""
    optimizer: int
    """Optimizer state (AdamW: two moments)."""
    step_temp: int
    """Temporaries of the optimizer step: torch's foreach AdamW makes one more copy of the parameters."""
    activations: int
    """Saved activations and the loss for one batch, with the run's checkpointing setting."""
    activations_other: int
    """The same with the other gradient checkpointing setting, to show what switching saves."""
    overhead: int
    """CUDA context and allocator slack, or the CPU runtime's resident size."""
    notes: tuple[str, ...] = ()

    @property
    def peak(self) -> int:
        """What the framework allocates: comparable with torch.cuda.max_memory_allocated.

        Gradients and activations share the backward pass: the Trainer frees gradients after
        each optimizer step, and backward frees each layer's activations as its gradients
        arrive. So the peak is either the backward pass (activations) or the optimizer step
        (gradients and the step's temporaries), whichever is larger, over the resident weights,
        adapter and optimizer state.
        """
        return self.weights + self.adapter + self.optimizer + max(self.activations, self.gradients + self.step_temp)

    @property
    def total(self) -> int:
        """What the device must hold: the peak plus overhead (compare with a GPU's memory or RSS)."""
        return self.peak + self.overhead


def estimate(info: ModelInfo, config: RunConfig, device: str = "cuda") -> Estimate:
    """Estimate peak training memory of ``config`` on ``info`` for ``device`` (cuda or cpu).

    Raises:
        ValueError: when the model's shapes are unknown (a hub id not downloaded yet).
    """
    if not info.known or not info.shapes:
        raise ValueError(f"{info.name_or_path}: architecture unknown until the model is downloaded")
    quant, method = config.quant.mode if not info.quantization else _stored_quant(info), config.adapter.method
    stage = STAGES[config.stage]
    adapter: Any = config.adapter
    if not stage.dropout:  # TRL's preference trainers turn dropout off
        adapter = {**as_dict(config.adapter), "dropout": 0.0}
    act_info = replace(info, vocab_size=1) if stage.score_head else info  # a one-output score head
    dtype = load_dtype(config, device)
    d = DTYPE_BYTES[dtype]
    a = activation_bytes(config, device)
    trainable = trainable_shapes(info, config.adapter, config.stage)
    n_train = sum(prod(s) for s in trainable)
    train_bytes = d if method == "full" else 4
    weights = _weights(info, quant, config.quant.double_quant, d)
    if method == "full" and stage.reference and config.preference.reference == "base":
        weights *= 2  # no adapter to switch off: TRL keeps a frozen copy of the base as the reference
    b, s = config.train.batch_size * stage.sequences_per_record, config.data.cutoff_len
    if stage.samples:  # each prompt answered num_generations times, the answers trained together
        b = config.train.batch_size * config.rl.generations(device == "cuda")
        s = config.data.cutoff_len + config.rl.completion_tokens(device == "cuda")
    masks = 4 if device == "cpu" else 1  # peft's dropout masks: float on CPU, bool on CUDA
    chunked = config.train.chunked_loss if stage.trainer == "engine" else stage.trl_logits == "chunked"
    lean = {"mask_bytes": masks, "fused_dropout": config.train.fused_lora_dropout, "chunked_loss": chunked,
            "lean_mlp": config.train.lean_mlp}
    act_on = activations(act_info, adapter, b, s, a, checkpointing=True, **lean)
    act_off = activations(act_info, adapter, b, s, a, checkpointing=False, **lean)
    gc = config.train.gradient_checkpointing
    optimizer = config.train.optimizer
    est = Estimate(
        method=method_label(config), device=device, dtype=dtype, params_total=info.params_total or 0,
        trainable_params=n_train, weights=weights, adapter=0 if method == "full" else n_train * 4,
        gradients=n_train * train_bytes, optimizer=_optimizer(trainable, optimizer, train_bytes),
        step_temp=n_train * train_bytes if optimizer == "adamw_torch" else 0,
        activations=act_on if gc else act_off, activations_other=act_off if gc else act_on, overhead=0,
        notes=_notes(info, config, device))
    overhead = CUDA_CONTEXT + int(ALLOCATOR_SLACK * est.peak) if device == "cuda" else CPU_RUNTIME
    if stage.samples:  # the term that dwarfs the rest when prompts are short (issue 25: 14.4 GiB vs 3.9 GiB RSS)
        completion = config.rl.completion_tokens(device == "cuda")
        at_64 = est.activations * (64 + completion) // s
        est = replace(est, notes=(*est.notes, f"Activations ({fmt_bytes(est.activations)}) are counted for prompts of "
                                  f"cutoff_len ({config.data.cutoff_len}) tokens; the trainer pads prompts only to the "
                                  f"batch's longest, so prompts of 64 tokens need about {fmt_bytes(at_64)}."))
    return replace(est, overhead=overhead)


def method_label(config: RunConfig) -> str:
    """Full, LoRA, DoRA, QLoRA 4-bit or LoRA on 8-bit, from the adapter and quant sections."""
    name = {"full": "Full fine-tuning", "lora": "LoRA", "dora": "DoRA"}[config.adapter.method]
    if config.quant.mode == "4bit":
        return "QLoRA 4-bit" if name == "LoRA" else f"Q{name} 4-bit"
    return f"{name} on 8-bit" if config.quant.mode == "8bit" else name


def activations(info: ModelInfo, adapter: AdapterSection | dict[str, Any], batch: int, seq: int, d: int,
                checkpointing: bool, mask_bytes: int = 1, fused_dropout: bool = False,
                chunked_loss: bool = False, packed_masks: bool | None = None, lean_mlp: bool = False) -> int:
    """Bytes saved for the backward pass of one batch of ``batch × seq`` tokens (see module docstring).

    Counted per token and layer from what autograd keeps in a Llama block (checked tensor by
    tensor with ``torch.autograd.graph.saved_tensors_hooks`` on SmolLM2, bench/bench_estimate.py):
    RMSNorm keeps its input as float32 (2h·4 bytes); SDPA keeps q, k, v and its output
    (2q + 2kv); SwiGLU keeps the gate and up outputs and the SiLU output (3i). A trained linear
    keeps its input, shared by the layers that read the same tensor (q/k/v, gate/up); with LoRA
    dropout each adapted layer keeps its own dropped-out copy and its mask (``mask_bytes`` an
    element: float on CPU, bool on CUDA); lora_A keeps r outputs. Full training also keeps the
    normalised hidden states for the RMSNorm weights (2h). DoRA also keeps the combined weight.
    With ``fused_dropout`` (plain LoRA only) the adapted layers keep their inputs as without dropout
    (shared) plus a one-byte mask each, packed eight to a byte on CPU (``packed_masks``; by default
    when ``mask_bytes`` is 4, peft's CPU float masks). ``chunked_loss``: see :func:`loss_bytes`.
    ``lean_mlp`` (``train.lean_mlp``, never under checkpointing): the SwiGLU keeps gate and up only;
    SiLU's output and the product (down's input) are re-formed in backward, i elements each, except
    that with unfused LoRA dropout down's lora_A still keeps its own dropped copy of the product.
    """
    packed = mask_bytes == 4 if packed_masks is None else packed_masks
    tokens, layers = batch * seq, max(info.num_layers or 1, 1)
    h, i = info.hidden_size or 0, info.intermediate_size or 0
    hd = info.head_dim or h // max(info.num_heads or 1, 1)
    q, kv = (info.num_heads or 0) * hd, (info.num_kv_heads or 0) * hd
    adapter = as_dict(adapter)
    full = adapter.get("method", "lora") == "full"
    adapted = named_linears(info, "all-linear" if full else adapter.get("target_modules", "all-linear"))
    shared_inputs = sum(inp for _parent, inp in {(n.rpartition(".")[0], inp) for n, _o, inp in adapted}) / layers
    elements, extra = 2 * q + 2 * kv + 3 * i, 2 * h * 4
    dropout = bool(adapter.get("dropout", 0.05))
    fused = fused_dropout and dropout and adapter.get("method", "lora") == "lora"
    if full:
        elements += 2 * h + shared_inputs
    elif fused:
        own_inputs = sum(inp for _n, _o, inp in adapted) / layers
        elements += shared_inputs + adapter.get("r", 16) * len(adapted) / layers
        extra += own_inputs / 8 if packed else own_inputs
    elif dropout:
        own_inputs = sum(inp for _n, _o, inp in adapted) / layers
        elements += own_inputs + adapter.get("r", 16) * len(adapted) / layers
        extra += own_inputs * mask_bytes
    else:
        elements += shared_inputs + adapter.get("r", 16) * len(adapted) / layers
    if lean_mlp and not checkpointing and i:
        elements -= i if (dropout and not fused and not full) else 2 * i
    layer_bytes = int(tokens * (elements * d + extra))
    # DoRA keeps about each adapted layer's whole W + BA (float32) for backward: measured 97% of
    # that on SmolLM2 with all-linear, 50% with q/v only, so this errs high for few targets.
    if adapter.get("method") == "dora":
        layer_bytes += sum(out * inp for _n, out, inp in adapted) * 4 // layers
    kept = tokens * h * d * layers + layer_bytes if checkpointing else layer_bytes * layers - _first_layer_gap(
        adapter, adapted, tokens, h, 0 if fused else mask_bytes)
    loss = loss_bytes(tokens, info.vocab_size or 0, h, d, chunked_loss, head_trained=full)
    # After the last layer: the final RMSNorm's float32 input; full training also keeps its
    # normalised output and the output head's input.
    return kept + loss + tokens * h * (4 + (4 + d if full else 0))


def loss_bytes(tokens: int, vocab: int, hidden: int, d: int, chunked: bool, head_trained: bool = False) -> int:
    """Memory of the loss at the end of the forward pass.

    Plain: float32 log-probabilities kept for backward, then their gradient and the gradient of
    the logits live at the same time at the start of the backward pass (12 bytes a logit).
    Chunked: the hidden states' gradient kept for backward (``d`` bytes each), the head's float32
    gradient when it is trained, and while a chunk runs its float32 logits and their exponentials
    (``2·rows·V·4``, rows as engine/recipes/loss.py picks them).
    """
    if not chunked:
        return tokens * vocab * 12
    rows = min(tokens, max(64, (1 << 22) // max(vocab, 1)))
    return tokens * hidden * d + (vocab * hidden * 4 if head_trained else 0) + 2 * rows * vocab * 4


def _first_layer_gap(adapter: dict[str, Any], adapted: list[tuple[str, int, int]], tokens: int, h: int,
                     mask_bytes: int) -> int:
    """What the first layer does not keep under LoRA: its input needs no gradient (frozen embeddings),
    so its first RMSNorm keeps nothing, nor do the dropouts in front of q, k and v."""
    if adapter.get("method") == "full":
        return 0
    first = [n for n, _o, _i in adapted if re.search(r"\.0\.[\w.]*(q_proj|k_proj|v_proj)$", n)]
    return tokens * (h * 4 + (len(first) * h * mask_bytes if adapter.get("dropout", 0.05) else 0))


def load_dtype(config: RunConfig, device: str) -> str:
    """Dtype of the unquantized weights, as ``engine.model.pick_dtype`` chooses it.

    auto is bfloat16 on a GPU, except for full fine-tuning, which keeps float32 master weights.
    """
    if config.model.dtype != "auto":
        return config.model.dtype
    return "bfloat16" if device == "cuda" and config.adapter.method != "full" else "float32"


def activation_bytes(config: RunConfig, device: str) -> int:
    """Bytes per activation element: 2 under bf16/fp16 mixed precision (auto on a GPU), else 4."""
    precision = config.train.precision
    if precision == "auto":
        return 2 if device == "cuda" else 4
    return 4 if precision == "fp32" else 2


def _weights(info: ModelInfo, quant: str, double_quant: bool, d: int) -> int:
    """Bytes of the base weights: linear layers packed when quantized, the rest at ``d`` bytes.

    peft's ``prepare_model_for_kbit_training`` casts every unquantized parameter of a quantized
    model (embeddings, norms, output head) to float32, so those take 4 bytes there.
    """
    linear = sum(prod(s) for n, s in info.shapes if is_linear(n, s))
    rows = sum(s[0] for n, s in info.shapes if is_linear(n, s))
    other = (info.params_total or 0) - linear
    if quant == "4bit":
        constants = (1 / 64 + 4 / (64 * 256)) if double_quant else 4 / 64
        return int(linear * (0.5 + constants)) + other * 4
    if quant == "8bit":
        return linear + rows * 4 + other * 4
    return (info.params_total or 0) * d


def _optimizer(shapes: list[tuple[int, ...]], optimizer: str, param_bytes: int) -> int:
    """Optimizer state bytes for the trainable tensors."""
    if optimizer == "sgd":
        return 0
    if optimizer in {"adamw_8bit", "paged_adamw_8bit"}:
        return sum(2 * prod(s) if prod(s) >= 4096 else 8 * prod(s) for s in shapes)
    if optimizer == "adafactor":  # factored second moment: a row and a column vector per matrix
        return sum(4 * (s[0] + s[1]) if len(s) == 2 else 4 * prod(s) for s in shapes)
    return sum(2 * prod(s) * param_bytes for s in shapes)


def _stored_quant(info: ModelInfo) -> str:
    """4bit or 8bit for a checkpoint quantized ahead (bitsandbytes, GPTQ, AWQ…), from its quantization_config."""
    words = (info.quantization or "").split()
    return "8bit" if "8bit" in words or "8" in words else "4bit"


def _notes(info: ModelInfo, config: RunConfig, device: str) -> tuple[str, ...]:
    notes = []
    if info.quantization:
        notes.append(f"The checkpoint is already quantized ({info.quantization}): it loads that way whatever "
                     "quant.mode says, and only adapters can be trained on it.")
    if device == "cpu":
        notes.append("No GPU: figures are for CPU training (float32), compared with process memory (RSS).")
    stage = STAGES[config.stage]
    if stage.sequences_per_record > 1:
        notes.append(f"Stage {config.stage}: each pair runs its chosen and rejected answer together, so a batch of "
                     f"{config.train.batch_size} pairs holds {stage.sequences_per_record * config.train.batch_size} "
                     "sequences.")
    if stage.samples:
        cuda = device == "cuda"
        notes.append(f"Stage {config.stage}: each of {config.train.batch_size} prompts is answered "
                     f"{config.rl.generations(cuda)} times, so a step trains "
                     f"{config.train.batch_size * config.rl.generations(cuda)} sequences of up to cutoff_len + "
                     f"{config.rl.completion_tokens(cuda)} tokens (the worst case: prompts are usually shorter).")
    if stage.reference:
        notes.append("The reference pass runs without gradients: " + (
            "a frozen copy of the base (counted in the weights)." if config.adapter.method == "full"
            and config.preference.reference == "base" else "the base with the adapter off, no second copy."))
    return tuple(notes)
