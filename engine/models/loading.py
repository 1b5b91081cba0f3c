"""Loading the base model (full precision, 4-bit or 8-bit) and putting an adapter on it: the one loader.

Every process that loads a model loads it here: each stage's recipe, the evaluation and export jobs, the
chat service and an RL run's reward model. Free functions, called in order by the recipes
(``engine/recipes/``): ``check_model`` → ``load_model`` → ``apply_adapter`` → ``model_facts``. The
tokenizer comes from :mod:`engine.models.tokenizer`.
"""

from __future__ import annotations

import gc
import importlib.util
from typing import Any

import torch
from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training
from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, BitsAndBytesConfig, PreTrainedModel

from engine.config import RunConfig
from engine.machine.host import peak_rss
from engine.machine.place import place
from engine.models.info import ModelError, check_loadable, read_model_info
from engine.stages import STAGES

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def cuda_bf16() -> bool:
    """Whether training can run in bfloat16: a CUDA GPU that does it natively (Ampere or newer).

    CPUs are never picked for bf16 automatically: some lack the instructions, and oneDNN then
    kills the process with SIGILL instead of raising.
    """
    return torch.cuda.is_available() and torch.cuda.is_bf16_supported(including_emulation=False)


def pick_dtype(name: str, full_finetune: bool = False) -> torch.dtype:
    """The torch dtype for a config dtype name; ``auto`` is bf16 on capable GPUs, else fp32.

    Full fine-tuning keeps fp32 master weights under ``auto``: AdamW updates on bf16 weights
    lose the small steps to rounding, and bf16 autocast still runs the matmuls fast.
    """
    if name != "auto":
        return DTYPES[name]
    return torch.bfloat16 if cuda_bf16() and not full_finetune else torch.float32


def hub_kwargs(config: RunConfig) -> dict[str, Any]:
    """Revision and trust_remote_code, passed only when set (a plain load stays a plain load)."""
    kwargs: dict[str, Any] = {}
    if config.model.revision:
        kwargs["revision"] = config.model.revision
    if config.model.trust_remote_code:
        kwargs["trust_remote_code"] = True
    return kwargs


def check_model(config: RunConfig, path: str) -> None:
    """Refuse an unusable model before transformers loads it, with the message the app shows.

    A local path that is not a model folder (no config.json, GGUF only, an adapter folder…)
    would otherwise reach transformers as a malformed hub id; a model with remote code is
    refused unless the run opted in.

    Raises:
        ModelError: saying what is wrong and what to do.
    """
    check_loadable(read_model_info(path), config.model.trust_remote_code)


def quantization_config(config: RunConfig) -> BitsAndBytesConfig | None:
    """The bitsandbytes config for ``quant.mode``, or None for a full-precision base."""
    quant = config.quant
    if quant.mode == "4bit":
        return BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type=quant.quant_type,
            bnb_4bit_use_double_quant=quant.double_quant,
            bnb_4bit_compute_dtype=pick_dtype(quant.compute_dtype),
        )
    if quant.mode == "8bit":
        return BitsAndBytesConfig(load_in_8bit=True)
    return None


def device() -> torch.device:
    """This process's device: its rank's GPU under torchrun (GPU 0 alone), else the CPU."""
    return torch.device("cuda", place().local_rank) if torch.cuda.is_available() else torch.device("cpu")


def load_model(config: RunConfig, path: str, *, pad_token_id: int | None = None, on_device: bool = False,
               full_precision: bool = False) -> PreTrainedModel:
    """The base model as ``config``'s stage trains it, quantized as configured, on this process's device.

    The head is the stage's (engine.stages): a language model's, or a one-output score head for a stage
    that trains one, whose score is read at each sequence's last token that is not ``pad_token_id``.
    Quantized weights must be placed at load time (bitsandbytes packs them as they land on the GPU), so
    a quantized load on CUDA gets a ``device_map`` pinning it to this rank's GPU; unquantized models are
    moved by the Trainer, or here with ``on_device`` (a model that answers or scores instead of training).

    Args:
        full_precision: the base as its files store it (their dtype, never quantized, on the CPU)
            whatever the run's quant and dtype: what a merge needs, so that an export rounds once.
    """
    score_head = STAGES[config.stage].score_head
    kwargs: dict[str, Any] = {**hub_kwargs(config), **({"num_labels": 1} if score_head else {})}
    quant = None if full_precision else quantization_config(config)
    if full_precision:
        kwargs["dtype"] = "auto"
    else:
        kwargs["dtype"] = pick_dtype(config.model.dtype, full_finetune=config.adapter.method == "full")
        computing = kwargs["dtype"] if quant is None else pick_dtype(config.quant.compute_dtype)
        attention = attention_implementation(computing)
        if attention:
            kwargs["attn_implementation"] = attention
    if quant is not None:
        kwargs["quantization_config"] = quant
        if torch.cuda.is_available():  # this rank's GPU under torchrun/accelerate, else GPU 0
            kwargs["device_map"] = {"": place().local_rank}
    auto = AutoModelForSequenceClassification if score_head else AutoModelForCausalLM
    try:
        try:
            model = auto.from_pretrained(path, **kwargs)
        except (ValueError, ImportError):  # flash-attention refused (architecture, dtype or build): sdpa
            if kwargs.pop("attn_implementation", None) is None:
                raise
            model = auto.from_pretrained(path, **kwargs)
    except OSError as exc:  # transformers' way of saying "not found" (hub, network or files)
        raise ModelError.not_found(config.model.name_or_path, exc) from exc
    if score_head:
        model.config.pad_token_id = pad_token_id
    # The KV cache is useless in training and conflicts with gradient checkpointing.
    model.config.use_cache = False
    if quant is not None:
        release_weights_file(model)
    elif on_device:
        model = model.to(device())
    return model


def release_weights_file(model: PreTrainedModel) -> int:
    """Copy a quantized model's unquantized CPU tensors out of the weights file; returns how many.

    transformers maps each safetensors file into memory and hands out its full-precision tensors
    without a copy. Once bitsandbytes has packed the linear weights, the embeddings and norms still
    point into that mapping, which keeps the whole file resident: on SmolLM2-135M in 4-bit on CPU the
    513 MiB file stayed in the training process for 108 MiB of embeddings. With those copied, the
    mapping is released (on GPU they were copied to the device already).
    """
    seen: set[int] = set()
    copied = 0
    for module in model.modules():
        for tensor in [*module.parameters(recurse=False), *module.buffers(recurse=False)]:
            packed = type(tensor).__name__ in ("Params4bit", "Int8Params")
            if id(tensor) in seen or tensor.device.type != "cpu" or packed:
                continue
            seen.add(id(tensor))  # tied weights (embeddings and LM head) are one tensor, copied once
            tensor.data = tensor.data.clone()
            copied += 1
    gc.collect()  # the mapping goes with the last tensor into it
    return copied


def attention_implementation(dtype: torch.dtype) -> str | None:
    """``flash_attention_2`` on CUDA in half precision when flash-attn is installed, else None (sdpa).

    Padding-free batches (engine/recipes/datasets.py) mark records by position ids. Flash-attention
    runs them as variable-length sequences; sdpa and eager build a block-diagonal mask from the
    position ids instead, which is exact too but an L x L mask over the batch's L tokens.
    """
    if not torch.cuda.is_available() or dtype not in (torch.bfloat16, torch.float16):
        return None
    return "flash_attention_2" if importlib.util.find_spec("flash_attn") is not None else None


def apply_adapter(model: PreTrainedModel, config: RunConfig) -> PreTrainedModel:
    """Wrap ``model`` in a LoRA/DoRA adapter, or unfreeze it all for ``method: full``.

    For a quantized base, ``prepare_model_for_kbit_training`` first freezes the base, casts
    norms to fp32 for stability and makes the input embeddings' output require grad so that
    checkpointed blocks still see a graph.
    """
    adapter = config.adapter
    checkpointing = config.train.gradient_checkpointing
    if config.quant.mode != "none":
        model = prepare_model_for_kbit_training(
            model, use_gradient_checkpointing=checkpointing,
            gradient_checkpointing_kwargs={"use_reentrant": False},
        )
    if adapter.method == "full":
        for param in model.parameters():
            param.requires_grad_(True)
        return model
    lora = LoraConfig(
        # A score head (SEQ_CLS) is new and randomly initialised: peft trains and saves it whole (modules_to_save).
        task_type="SEQ_CLS" if STAGES[config.stage].score_head else "CAUSAL_LM",
        r=adapter.r,
        lora_alpha=adapter.alpha,
        lora_dropout=adapter.dropout,
        target_modules=adapter.target_modules,
        use_dora=adapter.method == "dora",
        use_rslora=adapter.rslora,
        bias="none",
    )
    return get_peft_model(model, lora)


def count_params(model: PreTrainedModel) -> tuple[int, int]:
    """``(total, trainable)`` parameters, counting 4-bit packed weights at their real size."""
    if hasattr(model, "get_nb_trainable_parameters"):
        trainable, total = model.get_nb_trainable_parameters()
        return int(total), int(trainable)
    total = trainable = 0
    for param in model.parameters():
        count = param.numel() * (2 if param.__class__.__name__ == "Params4bit" else 1)
        total += count
        trainable += count if param.requires_grad else 0
    return total, trainable


def model_facts(model: PreTrainedModel, config: RunConfig, resolved_path: str) -> dict[str, Any]:
    """The ``model`` object of ``run_started``."""
    total, trainable = count_params(model)
    base_config = getattr(model, "config", None)
    architectures = getattr(base_config, "architectures", None) or [type(model).__name__]
    dtype = getattr(base_config, "dtype", None) or next(model.parameters()).dtype
    quant = "none" if config.quant.mode == "none" else (
        f"4bit-{config.quant.quant_type}" if config.quant.mode == "4bit" else "8bit")
    return {
        "name_or_path": config.model.name_or_path,
        "resolved_path": resolved_path,
        "architecture": architectures[0],
        "params_total": total,
        "params_trainable": trainable,
        "dtype": str(dtype).replace("torch.", ""),
        "quant": quant,
    }


def peak_memory() -> tuple[int, str]:
    """Peak memory of this run: the CUDA allocator's peak on GPU, else peak process RSS."""
    if torch.cuda.is_available():
        return int(torch.cuda.max_memory_allocated()), "cuda"
    return peak_rss(), "rss"


def device_name() -> str:
    """``cpu`` or ``cuda:N NAME`` of this process's device (run_started's ``device``)."""
    if torch.cuda.is_available():
        return f"cuda:{torch.cuda.current_device()} {torch.cuda.get_device_name()}"
    return "cpu"
