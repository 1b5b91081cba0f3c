"""What every stage's recipe does the same way: load, arguments, and the train → save → terminal event tail.

A recipe (``sft.py``, ``dpo.py``, …) reads top to bottom: :func:`prepare` (config, seed, model path,
tokenizer) → its own model and data → its own Trainer with an :class:`EventsCallback` →
:func:`train_and_save`, which trains from the resume point, saves the adapter atomically and writes
``run_finished`` or ``run_stopped``. Stop, save-now, resume and the complete-checkpoint rule
therefore behave the same in every stage.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from transformers import TrainingArguments, set_seed
from transformers.trainer_callback import PrinterCallback

from engine.checkpoints import finished_step, list_checkpoints
from engine.config import RunConfig, load_config
from engine.models.demo import ALIASES, is_prepared, resolve_model
from engine.models.loading import check_model, cuda_bf16, device_name, peak_memory
from engine.models.tokenizer import load_tokenizer
from engine.protocol import (
    ADAPTER_DIR,
    CHECKPOINTS_DIR,
    CONFIG_FILE,
    PHASE,
    RUN_FINISHED,
    RUN_STOPPED,
    WARNING,
    read_events,
)
from engine.recipes import distributed
from engine.recipes.attempt import Events, RunFlags
from engine.recipes.callbacks import EventsCallback
from engine.recipes.saving import check_room, finish_from_checkpoint, save_atomically, whole_run_loss

log = logging.getLogger("engine.recipes.common")


@dataclass
class Prepared:
    """What every recipe starts from."""

    config: RunConfig
    path: str
    """The model folder or hub id to load."""
    tokenizer: Any


def prepare(run_dir: Path, events: Events, flags: RunFlags) -> Prepared:
    """The run's config, seeded RNGs, the checked model path and the tokenizer."""
    config = load_config(run_dir / CONFIG_FILE)
    # One seed for adapter init, dropout and data order; the Trainer reseeds the sampler
    # from args.seed too, so a resumed run replays the same order and skips what it saw.
    set_seed(config.train.seed)
    name = config.model.name_or_path
    if name in ALIASES and not is_prepared():
        events.emit(PHASE, name="preparing_model", message=f"converting the demo model {name} once (about 30 s)")
    path = resolve_model(name)
    check_model(config, path)
    if (precision := mixed_precision(config)) != "fp32" and not torch.cuda.is_available():
        events.emit(WARNING, code="precision", message=(
            f"train.precision {precision} on the CPU: matmuls run in {precision} autocast over float32 weights, "
            "usually slower here than float32; precision auto (or fp32) trains in float32 on a CPU"))
    flags.check_stop()
    note = "" if config.quant.mode == "none" else f" ({config.quant.mode} through bitsandbytes)"
    events.emit(PHASE, name="loading_model", message=f"loading {name}" + note)
    tokenizer = load_tokenizer(path, config.model.revision, config.model.trust_remote_code)
    return Prepared(config, path, tokenizer)


@dataclass
class Loaded:
    """What a recipe trains: the prepared run, its model with the adapter, and its data."""

    config: RunConfig
    path: str
    """The model folder or hub id loaded."""
    tokenizer: Any
    model: Any
    facts: dict[str, Any]
    """The ``model`` object of ``run_started``."""
    built: Any
    """The datasets (:class:`engine.recipes.datasets.Built` or a recipe's own of the same shape)."""


def load_for_stage(run_dir: Path, events: Events, flags: RunFlags, build: Callable[..., Any] | None = None) -> Loaded:
    """Prepare, load the model with its adapter and the stage's techniques, then build the stage's data.

    Args:
        build: ``(data, tokenizer, seed, stage=…) -> Built`` (default: :func:`build_datasets`).

    A stop asked for while loading is answered after the model and after the data; every data
    warning becomes a ``warning`` event.
    """
    from engine.models.loading import apply_adapter, load_model, model_facts
    from engine.recipes.datasets import build_datasets
    from engine.recipes.techniques import apply_techniques

    ready = prepare(run_dir, events, flags)
    config, tokenizer = ready.config, ready.tokenizer
    # Weights: bf16 on GPUs that do it natively (half the memory of fp32, same exponent range
    # so no loss scaling), fp32 everywhere else. With quant.mode 4bit/8bit, bitsandbytes packs
    # the frozen linear weights as they load and dequantises them tile by tile in every
    # matmul (compute_dtype), so QLoRA is slower per step than LoRA and trades speed for
    # memory. Quantized weights cannot be trained (config refuses full + quant), and the
    # rounding is permanent for this run: the adapter learns on top of the quantized base.
    # LoRA/DoRA matrices are created in fp32 by peft (autocast_adapter_dtype) whatever the base
    # dtype: the optimizer's small updates would vanish in bf16 rounding.
    model = apply_adapter(load_model(config, ready.path, pad_token_id=tokenizer.pad_token_id), config)
    apply_techniques(model, config)
    facts = model_facts(model, config, ready.path)
    log.info("model: %s", facts)
    flags.check_stop()

    events.emit(PHASE, name="loading_data", message=f"tokenising {', '.join(config.data.train)}")
    built = (build or build_datasets)(config.data, tokenizer, config.train.seed, stage=config.stage)
    for message in built.warnings:
        events.emit(WARNING, message=message, code="data")
    flags.check_stop()
    return Loaded(config, ready.path, tokenizer, model, facts, built)


def mixed_precision(config: RunConfig) -> str:
    """The autocast the Trainer runs: ``bf16``, ``fp16`` or ``fp32`` (none)."""
    # auto: bf16 only where the hardware does it natively (Ampere+); on CPU fp32, as bf16 is slow
    # there and on some CPUs kills the process (SIGILL). fp16 needs a loss scaler and overflows more
    # easily, so it is only used when asked for. An explicit choice is kept, on CPU too (bf16 autocast
    # over float32 weights), and prepare() says so.
    if config.train.precision == "auto":
        return "bf16" if cuda_bf16() else "fp32"
    return config.train.precision


def run_started_fields(run_dir: Path, config: RunConfig, facts: dict[str, Any],
                       stats: dict[str, Any]) -> dict[str, Any]:
    """The fields of ``run_started`` known before training (the callback adds steps and the resume)."""
    return {
        "run_name": run_dir.name, "stage": config.stage, "model": facts, "method": config.adapter.method,
        "data": {key: stats.get(key) for key in ("train_records", "eval_records", "truncated", "train_tokens")},
        "epochs": config.train.epochs if config.train.max_steps is None else None,
        "precision": mixed_precision(config), "device": device_name(), **distributed.run_fields(),
    }


TRACKERS_DIR = "trackers"
"""Where a run's experiment trackers write, inside the run folder."""


def trackers_to(run_dir: Path, trackers: list[str]) -> None:
    """Point the Trainer's tracker callbacks into ``RUN/trackers/``, offline and local, before it starts.

    Raises:
        ValueError: a tracker's package is not installed (naming the extra that brings it).
    """
    from engine.estimate.prestart import missing_trackers

    if missing := missing_trackers(trackers):
        raise ValueError(missing)
    folder = run_dir / TRACKERS_DIR
    if "tensorboard" in trackers:
        os.environ["TENSORBOARD_LOGGING_DIR"] = str(folder / "tensorboard")
    if "wandb" in trackers:  # never the network: runs sync later with `wandb sync`
        os.environ.setdefault("WANDB_MODE", "offline")
        os.environ["WANDB_DIR"] = str(folder)
    if "mlflow" in trackers:
        os.environ["MLFLOW_TRACKING_URI"] = (folder / "mlruns").resolve().as_uri()


def training_arguments(config: RunConfig, run_dir: Path, has_eval: bool, flat_batches: bool = False,
                       args_class: type[TrainingArguments] = TrainingArguments, **extra: Any) -> TrainingArguments:
    """The Trainer's arguments for ``config``; every knob the app can set maps here.

    Args:
        flat_batches: the collator makes padding-free batches (every token is a real one).
        args_class: TrainingArguments or a TRL config deriving from it (DPOConfig, …), whose own
            fields come in ``extra``. Every shared field is given explicitly, so TRL's different
            defaults (gradient checkpointing on, bf16 on, a learning rate of 1e-6) never apply unseen.
    """
    train = config.train
    trackers_to(run_dir, train.report_to)
    precision = mixed_precision(config)
    bf16, fp16 = precision == "bf16", precision == "fp16"
    eval_steps = train.eval_steps or train.save_steps
    return args_class(
        output_dir=str(run_dir / CHECKPOINTS_DIR),
        num_train_epochs=train.epochs,
        max_steps=train.max_steps or -1,
        per_device_train_batch_size=train.batch_size,
        per_device_eval_batch_size=train.batch_size,
        gradient_accumulation_steps=train.grad_accum,
        learning_rate=train.learning_rate,
        lr_scheduler_type=train.scheduler,
        warmup_steps=train.warmup_ratio,  # a float below 1 is a share of total steps (transformers 5)
        weight_decay=train.weight_decay,
        max_grad_norm=train.max_grad_norm,
        # The same AdamW in one fused kernel per step instead of a loop over parameters
        # (transformers' own default since torch 2.8, on CPU and GPU).
        optim="adamw_torch_fused" if train.optimizer == "adamw_torch" else train.optimizer,
        bf16=bf16,
        fp16=fp16,
        # Non-reentrant checkpointing works with frozen inputs (LoRA) without the
        # enable_input_require_grads hack, and is what PyTorch recommends.
        # (transformers 5 renamed gradient_checkpointing to activation_checkpointing.)
        activation_checkpointing=train.gradient_checkpointing,
        activation_checkpointing_kwargs={"use_reentrant": False} if train.gradient_checkpointing else None,
        seed=train.seed,
        logging_strategy="steps",
        logging_steps=train.logging_steps,
        logging_first_step=True,  # the first step shows at once, whatever logging_steps (a CPU step is slow)
        eval_strategy="steps" if has_eval else "no",
        eval_steps=eval_steps if has_eval else None,
        save_strategy="steps",
        save_steps=train.save_steps,
        save_total_limit=train.save_total_limit,
        # Optimizer, scheduler and RNG states are kept so a resume continues exactly.
        save_only_model=False,
        report_to=list(train.report_to) or "none",
        disable_tqdm=True,  # the app draws progress from events; tqdm would fill engine.log
        use_cpu=not torch.cuda.is_available(),
        # the datasets hold only the columns the collator needs
        remove_unused_columns=False,
        # Non-padding tokens, counted per micro-batch, drive tokens/s. The count is one
        # .item() sync per micro-batch, but the Trainer's NaN-loss filter already syncs there.
        # A padding-free batch has no padding and no attention mask: every token counts ("all");
        # "non_padding" would then skip ids equal to the pad id, which is often the end-of-turn token.
        include_num_input_tokens_seen="all" if flat_batches else "non_padding",
        dataloader_pin_memory=torch.cuda.is_available(),
        **distributed.trainer_arguments(config),
        **extra,
    )


def resume_point(run_dir: Path, events: Events) -> Path | None:
    """The newest complete checkpoint, saying why any newer one is skipped (or that there is none)."""
    found = list_checkpoints(run_dir)
    chosen = next((c for c in found if c.problem is None), None)
    for skipped in found:
        if skipped is chosen:
            break
        where = f"checkpoint-{chosen.step}" if chosen else "step 0"
        events.emit(WARNING, message=f"checkpoint-{skipped.step} cannot be resumed from: {skipped.problem}; "
                                     f"resuming from {where}", code="incomplete_checkpoint")
    if chosen is None:
        events.emit(WARNING, message="no checkpoint to resume from: training starts at step 0", code="no_checkpoint")
    return chosen.path if chosen else None


def train_and_save(trainer: Any, callback: EventsCallback, run_dir: Path, checkpoint: Path | None, tokenizer: Any,
                   events: Events, flags: RunFlags, save: Callable[[Path], None] | None = None) -> int:
    """Train (from ``checkpoint`` when resuming), save the adapter into RUN/adapter, write the terminal event.

    Args:
        save: writes the trained model into a folder (default: ``trainer.save_model``); the tokenizer
            is saved beside it either way.
    """
    adapter_dir = run_dir / ADAPTER_DIR
    save = save or (lambda folder: trainer.save_model(str(folder)))
    done = finished_step(checkpoint)
    if done is not None:  # a stop or a crash came during the final save (the trainer of one process never gets here)
        finish_from_checkpoint(run_dir, checkpoint, done, callback.started, events.emit, peak_memory())
        return 0
    events.emit(PHASE, name="training", message="training")
    # Each log is an event already; the Trainer's printed copy would bury engine.log's own lines.
    trainer.remove_callback(PrinterCallback)
    flags.loading = False  # from here a stop is answered at a step's end, with a checkpoint
    trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint else None)

    events.emit(PHASE, name="saving", message="saving the adapter and tokenizer")
    # For peft models save_model writes only the adapter (adapter_model.safetensors and
    # adapter_config.json); for full fine-tuning the whole model. Rank 0 only, inside; written
    # beside adapter/ and renamed into place, so a half-written adapter never looks finished.
    if trainer.is_world_process_zero():
        check_room(run_dir, callback.checkpoint_bytes, "the adapter")
        save_atomically(adapter_dir, lambda tmp: (save(tmp), tokenizer.save_pretrained(tmp)))
    peak, kind = peak_memory()
    step = trainer.state.global_step
    if flags.stop and step < trainer.state.max_steps:  # a stop that came during the final save is no stop
        events.emit(RUN_STOPPED, step=step, checkpoint_path=callback.last_checkpoint, adapter_path=ADAPTER_DIR,
                    peak_memory_bytes=peak, peak_memory_kind=kind)
    else:
        events.emit(RUN_FINISHED, step=step, train_loss=whole_run_loss(read_events(run_dir)), adapter_path=ADAPTER_DIR,
                    peak_memory_bytes=peak, peak_memory_kind=kind)
    return 0


def drop_reference_copy(model: Any) -> None:
    """Remove the frozen ``ref`` adapter TRL copies from a fresh adapter: the base with the adapter off is the
    same reference without the copy (its memory, its matmuls in every reference pass, its files in checkpoints)."""
    if "ref" in getattr(model, "peft_config", {}):
        model.delete_adapter("ref")
        model.set_adapter("default")
