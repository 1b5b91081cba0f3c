"""A LLaMA-Factory training YAML as a tuitune run config, key by key. No torch.

Every key of the file is either mapped to a tuitune field, accepted as meaningless here (with a
note saying why: ``do_train``, ``overwrite_cache``, ``plot_loss``…), or refused with its line and a
reason (``deepspeed``, ``finetuning_type: freeze``…); an unknown key is refused too, never skipped.
Where LLaMA-Factory's defaults differ from tuitune's (gradient checkpointing on, ``lora_dropout``
0, rank 8, ``cutoff_len`` 2048, a linear schedule without warmup, batch 8, learning rate 5e-5,
logging every 500 steps, no mixed precision unless ``bf16``/``fp16``), the imported config keeps
LLaMA-Factory's behaviour and a note says so, so the same file trains the same run.

Paths in a LLaMA-Factory file (``model_name_or_path``, ``dataset_dir``, ``output_dir``) are relative
to the folder LLaMA-Factory is started from, so they are resolved against ``cwd``, as
``llamafactory-cli train`` does. Dataset names resolve through ``dataset_dir/dataset_info.json``
(:mod:`engine.lf.dataset_info`).

``template``: tuitune trains with the model's own chat template. A LLaMA-Factory template of the
model's family (ChatML for qwen and smollm2, llama3's header tokens, ``[INST]`` for mistral…) is
accepted with a note; one of another family is a warning that says how the two differ. The
model's template is read from its folder's ``tokenizer_config.json`` (or ``chat_template.jinja``),
without loading a tokenizer.
"""

from __future__ import annotations

import json
import os
import shlex
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import ValidationError

from engine.compose import Flags, absolute, compose_config
from engine.config import ConfigError, RunConfig, deep_merge, load_yaml, read_config_text
from engine.lf.dataset_info import resolve as resolve_datasets
from engine.paths import DEMO_MODEL, demo_model_dir, run_dir_problem
from engine.stages import DEFAULT_STAGE, STAGES

NoteKind = Literal["mapped", "default", "ignored", "warning"]

LF_STAGES = ("pt", "sft", "rm", "dpo", "kto")
"""LLaMA-Factory's stages that tuitune trains under the same name (its ppo is refused)."""


@dataclass(frozen=True)
class Note:
    """What became of one LLaMA-Factory key (or of one of its defaults)."""

    key: str
    """The LLaMA-Factory key."""
    line: int | None
    """Its line in the file (None for a default of a key the file leaves out)."""
    kind: NoteKind
    """mapped (to ``field``), default (LLaMA-Factory's default kept), ignored (meaningless here), warning."""
    message: str
    """What was done and why."""
    field: str | None = None
    """The tuitune field it set (``adapter.r``), if any."""

    def where(self, source: str) -> str:
        """``file:line key`` (or ``file key`` for a default)."""
        return f"{source}:{self.line} {self.key}" if self.line else f"{source} {self.key}"


@dataclass
class Imported:
    """A LLaMA-Factory training config read as a tuitune one."""

    source: str
    """The LLaMA-Factory YAML file."""
    values: dict[str, Any]
    """The tuitune run config as a plain dict (sections stage, model, quant, adapter, data, train, preference)."""
    notes: list[Note] = field(default_factory=list)
    """One per key of the file (and per LLaMA-Factory default kept), in file order."""
    run_dir: str | None = None
    """The run folder ``output_dir`` names, absolute (``--run-dir`` wins over it)."""

    def config(self) -> RunConfig:
        """The values validated as a RunConfig."""
        return RunConfig.model_validate(self.values)

    def warnings(self) -> list[str]:
        """The warnings, located: ``file:line key: message``."""
        return [f"{n.where(self.source)}: {n.message}" for n in self.notes if n.kind == "warning"]


LF_DEFAULTS: list[tuple[str, str, Any, str]] = [
    ("lora_rank", "adapter.r", 8, "LLaMA-Factory's default rank 8 (tuitune's is 16)"),
    ("lora_dropout", "adapter.dropout", 0.0, "LLaMA-Factory's default 0 (tuitune's is 0.05)"),
    ("cutoff_len", "data.cutoff_len", 2048, "LLaMA-Factory's default 2048 tokens (tuitune's is 512)"),
    ("per_device_train_batch_size", "train.batch_size", 8, "transformers' default 8 (tuitune's is 4)"),
    ("learning_rate", "train.learning_rate", 5e-5, "transformers' default 5e-5 (tuitune's is 2e-4)"),
    ("lr_scheduler_type", "train.scheduler", "linear", "transformers' default linear (tuitune's is cosine)"),
    ("warmup_ratio", "train.warmup_ratio", 0.0, "transformers' default: no warmup (tuitune's is 0.03)"),
    ("logging_steps", "train.logging_steps", 500, "transformers' default 500 (tuitune's is 5)"),
    ("save_steps", "train.save_steps", 500, "transformers' default 500 (tuitune's is 100)"),
]
"""Keys whose LLaMA-Factory default differs from tuitune's: (key, field, LF default, why), applied when absent."""

SIMPLE: dict[str, str] = {
    "trust_remote_code": "model.trust_remote_code",
    "model_revision": "model.revision",
    "lora_rank": "adapter.r",
    "lora_dropout": "adapter.dropout",
    "use_rslora": "adapter.rslora",
    "quantization_type": "quant.quant_type",
    "double_quantization": "quant.double_quant",
    "cutoff_len": "data.cutoff_len",
    "val_size": "data.val_size",
    "default_system": "data.system_prompt",
    "per_device_train_batch_size": "train.batch_size",
    "gradient_accumulation_steps": "train.grad_accum",
    "learning_rate": "train.learning_rate",
    "num_train_epochs": "train.epochs",
    "warmup_ratio": "train.warmup_ratio",
    "weight_decay": "train.weight_decay",
    "max_grad_norm": "train.max_grad_norm",
    "logging_steps": "train.logging_steps",
    "save_steps": "train.save_steps",
    "eval_steps": "train.eval_steps",
    "seed": "train.seed",
    "pref_beta": "preference.beta",
    "kto_chosen_weight": "preference.desirable_weight",
    "kto_rejected_weight": "preference.undesirable_weight",
    "ddp_timeout": "distributed.timeout",
}
"""Keys that map one to one onto a tuitune field."""

IGNORED: dict[str, str] = {
    "do_train": "tuitune train always trains",
    "do_eval": "tuitune evaluates whenever val_size > 0",
    "overwrite_cache": "tuitune keeps no tokenised cache between runs",
    "overwrite_output_dir": "a tuitune run folder is new for every run (a resume continues it)",
    "preprocessing_num_workers": "tuitune's encoder tokenises in batches in one process",
    "dataloader_num_workers": "batches are built in the trainer process",
    "plot_loss": "the dashboard plots the loss live",
    "save_strategy": "tuitune saves every save_steps",
    "logging_strategy": "tuitune logs every logging_steps",
    "eval_strategy": "tuitune evaluates every eval_steps when val_size > 0",
    "evaluation_strategy": "tuitune evaluates every eval_steps when val_size > 0",
    "per_device_eval_batch_size": "evaluation uses the training batch size",
    "save_only_model": "tuitune checkpoints keep the optimizer state, so a resume continues exactly",
    "flash_attn": "tuitune picks the attention kernel (sdpa, or flash-attention where installed)",
    "run_name": "the run's name is its folder's name",
    "include_num_input_tokens_seen": "log events always carry tokens_per_s",
    "enable_liger_kernel": "tuitune computes the loss in chunks itself (train.chunked_loss)",
    "cache_dir": "models are read from the Hugging Face cache as usual",
    "infer_dtype": "inference only",
    "upcast_layernorm": "norms run as the model defines them",
    "upcast_lmhead_output": "tuitune's chunked loss computes in float32",
    "bf16_full_eval": "evaluation runs in the training precision",
    "disable_tqdm": "tuitune shows its own progress",
    "log_level": "engine.log keeps the trainer's log",
    "ignore_pad_token_for_loss": "padding is never trained in tuitune",
    "print_param_status": "run_started reports trainable and total parameters",
    "hf_hub_token": "not used: tuitune reads the token from HF_TOKEN or the Hugging Face login, as the hub does",
    "use_fast_tokenizer": "the model's own tokenizer is used (the fast one when it has one)",
    "tf32": "TF32 matmuls are left at PyTorch's default",
    "ddp_find_unused_parameters": "tuitune's DDP never searches for unused parameters: a LoRA model's frozen "
                                  "base gets no gradients, and the search would cost a graph walk every step",
    "metric_for_best_model": "tuitune keeps the newest checkpoints, not a best one",
    "greater_is_better": "tuitune keeps the newest checkpoints, not a best one",
    "freeze_trainable_layers": "used only by finetuning_type freeze",
    "freeze_trainable_modules": "used only by finetuning_type freeze",
    "freeze_vision_tower": "multimodal settings: tuitune trains text (datasets with images are refused)",
    "freeze_multi_modal_projector": "multimodal settings: tuitune trains text (datasets with images are refused)",
    "freeze_language_model": "multimodal settings: tuitune trains text (datasets with images are refused)",
    "image_max_pixels": "multimodal settings: tuitune trains text (datasets with images are refused)",
    "image_min_pixels": "multimodal settings: tuitune trains text (datasets with images are refused)",
    "video_max_pixels": "multimodal settings: tuitune trains text (datasets with videos are refused)",
    "video_min_pixels": "multimodal settings: tuitune trains text (datasets with videos are refused)",
    "video_fps": "multimodal settings: tuitune trains text (datasets with videos are refused)",
    "video_maxlen": "multimodal settings: tuitune trains text (datasets with videos are refused)",
    "max_new_tokens": "generation settings are for tuitune chat and tuitune eval, not training",
    "temperature": "generation settings are for tuitune chat and tuitune eval, not training",
    "top_p": "generation settings are for tuitune chat and tuitune eval, not training",
    "top_k": "generation settings are for tuitune chat and tuitune eval, not training",
    "do_sample": "generation settings are for tuitune chat and tuitune eval, not training",
    "infer_backend": "inference only",
}
"""Keys accepted as meaningless here, with why."""

SEVERAL_GPUS = ("tuitune trains on several GPUs with torchrun and DDP or FSDP (--nproc N, or distributed.nproc; "
                "distributed.strategy: fsdp shards the model, auto does so for full fine-tuning)")
"""What tuitune uses instead of DeepSpeed and transformers' fsdp options."""

OFF_ONLY: dict[str, str] = {
    "deepspeed": f"DeepSpeed is not supported: {SEVERAL_GPUS}; remove the key",
    "fsdp": f"transformers' fsdp options are not read: {SEVERAL_GPUS}; remove the key",
    "fsdp_config": f"transformers' fsdp options are not read: {SEVERAL_GPUS}; remove the key",
    "use_galore": "GaLore is not supported: use LoRA (finetuning_type: lora)",
    "use_apollo": "APOLLO is not supported: use LoRA",
    "use_badam": "BAdam is not supported: use LoRA",
    "use_adam_mini": "Adam-mini is not supported: use optim adamw_torch or adamw_8bit",
    "use_muon": "Muon is not supported: use optim adamw_torch",
    "use_llama_pro": "LLaMA Pro block expansion is not supported",
    "use_unsloth": "Unsloth is not supported; tuitune has its own padding-free batches and chunked loss",
    "pissa_init": "PiSSA initialisation is not supported; adapters start as standard LoRA",
    "pissa_convert": "PiSSA is not supported",
    "loraplus_lr_ratio": "LoRA+ is not supported",
    "use_dft_loss": "DFT loss is not supported",
    "use_asft_loss": "ASFT loss is not supported",
    "use_eaft_loss": "EAFT loss is not supported",
    "mixture_of_depths": "mixture of depths is not supported",
    "adapter_name_or_path": "continuing from an existing adapter is not supported yet; tuitune starts a new one",
    "create_new_adapter": "continuing from an existing adapter is not supported yet",
    "resume_from_checkpoint": "resume a tuitune run with `tuitune train --resume --run-dir RUN`",
    "train_on_prompt": "tuitune trains only the assistant turns",
    "mask_history": "tuitune trains every assistant turn of a conversation",
    "streaming": "streaming datasets are not supported: tuitune checks every record before training",
    "tokenized_path": "pre-tokenised LLaMA-Factory datasets are not read: give the dataset itself",
    "eval_dataset": "a separate evaluation dataset is not supported yet: use val_size",
    "pref_ftx": "an SFT term in DPO (pref_ftx) is not supported: use stage orpo for SFT plus preference",
    "dpo_label_smoothing": "tuitune smooths labels only in the robust DPO loss (preference.loss_type robust)",
    "use_reentrant_gc": "reentrant checkpointing cannot be chosen; tuitune uses the non-reentrant kind",
    "predict_with_generate": "tuitune eval RUN generates predictions after training",
    "do_predict": "tuitune eval RUN generates predictions after training",
    "rope_scaling": "RoPE scaling is not supported: the model's own context length is used",
    "shift_attn": "shift short attention is not supported",
    "load_best_model_at_end": "tuitune keeps the newest checkpoints, not a best one",
    "torch_compile": "torch.compile is not used",
    "lr_scheduler_kwargs": "scheduler options are not supported",
    "disable_shuffling": "tuitune always shuffles the training records (seeded by seed)",
    "resize_vocab": "the vocabulary cannot be resized",
    "new_special_tokens": "adding special tokens is not supported",
    "split_special_tokens": "special tokens are kept whole",
    "additional_target": "extra trained modules (modules_to_save) are not supported",
    "pure_bf16": "pure bf16 (no float32 master weights) is not supported: use bf16",
    "gradient_checkpointing_kwargs": "gradient checkpointing options are not supported",
    "push_to_hub": "a run is pushed once trained, by its export: tuitune export RUN --push ORG/NAME",
    "use_cpu": "the device is chosen by tuitune: the CPU when there is no GPU",
}
"""Keys accepted only when off (false, null, 0, empty, none), refused otherwise with the reason."""

ADAM_DEFAULTS = {"adam_beta1": 0.9, "adam_beta2": 0.999, "adam_epsilon": 1e-8}
"""AdamW settings tuitune leaves at these (transformers') defaults: accepted only at them."""
INFERENCE_KEYS = {"model_name_or_path", "adapter_name_or_path", "template", "trust_remote_code", "infer_backend",
                  "infer_dtype", "default_system", "enable_thinking", "max_new_tokens", "temperature", "top_p", "top_k"}
"""Keys an inference config (llamafactory-cli chat/webchat/api) holds; a file of only these is one."""
FIRST = ("model_name_or_path", "stage", "finetuning_type", "max_steps")
"""Keys read before the others, whatever their place in the file."""
FINE_TUNING = {"lora": "lora", "full": "full"}
SCHEDULERS = ("linear", "cosine", "constant", "constant_with_warmup", "polynomial")
OPTIMIZERS = {"adamw_torch": "adamw_torch", "adamw_hf": "adamw_torch", "adamw_torch_fused": "adamw_torch",
              "adamw_8bit": "adamw_8bit", "adamw_bnb_8bit": "adamw_8bit", "paged_adamw_8bit": "paged_adamw_8bit",
              "adafactor": "adafactor", "sgd": "sgd"}
PREF_LOSSES = {"sigmoid": "sigmoid", "ipo": "ipo", "hinge": "hinge"}

TEMPLATE_FAMILIES: list[tuple[str, str, tuple[str, ...]]] = [
    ("phi4", "Phi-4's <|im_sep|> turns", ("<|im_sep|>",)),
    ("chatml", "ChatML (<|im_start|>role … <|im_end|>)", ("<|im_start|>",)),
    ("llama3", "Llama 3 headers (<|start_header_id|>role<|end_header_id|> … <|eot_id|>)", ("<|start_header_id|>",)),
    ("llama4", "Llama 4 headers (<|header_start|>)", ("<|header_start|>",)),
    ("gemma4", "Gemma 4 turns (<|turn>)", ("<|turn>",)),
    ("gemma", "Gemma turns (<start_of_turn>user … <end_of_turn>)", ("<start_of_turn>",)),
    ("glm", "GLM ([gMASK]<sop> and <|user|>)", ("[gMASK]",)),
    ("phi", "Phi turns (<|user|> … <|end|>)", ("<|user|>", "<|end|>")),
    ("deepseek3", "DeepSeek-V3 turns (<｜User｜>)", ("<｜User｜>",)),
    ("gpt_oss", "gpt-oss harmony (<|start|>role<|message|>)", ("<|start|>", "<|message|>")),
    ("inst", "[INST] … [/INST] (Llama 2, Mistral)", ("[INST]",)),
]
"""Chat template families, most specific first: (family, description, markers a template of it contains)."""
LF_TEMPLATES: dict[str, str] = {
    **{name: "chatml" for name in (
        "chatml", "chatml_de", "qwen", "qwen2_vl", "qwen2_audio", "qwen2_omni", "qwen3", "qwen3_nothink",
        "qwen3_omni", "qwen3_omni_nothink", "qwen3_vl", "qwen3_vl_nothink", "smollm", "smollm2", "yi", "yi_vl",
        "intern2", "intern_vl", "intern_s1", "cpm4", "dbrx", "falcon_h1", "lfm2", "lfm2_vl", "mimo", "mimo_v2",
        "mimo_vl", "minicpm_v", "minicpm_v_4_6", "minicpm_o", "opencoder", "moss_vl", "keye_vl", "ernie",
        "llava_next_qwen", "llava_next_yi", "llava_next_video_yi", "marco", "seed_coder")},
    **{name: "llama3" for name in ("llama3", "llava_next_llama3", "mllama")},
    "llama4": "llama4", "phi4": "phi4", "gpt_oss": "gpt_oss", "deepseek3": "deepseek3", "deepseekr1": "deepseek3",
    **{name: "inst" for name in ("llama2", "llama2_zh", "mistral", "ministral", "ministral3", "mistral_small",
                                 "pixtral", "breeze", "llava_next_mistral", "llava_next_video_mistral")},
    **{name: "gemma" for name in ("gemma", "gemma2", "gemma3", "gemma3n", "paligemma_chat")},
    **{name: "gemma4" for name in ("gemma4", "gemma4n")},
    **{name: "phi" for name in ("phi", "phi_small", "phi4_mini")},
    **{name: "glm" for name in ("glm4", "glm4_moe", "glm4v", "glm4_5v", "glm_ocr", "glm4_7", "glmz1")},
    **{name: "plain" for name in ("alpaca", "default", "empty", "vicuna", "deepseek", "deepseekcoder", "falcon",
                                  "llava", "llava_next", "llava_next_video", "fewshot", "openchat", "zephyr")},
}
"""LLaMA-Factory template names (src/llamafactory/data/template.py) and the family of their turn markers."""
FAMILY_TEXT = {name: text for name, text, _ in TEMPLATE_FAMILIES}
FAMILY_TEXT["plain"] = "plain text with no special tokens (Human:/Assistant:, ### Instruction:)"


def is_lf_config(data: Any) -> bool:
    """Whether parsed YAML ``data`` is a LLaMA-Factory training config (not a tuitune one).

    It has ``model_name_or_path`` and one of ``stage``, ``finetuning_type`` or ``dataset`` at the top
    level; a tuitune config has sections (``model:``, ``train:``) there instead.
    """
    return (isinstance(data, dict) and "model_name_or_path" in data
            and any(key in data for key in ("stage", "finetuning_type", "dataset")))


def other_job(data: Any) -> str | None:
    """Why parsed YAML ``data`` is a LLaMA-Factory merge or inference config rather than a training one, with
    the tuitune command that does its job (as a command line), or None when it is neither.

    Merge configs (``examples/merge_lora``) have ``export_dir``; inference configs (``examples/inference``)
    have ``infer_backend``, or only a model, an adapter and a template.
    """
    if not isinstance(data, dict) or "model_name_or_path" not in data or is_lf_config(data):
        return None
    adapter = data.get("adapter_name_or_path")
    run = shlex.quote(str(adapter or data["model_name_or_path"]))
    if "export_dir" in data:
        if data.get("export_quantization_bit"):
            return ("a LLaMA-Factory GPTQ export config (llamafactory-cli export), not a training one: tuitune "
                    "exports a run it trained, quantized as GGUF, with `tuitune export RUN --gguf q8_0`")
        target = shlex.quote(str(data["export_dir"]))
        return ("a LLaMA-Factory merge config (llamafactory-cli export), not a training one: tuitune merges what "
                f"a run trained with `tuitune export {run} --merged --to {target}` (the run folder: "
                "LLaMA-Factory's output_dir when tuitune trained it)")
    if "infer_backend" in data or set(data) <= INFERENCE_KEYS:
        if not adapter:
            return ("a LLaMA-Factory inference config (llamafactory-cli chat), not a training one, and it names no "
                    "adapter: tuitune chat talks to a run it trained, `tuitune chat RUN` (`--once QUESTION --base` "
                    "answers with the base model alone)")
        return ("a LLaMA-Factory inference config (llamafactory-cli chat), not a training one: talk to the run "
                f"that trained the adapter with `tuitune chat {run}` (the run folder: LLaMA-Factory's output_dir "
                "when tuitune trained it)")
    return None


def load_lf_or_none(path: str | os.PathLike[str], cwd: Path | None = None, dataset_dir: str | None = None,
                    cache: Path | None = None, model: str | None = None) -> Imported | None:
    """The LLaMA-Factory training config at ``path`` as a tuitune one, or None when it is not one.

    Args:
        path: A YAML file (a tuitune config, or a LLaMA-Factory one).
        cwd: The folder LLaMA-Factory's relative paths start from (the current folder by default).
        dataset_dir: Overrides the file's ``dataset_dir`` (``--dataset-dir``).
        cache: Where mapped copies of datasets go (tuitune's cache folder by default).
        model: The model that replaces the file's (``--model``): remote code and the template are judged for it.

    Raises:
        ConfigError: ``file:line key: reason`` for every key refused, bad YAML, or a dataset that
            cannot be used.
    """
    source = str(path)
    node, data = load_yaml(read_config_text(path), source)
    if (job := other_job(data)) is not None:
        raise ConfigError([f"{source}: {job}"])
    if not is_lf_config(data):
        return None
    return import_lf(node, data, source, cwd or Path.cwd(), dataset_dir, cache, model)


def import_lf(node: yaml.Node, data: dict[str, Any], source: str, cwd: Path, dataset_dir: str | None = None,
              cache: Path | None = None, model: str | None = None) -> Imported:
    """Map every key of a LLaMA-Factory config (``data``, parsed from ``node``) onto tuitune's schema.

    Raises:
        ConfigError: located problems for every key refused, every value tuitune's schema refuses.
    """
    ctx = _Import(source, cwd, _key_lines(node), model)
    # Keys others depend on first (the stage for pref_loss, max_steps for warmup_steps), then file order.
    for key in sorted(data, key=lambda k: FIRST.index(k) if k in FIRST else len(FIRST)):
        ctx.key(str(key), data[key])
    ctx.finish(data, dataset_dir, cache)
    ctx.notes.sort(key=lambda n: n.line or 1 << 30)
    if ctx.problems:
        raise ConfigError(ctx.problems)
    return Imported(source, ctx.values, ctx.notes, ctx.run_dir)


def compose_lf(imported: Imported, preset: str | dict[str, Any] | None = None, flags: Flags | None = None,
               cwd: Path | None = None) -> RunConfig:
    """defaults ← ``preset`` ← the imported LLaMA-Factory config ← ``flags``, validated (as compose_config).

    Raises:
        ConfigError: naming the flag or field that is wrong.
    """
    from engine.presets import load_preset

    base = load_preset(preset) if isinstance(preset, str) else dict(preset or {})
    return compose_config(deep_merge(base, imported.values), None, flags, cwd)


class _Import:
    """The state of one import: values set so far, notes and problems."""

    def __init__(self, source: str, cwd: Path, lines: dict[str, int], model: str | None = None) -> None:
        self.source, self.cwd, self.lines = source, cwd, lines
        self.model = model
        """The model given over the file's (``--model``), which the checks of the model look at."""
        self.values: dict[str, Any] = {}
        self.notes: list[Note] = []
        self.problems: list[str] = []
        self.fields: dict[str, str] = {}
        """tuitune field to the LLaMA-Factory key that set it, for locating schema errors."""
        self.run_dir: str | None = None

    # -- recording ---------------------------------------------------------------------------
    def set(self, key: str, dotted: str, value: Any, message: str = "") -> None:
        section, _, name = dotted.partition(".")
        if name:
            self.values.setdefault(section, {})[name] = value
        else:
            self.values[section] = value
        self.fields[dotted] = key
        self.note(key, "mapped", message or f"→ {dotted}", dotted)

    def note(self, key: str, kind: NoteKind, message: str, dotted: str | None = None) -> None:
        self.notes.append(Note(key, self.lines.get(key), kind, message, dotted))

    def refuse(self, key: str, reason: str) -> None:
        line = self.lines.get(key)
        self.problems.append(f"{self.source}:{line} {key}: {reason}" if line else f"{self.source} {key}: {reason}")

    def get(self, dotted: str, default: Any = None) -> Any:
        section, _, name = dotted.partition(".")
        return self.values.get(section, {}).get(name, default) if name else self.values.get(section, default)

    # -- one key -----------------------------------------------------------------------------
    def key(self, key: str, value: Any) -> None:
        special = _SPECIAL.get(key)
        if special is not None:
            special(self, key, value)
        elif key.startswith("export_"):
            self.refuse(key, "an export setting (llamafactory-cli export): export a tuitune run with tuitune export")
        elif key in ADAM_DEFAULTS:
            if value == ADAM_DEFAULTS[key] and not isinstance(value, bool):
                self.note(key, "ignored", "transformers' default, as in tuitune")
            else:
                self.refuse(key, f"tuitune runs AdamW with {key} {ADAM_DEFAULTS[key]:g}; remove the key")
        elif key in SIMPLE:
            self.set(key, SIMPLE[key], value)
        elif key in IGNORED:
            self.note(key, "ignored", f"accepted, no effect here: {IGNORED[key]}")
        elif key in OFF_ONLY:
            if _off(value):
                self.note(key, "ignored", "off, as in tuitune")
            else:
                self.refuse(key, OFF_ONLY[key])
        else:
            self.refuse(key, "not a LLaMA-Factory training key tuitune knows; remove it, or set what it does "
                             "in the tuitune config that `tuitune import-lf` writes")

    # -- after every key ---------------------------------------------------------------------
    def finish(self, data: dict[str, Any], dataset_dir: str | None, cache: Path | None) -> None:
        for key, dotted, default, why in LF_DEFAULTS:
            if key not in data and self.get(dotted) is None:  # warmup_steps may have set warmup_ratio
                self.values.setdefault(dotted.split(".")[0], {})[dotted.split(".")[1]] = default
                self.note(key, "default", f"not in the file: {why}, kept → {dotted}: {default}", dotted)
        adapter = self.values.setdefault("adapter", {})
        if "lora_alpha" not in data or data.get("lora_alpha") is None:
            adapter["alpha"] = 2 * adapter["r"] if isinstance(adapter.get("r"), int) else 16
            self.note("lora_alpha", "default", f"not in the file: LLaMA-Factory's default is twice the rank, kept → "
                                               f"adapter.alpha: {adapter['alpha']}", "adapter.alpha")
        train = self.values.setdefault("train", {})
        if "gradient_checkpointing" not in train:
            train["gradient_checkpointing"] = True
            self.note("disable_gradient_checkpointing", "default", "not in the file: LLaMA-Factory checkpoints "
                      "gradients unless disable_gradient_checkpointing is true (tuitune's default is off), kept → "
                      "train.gradient_checkpointing: true", "train.gradient_checkpointing")
        if "precision" not in train:
            train["precision"] = "fp32"
            self.note("bf16", "default", "not in the file: neither bf16 nor fp16 is set, so LLaMA-Factory trains "
                      "without mixed precision, kept → train.precision: fp32 (tuitune's auto picks bf16 on "
                      "capable GPUs)", "train.precision")
        self.values.setdefault("data", {})["truncation"] = "shared"
        self.note("cutoff_len", "default", "LLaMA-Factory shares cutoff_len between a preference or kto record's "
                  "prompt and answers, cutting a long prompt's end rather than leaving the record out, kept → "
                  "data.truncation: shared", "data.truncation")
        if "save_total_limit" not in data:
            self.note("save_total_limit", "warning", "LLaMA-Factory keeps every checkpoint by default; tuitune "
                      "keeps the newest train.save_total_limit (3)")
        if (self.get("data.val_size") or 0) > 0 and "eval_steps" not in data:
            train["eval_steps"] = train.get("logging_steps", 500)
            self.note("eval_steps", "default", "not in the file: transformers evaluates every logging_steps, kept → "
                      f"train.eval_steps: {train['eval_steps']}", "train.eval_steps")
        self._least_batch()
        self._remote_code()
        self._data(data, dataset_dir, cache)
        self._template(data)
        self._validate()

    def _data(self, data: dict[str, Any], dataset_dir: str | None, cache: Path | None) -> None:
        names = _names(data.get("dataset"))
        if not names:
            self.refuse("dataset", "no dataset named: give dataset (names from dataset_info.json)")
            return
        folder = dataset_dir or data.get("dataset_dir") or "data"
        base = Path(str(folder)).expanduser()
        base = base if base.is_absolute() else self.cwd / base
        if "dataset_dir" not in data and dataset_dir is None:
            self.note("dataset_dir", "default", f"not set: LLaMA-Factory's default folder data/ → {base}")
        max_samples = data.get("max_samples")
        try:
            resolved = resolve_datasets(names, base, self.values.get("stage", DEFAULT_STAGE), max_samples, cache)
        except ConfigError as exc:
            line = self.lines.get("dataset")
            self.problems.extend(f"{self.source}:{line} dataset: {p}" for p in exc.problems)
            return
        self.set("dataset", "data.train", resolved.paths, f"→ data.train: {', '.join(resolved.paths)}")
        self.values["data"]["format"] = resolved.format
        for message in resolved.notes:
            self.note("dataset", "mapped", message, "data.train")

    def _least_batch(self) -> None:
        """A batch below what the stage trains with (kto at 1, as in LLaMA-Factory's example) is raised to it, the
        accumulation lowered so the answers per optimizer step stay as the file says (or the nearest above)."""
        row = STAGES[self.values.get("stage", DEFAULT_STAGE)]
        train = self.values.setdefault("train", {})
        batch, accum = train.get("batch_size"), train.get("grad_accum", 1)
        if not (isinstance(batch, int) and isinstance(accum, int) and 1 <= batch < row.least_batch and accum >= 1):
            return
        per_step = batch * accum
        train["batch_size"], train["grad_accum"] = row.least_batch, max(1, -(-per_step // row.least_batch))
        now = train["batch_size"] * train["grad_accum"]
        self.note("per_device_train_batch_size", "warning", (
            f"{batch}: stage {row.name} trains with batches of at least {row.least_batch} ({row.least_batch_why}; "
            f"TRL's trainer refuses fewer, where LLaMA-Factory draws the pair from elsewhere in the data) → "
            f"train.batch_size: {row.least_batch}, train.grad_accum: {train['grad_accum']}: {now} answers per "
            "optimizer step" + (", as in the file" if now == per_step else f" (the file's {per_step} cannot be "
                                                                            f"kept at batch {row.least_batch})")),
                  "train.batch_size")

    def _remote_code(self) -> None:
        """trust_remote_code: true (in every LLaMA-Factory example) changes nothing for a model that ships no
        code; kept on only when the model has code (auto_map) or cannot be looked at."""
        if self.get("model.trust_remote_code") is not True:
            return
        config = model_config(self.checked_model())
        if config is not None and "auto_map" not in config:
            self.values["model"]["trust_remote_code"] = False
            self.note("trust_remote_code", "mapped", "the model ships no code (no auto_map in config.json), so "
                      "it changes nothing; kept off → model.trust_remote_code: false", "model.trust_remote_code")
        else:
            self.note("trust_remote_code", "warning", "the run executes Python code shipped with the model; "
                      "set it to false unless you trust the model's author")

    def checked_model(self) -> str:
        """The model the run trains: ``--model`` when given, else the file's."""
        return self.model or self.get("model.name_or_path", DEMO_MODEL)

    def _template(self, data: dict[str, Any]) -> None:
        name = data.get("template")
        if name is None:
            return
        kind, message = template_verdict(str(name), self.checked_model())
        self.note("template", kind, message)

    def _validate(self) -> None:
        if self.problems:
            return
        try:
            RunConfig.model_validate(self.values)
        except ValidationError as exc:
            for err in exc.errors():
                dotted = ".".join(str(p) for p in err["loc"][:2])
                message = err["msg"].removeprefix("Value error, ").replace("Input should be", "must be")
                key = self.fields.get(dotted) or self.fields.get(str(err["loc"][0]) if err["loc"] else "")
                if not key:  # a rule across fields: name the first key it mentions, at its line
                    named = sorted((("." not in f), message.find(f), f) for f in self.fields if f in message)
                    named = [(pos, f) for _, pos, f in named]  # section.field names before a bare stage
                    dotted, key = (named[0][1], self.fields[named[0][1]]) if named else (dotted, "")
                self.refuse(key or "(config)", f"{message} (tuitune field {dotted or 'run'})")


# -- special keys ----------------------------------------------------------------------------

def _model(ctx: _Import, key: str, value: Any) -> None:
    if not isinstance(value, str) or not value:
        ctx.refuse(key, "must be a model folder or a hub id")
        return
    ctx.set(key, "model.name_or_path", absolute(value, ctx.cwd))


def _stage(ctx: _Import, key: str, value: Any) -> None:
    if value == "ppo":
        ctx.refuse(key, "PPO is not supported: tuitune reinforces sampled answers with stage grpo or rloo "
                        "(a tuitune config with rl.rewards), or learns from preferences with dpo or kto")
    elif value in LF_STAGES:
        ctx.set(key, "stage", value)
    else:
        ctx.refuse(key, f"{value!r} is not a LLaMA-Factory stage tuitune trains; it trains pt, sft, rm, dpo, kto")


def _finetuning(ctx: _Import, key: str, value: Any) -> None:
    if value == "freeze":
        ctx.refuse(key, "freeze (train only some layers) is not supported: use lora or full")
    elif value in FINE_TUNING:
        if ctx.get("adapter.method") != "dora":
            ctx.set(key, "adapter.method", FINE_TUNING[value])
        else:
            ctx.note(key, "mapped", "lora with use_dora → adapter.method: dora", "adapter.method")
    else:
        ctx.refuse(key, f"{value!r}: tuitune trains lora and full")


def _dora(ctx: _Import, key: str, value: Any) -> None:
    if value is True:
        if ctx.get("adapter.method") == "full":
            ctx.refuse(key, "use_dora needs finetuning_type lora")
            return
        ctx.set(key, "adapter.method", "dora")
    elif value in (False, None):
        ctx.note(key, "ignored", "off, as in tuitune")
    else:
        ctx.refuse(key, "must be true or false")


def _alpha(ctx: _Import, key: str, value: Any) -> None:
    if value is not None:
        ctx.set(key, "adapter.alpha", value)


def _target(ctx: _Import, key: str, value: Any) -> None:
    names = _names(value)
    if names == ["all"]:
        ctx.set(key, "adapter.target_modules", "all-linear", "all → adapter.target_modules: all-linear")
    elif names:
        ctx.set(key, "adapter.target_modules", names)
    else:
        ctx.refuse(key, "must be all or module names such as q_proj,v_proj")


def _quant_bit(ctx: _Import, key: str, value: Any) -> None:
    if value is None:
        ctx.note(key, "ignored", "not quantized, as in tuitune")
    elif value in (4, 8) and not isinstance(value, bool):
        ctx.set(key, "quant.mode", f"{value}bit", f"→ quant.mode: {value}bit (bitsandbytes, as LLaMA-Factory)")
    else:
        ctx.refuse(key, f"{value!r}: tuitune quantizes to 4 or 8 bits (bitsandbytes)")


def _quant_method(ctx: _Import, key: str, value: Any) -> None:
    if value in (None, "bnb", "bitsandbytes"):
        ctx.note(key, "ignored", "bitsandbytes, as in tuitune")
    else:
        ctx.refuse(key, f"{value!r}: tuitune quantizes with bitsandbytes only")


def _dataset(ctx: _Import, key: str, value: Any) -> None:
    pass  # resolved in finish(), once the stage is known


def _dataset_dir(ctx: _Import, key: str, value: Any) -> None:
    ctx.note(key, "mapped", "where dataset_info.json is read (relative to the current folder, as in "
                            "LLaMA-Factory)", "data.train")


def _max_samples(ctx: _Import, key: str, value: Any) -> None:
    if value is None:
        ctx.note(key, "ignored", "every record is used")
    elif isinstance(value, int) and not isinstance(value, bool) and value > 0:
        ctx.note(key, "mapped", f"the first {value} records of each dataset are copied into tuitune's cache "
                                "and trained", "data.train")
    else:
        ctx.refuse(key, "must be a positive number of records")


def _template_key(ctx: _Import, key: str, value: Any) -> None:
    pass  # judged in finish(), once the model is known


def _max_steps(ctx: _Import, key: str, value: Any) -> None:
    if value in (None, -1) or (isinstance(value, int) and not isinstance(value, bool) and value <= 0):
        ctx.note(key, "ignored", "not set: num_train_epochs decides")
    else:
        ctx.set(key, "train.max_steps", value)


def _warmup_steps(ctx: _Import, key: str, value: Any) -> None:
    if value in (None, 0):
        ctx.note(key, "ignored", "no warmup steps")
        return
    max_steps = ctx.get("train.max_steps")
    if isinstance(value, int) and isinstance(max_steps, int) and max_steps > 0:
        ctx.set(key, "train.warmup_ratio", value / max_steps,
                f"{value} of max_steps {max_steps} → train.warmup_ratio: {value / max_steps:g}")
    else:
        ctx.refuse(key, "tuitune sets warmup as a share of the steps: give warmup_ratio (or max_steps before "
                        "warmup_steps in the file)")


def _scheduler(ctx: _Import, key: str, value: Any) -> None:
    if value in SCHEDULERS:
        ctx.set(key, "train.scheduler", value)
    else:
        ctx.refuse(key, f"{value!r}: tuitune's schedulers are {', '.join(SCHEDULERS)}")


def _optim(ctx: _Import, key: str, value: Any) -> None:
    if value in OPTIMIZERS:
        ctx.set(key, "train.optimizer", OPTIMIZERS[value], f"{value} → train.optimizer: {OPTIMIZERS[value]}")
    else:
        ctx.refuse(key, f"{value!r}: tuitune's optimizers are {', '.join(sorted(set(OPTIMIZERS.values())))}")


def _precision(ctx: _Import, key: str, value: Any) -> None:
    if value is True:
        other = "fp16" if key == "bf16" else "bf16"
        if ctx.get("train.precision") == other:
            ctx.refuse(key, "bf16 and fp16 cannot both be true")
            return
        ctx.set(key, "train.precision", key)
    elif value in (False, None):
        ctx.note(key, "ignored", "off")
    else:
        ctx.refuse(key, "must be true or false")


def _no_checkpointing(ctx: _Import, key: str, value: Any) -> None:
    if isinstance(value, bool):
        ctx.set(key, "train.gradient_checkpointing", not value)
    else:
        ctx.refuse(key, "must be true or false")


def _checkpointing(ctx: _Import, key: str, value: Any) -> None:
    if isinstance(value, bool):
        ctx.set(key, "train.gradient_checkpointing", value)
    else:
        ctx.refuse(key, "must be true or false")


def _output_dir(ctx: _Import, key: str, value: Any) -> None:
    if not isinstance(value, str) or not value:
        ctx.refuse(key, "must be a folder")
        return
    folder = _run_folder(value, ctx.cwd)
    if (problem := run_dir_problem(folder)) is not None:  # said, never suggested; train refuses it
        ctx.note(key, "warning", f"{problem}: it cannot be the run folder; give tuitune train --run-dir DIR")
        return
    ctx.run_dir = folder
    ctx.note(key, "mapped", f"→ the run folder {ctx.run_dir} (--run-dir wins over it)")


def _run_folder(value: str, cwd: Path) -> str:
    """``output_dir`` as the absolute folder it names, relative paths taken from ``cwd`` as LLaMA-Factory does."""
    folder = Path(value).expanduser()
    return str((folder if folder.is_absolute() else cwd / folder).resolve())


def _save_limit(ctx: _Import, key: str, value: Any) -> None:
    if value is None:
        ctx.note(key, "warning", "LLaMA-Factory keeps every checkpoint; tuitune keeps the newest "
                                 "train.save_total_limit (3)")
    else:
        ctx.set(key, "train.save_total_limit", value)


def _pref_loss(ctx: _Import, key: str, value: Any) -> None:
    if value in PREF_LOSSES:
        ctx.set(key, "preference.loss_type", PREF_LOSSES[value])
    elif value == "orpo":
        if ctx.get("stage") not in (None, "dpo"):
            ctx.refuse(key, "orpo is a loss of stage dpo in LLaMA-Factory")
            return
        ctx.set(key, "stage", "orpo", "orpo → stage: orpo (tuitune's own stage; pref_beta is its weight)")
    else:
        ctx.refuse(key, f"{value!r}: tuitune's DPO losses are sigmoid, ipo, hinge (and stage orpo)")


def _packing(ctx: _Import, key: str, value: Any) -> None:
    if value is True:
        ctx.set(key, "data.packing", True, "→ data.packing: true (packed records never attend to each other in "
                                           "tuitune, as LLaMA-Factory's neat_packing)")
    elif value in (False, None):
        ctx.note(key, "ignored", "off" if value is False else "not set: LLaMA-Factory packs only stage pt, "
                                                              "as tuitune does")
    else:
        ctx.refuse(key, "must be true or false")


TRACKERS = ("tensorboard", "wandb", "mlflow")


def _report_to(ctx: _Import, key: str, value: Any) -> None:
    if value in (None, "none", [], ["none"]):
        ctx.note(key, "ignored", "no tracker, as in tuitune: the run folder's events.jsonl is the record")
        return
    names = [part.strip() for part in value.split(",")] if isinstance(value, str) else value
    if not isinstance(names, list) or any(name not in TRACKERS for name in names):
        ctx.refuse(key, f"{value!r}: tuitune reports to {', '.join(TRACKERS)} (or none)")
        return
    ctx.set(key, "train.report_to", names, "written into RUN/trackers/ (wandb offline, mlflow to a local store)")


_SPECIAL: dict[str, Callable[[_Import, str, Any], None]] = {
    "model_name_or_path": _model, "stage": _stage, "finetuning_type": _finetuning, "use_dora": _dora,
    "lora_alpha": _alpha, "lora_target": _target, "quantization_bit": _quant_bit,
    "quantization_method": _quant_method, "dataset": _dataset, "dataset_dir": _dataset_dir,
    "max_samples": _max_samples, "template": _template_key, "max_steps": _max_steps,
    "warmup_steps": _warmup_steps, "lr_scheduler_type": _scheduler, "optim": _optim, "bf16": _precision,
    "fp16": _precision, "disable_gradient_checkpointing": _no_checkpointing,
    "gradient_checkpointing": _checkpointing, "output_dir": _output_dir, "save_total_limit": _save_limit,
    "pref_loss": _pref_loss, "report_to": _report_to, "packing": _packing, "neat_packing": _packing,
}


def _off(value: Any) -> bool:
    """Whether a feature key's value means off: false, null, 0, empty, or the string none."""
    if value is None or value is False or value in ("", "none", [], {}):
        return True
    return type(value) is int and value == 0


def _names(value: Any) -> list[str]:
    """A comma-separated string or a list of names as a list."""
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return [v.strip() for v in value if v.strip()]
    return []


def _key_lines(node: yaml.Node) -> dict[str, int]:
    """The line of every top-level key."""
    if not isinstance(node, yaml.MappingNode):
        return {}
    return {str(k.value): k.start_mark.line + 1 for k, _ in node.value if isinstance(k, yaml.ScalarNode)}


# -- templates -------------------------------------------------------------------------------

def template_family(text: str | None) -> str | None:
    """The family of a chat template's text (chatml, llama3, inst, gemma…), or None when unknown."""
    if not text:
        return None
    for family, _, markers in TEMPLATE_FAMILIES:
        if all(marker in text for marker in markers):
            return family
    return None


def model_folder(name_or_path: str) -> Path | None:
    """The folder of a model on this machine: a folder, a hub id in the HF cache, or the converted demo."""
    from engine.models import hf_cache

    if name_or_path == DEMO_MODEL:
        return demo_model_dir() if (demo_model_dir() / "config.json").is_file() else None
    path = Path(name_or_path).expanduser()
    if path.is_dir():
        return path
    return hf_cache.find_snapshot(name_or_path) if name_or_path.count("/") == 1 else None


def model_config(name_or_path: str) -> dict[str, Any] | None:
    """The model's config.json as a dict, or None when the model is not on this machine or it is unreadable."""
    folder = model_folder(name_or_path)
    if folder is None:
        return {} if name_or_path == DEMO_MODEL else None  # the demo (a Llama) ships no code
    try:
        config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return config if isinstance(config, dict) else None


def model_chat_template(name_or_path: str) -> str | None:
    """The chat template text of a model on this machine (its folder, the HF cache or the demo), or None.

    Read from ``tokenizer_config.json`` (``chat_template``, a string or a list of named ones, the
    ``default`` first), else ``chat_template.jinja`` or ``chat_template.json``; no tokenizer is loaded.
    """
    folder = model_folder(name_or_path)
    if folder is None:
        # The embedded SmolLM2 GGUF's template is ChatML; it is converted into a folder on first use.
        return "<|im_start|>" if name_or_path == DEMO_MODEL else None
    return _template_in(folder)


def _template_in(folder: Path) -> str | None:
    try:
        config = json.loads((folder / "tokenizer_config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        config = {}
    template = config.get("chat_template") if isinstance(config, dict) else None
    if isinstance(template, list):
        named = {t.get("name"): t.get("template") for t in template if isinstance(t, dict)}
        template = named.get("default") or next(iter(named.values()), None)
    if isinstance(template, str) and template:
        return template
    for name in ("chat_template.jinja", "chat_template.json"):
        try:
            text = (folder / name).read_text(encoding="utf-8")
        except OSError:
            continue
        if name.endswith(".json"):
            try:
                text = json.loads(text).get("chat_template", "")
            except (ValueError, AttributeError):
                continue
        if text:
            return text
    return None


def template_verdict(name: str, model: str) -> tuple[NoteKind, str]:
    """Whether LLaMA-Factory template ``name`` agrees with the model's own chat template: (kind, message)."""
    ours = template_family(model_chat_template(model))
    theirs = LF_TEMPLATES.get(name)
    if theirs is None:
        return "warning", (f"LLaMA-Factory template {name!r} is not one tuitune can compare; tuitune trains with "
                           "the model's own chat template" + (f", {FAMILY_TEXT[ours]}" if ours else ""))
    if model_chat_template(model) is None:
        return "warning", (f"cannot compare with {model}'s own chat template (not on this machine, or it has "
                           f"none); tuitune trains with the model's template, {name} is {FAMILY_TEXT[theirs]}")
    if ours == theirs:
        return "mapped", (f"{name} is {FAMILY_TEXT[ours]}, the model's own chat template, which tuitune trains "
                          "with: the same turns")
    return "warning", (f"{name} is {FAMILY_TEXT[theirs]}, but the model's own chat template, which tuitune "
                       f"trains with, is {FAMILY_TEXT[ours] if ours else 'of a kind tuitune does not recognise'}: "
                       "the trained text differs from what LLaMA-Factory would train; the model answers in its own "
                       "format at inference")


# -- writing a tuitune config ----------------------------------------------------------------

SECTION_ORDER = ("stage", "model", "quant", "adapter", "data", "train", "preference", "distributed")


def to_yaml(imported: Imported) -> str:
    """The imported config as a tuitune YAML file with a comment per mapped key (its LLaMA-Factory key
    and line), the LLaMA-Factory defaults kept, and the accepted and warned-about keys at the top."""
    comments: dict[str, str] = {}
    for note in imported.notes:
        if note.field and note.kind in ("mapped", "default"):
            origin = (f"{note.key} (line {note.line})" if note.line else
                      f"{note.key} not set: {note.message.removeprefix('not in the file: ').split(', kept')[0]}")
            if origin not in comments.get(note.field, ""):
                comments[note.field] = f"{comments[note.field]}; {origin}" if note.field in comments else origin
    source = Path(imported.source).name
    out = [f"# tuitune run config imported from the LLaMA-Factory config {imported.source}",
           "# (tuitune import-lf). Each field says which LLaMA-Factory key it comes from."]
    if imported.run_dir:
        out.append(f"# output_dir: tuitune train --run-dir {imported.run_dir}")
    for note in imported.notes:
        if note.kind in ("ignored", "warning") or (note.kind == "mapped" and not note.message.startswith("→")):
            label = "warning" if note.kind == "warning" else "note"
            out.append(f"# {label}: {note.where(source)}: {note.message}")
    for section in SECTION_ORDER:
        value = imported.values.get(section)
        if value is None:
            continue
        if not isinstance(value, dict):
            out.append(_line(section, value, comments.get(section), 0))
            continue
        out.append(f"{section}:")
        out.extend(_line(name, item, comments.get(f"{section}.{name}"), 2) for name, item in value.items())
    return "\n".join(out) + "\n"


def _line(name: str, value: Any, comment: str | None, indent: int) -> str:
    text = yaml.safe_dump(value, default_flow_style=True, allow_unicode=True, width=1 << 30).strip()
    text = text.removesuffix("...").strip()
    return " " * indent + f"{name}: {text}" + (f"  # {comment}" if comment else "")


def lf_output_dir(path: str | os.PathLike[str], cwd: Path | None = None) -> str | None:
    """The run folder a LLaMA-Factory config's ``output_dir`` names (absolute, against ``cwd``), or None when
    ``path`` is not a LLaMA-Factory config or has no usable ``output_dir``. Reads only the YAML.

    Raises:
        ConfigError: for a file that cannot be read or is not valid YAML, and for an ``output_dir`` that cannot
            be a run folder (engine.paths.run_dir_problem), located: ``lf.yaml:35 output_dir: /etc is a system
            folder…``.
    """
    node, data = load_yaml(read_config_text(path), str(path))
    value = data.get("output_dir") if is_lf_config(data) else None
    if not isinstance(value, str) or not value:
        return None
    folder = _run_folder(value, cwd or Path.cwd())
    if (problem := run_dir_problem(folder)) is not None:
        raise ConfigError([f"{path}:{_key_lines(node).get('output_dir')} output_dir: {problem}"])
    return folder
