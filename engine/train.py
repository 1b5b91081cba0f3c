"""The training recipe, top to bottom: ``python -m engine train --run-dir RUN [--resume]``.

config.yaml → tokenizer → model (bitsandbytes) → adapter (peft) → dataset → Trainer with an
EventsCallback → train (from the latest checkpoint on --resume) → adapter + tokenizer saved
to RUN/adapter → run_finished. Everything the outside world learns goes through
RUN/events.jsonl; stdout/stderr (tracebacks included) land in RUN/engine.log, written by
the supervisor (engine/launch.py) that started this process.

Signals: SIGTERM/SIGINT ask for a stop (checkpoint + adapter, then run_stopped) and
SIGUSR1 for a checkpoint now. Both are answered at the end of the current optimizer step.
The supervisor starts us with those signals blocked, so one that arrives while torch is
still importing waits here instead of killing us; ``main`` unblocks them once the handlers
are in place.
"""

from __future__ import annotations

import argparse
import logging
import os
import resource
import signal
import sys
import traceback
from pathlib import Path
from typing import Any

import torch
import transformers
from transformers import Trainer, TrainingArguments, set_seed

from engine.callbacks import Events, EventsCallback, RunFlags
from engine.config import ConfigError, RunConfig, load_config
from engine.data import DataError, PadCollator, build_datasets
from engine.embedded import ALIASES, is_prepared, resolve_model
from engine.model_info import ModelError
from engine.model import apply_adapter, check_model, cuda_bf16, load_model, load_tokenizer, model_facts
from engine.protocol import ADAPTER_DIR, CHECKPOINTS_DIR, CONFIG_FILE, PHASE, RUN_FAILED, latest_checkpoint, read_log_tail
from engine.protocol import RUN_FINISHED, RUN_STOPPED, WARNING
from engine.system import SystemSampler

HANDLED_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGUSR1)
log = logging.getLogger("engine.train")


class StopBeforeTraining(Exception):
    """A stop request arrived while the model or data was still loading."""


# -----------------------------------------------------------------------------
# the recipe


def train(run_dir: Path, resume: bool, events: Events, flags: RunFlags) -> int:
    """Run one training session for ``run_dir``; returns the process exit status."""
    config = load_config(run_dir / CONFIG_FILE)
    # One seed for adapter init, dropout and data order; the Trainer reseeds the sampler
    # from args.seed too, so a resumed run replays the same order and skips what it saw.
    set_seed(config.train.seed)

    # ---- model --------------------------------------------------------------
    name = config.model.name_or_path
    if name in ALIASES and not is_prepared():
        events.emit(PHASE, name="preparing_model", message=f"converting the demo model {name} once (about 30 s)")
    path = resolve_model(name)
    check_model(config, path)
    _check_stop(flags)
    events.emit(PHASE, name="loading_model", message=f"loading {name}" + _quant_note(config))
    tokenizer = load_tokenizer(config, path)
    # Weights: bf16 on GPUs that do it natively (half the memory of fp32, same exponent range
    # so no loss scaling), fp32 everywhere else. With quant.mode 4bit/8bit, bitsandbytes packs
    # the frozen linear weights as they load and dequantises them tile by tile in every
    # matmul (compute_dtype), so QLoRA is slower per step than LoRA and trades speed for
    # memory. Quantized weights cannot be trained (config refuses full + quant), and the
    # rounding is permanent for this run: the adapter learns on top of the quantized base.
    model = load_model(config, path)
    # LoRA/DoRA matrices are created in fp32 by peft (autocast_adapter_dtype) whatever the base
    # dtype: the optimizer's small updates would vanish in bf16 rounding.
    model = apply_adapter(model, config)
    facts = model_facts(model, config, path)
    log.info("model: %s", facts)
    _check_stop(flags)

    # ---- data ---------------------------------------------------------------
    events.emit(PHASE, name="loading_data", message=f"tokenising {', '.join(config.data.train)}")
    built = build_datasets(config.data, tokenizer, config.train.seed)
    for message in built.warnings:
        events.emit(WARNING, message=message, code="data")
    _check_stop(flags)

    # ---- trainer ------------------------------------------------------------
    # Pad to a multiple of 8 on GPU so matmul shapes hit tensor-core friendly sizes.
    collator = PadCollator(tokenizer.pad_token_id, pad_to_multiple_of=8 if torch.cuda.is_available() else None)
    checkpoint = latest_checkpoint(run_dir) if resume else None
    if resume and checkpoint is None:
        events.emit(WARNING, message="no checkpoint to resume from: training starts at step 0", code="no_checkpoint")
    started = {
        "run_name": run_dir.name, "model": facts, "method": config.adapter.method,
        "data": {key: built.stats.get(key) for key in ("train_records", "eval_records", "truncated", "train_tokens")},
        "epochs": config.train.epochs if config.train.max_steps is None else None,
        "device": _device_name(), "world_size": int(os.environ.get("WORLD_SIZE", "1")),
    }
    callback = EventsCallback(events, run_dir, flags, started, resumed=checkpoint is not None)
    trainer = Trainer(
        model=model,
        args=training_arguments(config, run_dir, has_eval=built.eval is not None),
        train_dataset=built.train,
        eval_dataset=built.eval,
        data_collator=collator,
        processing_class=tokenizer,
        callbacks=[callback],
    )

    # ---- train --------------------------------------------------------------
    sampler = SystemSampler(events.emit, interval=5.0) if trainer.is_world_process_zero() else None
    try:
        if sampler:
            sampler.start()
        events.emit(PHASE, name="training", message="training")
        output = trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint else None)
    finally:
        if sampler:
            sampler.stop()

    # ---- save ---------------------------------------------------------------
    events.emit(PHASE, name="saving", message="saving the adapter and tokenizer")
    adapter_dir = run_dir / ADAPTER_DIR
    # For peft models save_model writes only the adapter (adapter_model.safetensors and
    # adapter_config.json); for full fine-tuning the whole model. Rank 0 only, inside.
    trainer.save_model(str(adapter_dir))
    if trainer.is_world_process_zero():
        tokenizer.save_pretrained(adapter_dir)
    peak, kind = peak_memory()
    step = trainer.state.global_step
    if flags.stop and step < trainer.state.max_steps:  # a stop that came during the final save is no stop
        events.emit(RUN_STOPPED, step=step, checkpoint_path=callback.last_checkpoint, adapter_path=ADAPTER_DIR,
                    peak_memory_bytes=peak, peak_memory_kind=kind)
    else:
        loss = callback.train_loss if callback.train_loss is not None else output.training_loss
        events.emit(RUN_FINISHED, step=step, train_loss=loss, adapter_path=ADAPTER_DIR,
                    peak_memory_bytes=peak, peak_memory_kind=kind)
    return 0


def training_arguments(config: RunConfig, run_dir: Path, has_eval: bool) -> TrainingArguments:
    """The Trainer's arguments for ``config``; every knob the app can set maps here."""
    train = config.train
    # Mixed precision: bf16 autocast only where the hardware does bf16 natively (Ampere+).
    # fp16 needs a loss scaler and overflows more easily, so it is only used when asked for.
    # On CPU we stay in fp32: bf16 is slow there and on some CPUs kills the process (SIGILL).
    bf16 = train.precision == "bf16" or (train.precision == "auto" and cuda_bf16())
    fp16 = train.precision == "fp16"
    eval_steps = train.eval_steps or train.save_steps
    return TrainingArguments(
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
        eval_strategy="steps" if has_eval else "no",
        eval_steps=eval_steps if has_eval else None,
        save_strategy="steps",
        save_steps=train.save_steps,
        save_total_limit=train.save_total_limit,
        # Optimizer, scheduler and RNG states are kept so a resume continues exactly.
        save_only_model=False,
        report_to="none",
        disable_tqdm=True,  # the app draws progress from events; tqdm would fill engine.log
        use_cpu=not torch.cuda.is_available(),
        # data.py already dropped everything but input_ids/labels/attention_mask
        remove_unused_columns=False,
        # Non-padding tokens, counted per micro-batch, drive tokens/s. The count is one
        # .item() sync per micro-batch, but the Trainer's NaN-loss filter already syncs there.
        include_num_input_tokens_seen="non_padding",
        dataloader_pin_memory=torch.cuda.is_available(),
    )


def peak_memory() -> tuple[int, str]:
    """Peak memory of this run: the CUDA allocator's peak on GPU, else peak process RSS."""
    if torch.cuda.is_available():
        return int(torch.cuda.max_memory_allocated()), "cuda"
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024, "rss"  # Linux reports KiB


def _device_name() -> str:
    if torch.cuda.is_available():
        return f"cuda:{torch.cuda.current_device()} {torch.cuda.get_device_name()}"
    return "cpu"


def _quant_note(config: RunConfig) -> str:
    return "" if config.quant.mode == "none" else f" ({config.quant.mode} through bitsandbytes)"


def _check_stop(flags: RunFlags) -> None:
    if flags.stop:
        raise StopBeforeTraining()


# -----------------------------------------------------------------------------
# the process: signals, logging, and turning every failure into a run_failed event


def main(argv: list[str]) -> int:
    """``python -m engine train --run-dir RUN [--resume]``."""
    parser = argparse.ArgumentParser(prog="python -m engine train")
    parser.add_argument("--run-dir", required=True, type=Path)
    parser.add_argument("--resume", action="store_true")
    args = parser.parse_args(argv)
    flags = RunFlags()
    signal.signal(signal.SIGTERM, flags.request_stop)
    signal.signal(signal.SIGINT, flags.request_stop)
    signal.signal(signal.SIGUSR1, flags.request_save)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, HANDLED_SIGNALS)  # see the module docstring
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(name)s %(message)s")
    transformers.utils.logging.disable_progress_bar()
    events = Events(args.run_dir)
    try:
        return train(args.run_dir, args.resume, events, flags)
    except StopBeforeTraining:
        events.emit(RUN_STOPPED, step=None, checkpoint_path=None, adapter_path=None,
                    peak_memory_bytes=peak_memory()[0], peak_memory_kind=peak_memory()[1])
        return 0
    except BaseException as exc:  # noqa: BLE001 - every failure must become an event
        traceback.print_exc()
        sys.stderr.flush()
        events.emit(RUN_FAILED, **describe_failure(exc), exit_code=1, signal=None,
                    log_tail=read_log_tail(args.run_dir, lines=30))
        return 1
    finally:
        events.close()


def describe_failure(exc: BaseException) -> dict[str, Any]:
    """``cause``, ``hint`` and ``errors`` for an exception that ended the run."""
    errors: list[str] = []
    hint = None
    if isinstance(exc, ConfigError):
        cause, errors = "the run config is invalid", list(exc.problems)
    elif isinstance(exc, DataError):
        cause, errors = "the training data has problems", [str(p) for p in exc.problems]
    elif isinstance(exc, ModelError):
        cause = _first_line(exc)
        hint = "check model.name_or_path: a local folder with config.json, a hub id (needs network) or an alias"
    elif isinstance(exc, torch.OutOfMemoryError):
        cause = "out of GPU memory"
        hint = "lower train.batch_size or data.cutoff_len, turn on gradient_checkpointing, or use quant.mode 4bit"
    elif isinstance(exc, FileNotFoundError) and "model folder" in str(exc) or isinstance(exc, OSError) and (
            "does not appear to have" in str(exc) or "is not a local folder" in str(exc) or "Can't load" in str(exc)):
        cause = _first_line(exc) if "model folder" in str(exc) else f"model not found: {_first_line(exc)}"
        hint = "check model.name_or_path: a local folder with config.json, a hub id (needs network) or an alias"
    else:
        cause = f"{type(exc).__name__}: {_first_line(exc)}"
    return {"cause": cause, "hint": hint, "errors": errors}


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__

