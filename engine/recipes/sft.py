"""Supervised fine-tuning (stage ``sft``), top to bottom.

config.yaml → tokenizer → model (bitsandbytes) → adapter (peft) → dataset → Trainer with an
EventsCallback → train (from the latest checkpoint on --resume) → adapter + tokenizer saved
to RUN/adapter → run_finished. Everything the outside world learns goes through
RUN/events.jsonl; stdout/stderr (tracebacks included) land in RUN/engine.log, written by
the supervisor (engine/launch.py). The process around it — signals, logging, turning any
failure into ``run_failed`` — is :mod:`engine.recipes.runner`, shared by every stage; the
load and train → save → terminal-event steps every stage shares are :mod:`engine.recipes.common`.

Continued pre-training (stage ``pt``, :mod:`engine.recipes.pt`) is this same loop on raw text:
only the dataset differs (every token trained, documents packed), which ``build_datasets`` makes
from the stage.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch
from transformers import Trainer

from engine.protocol import PHASE, WARNING
from engine.recipes.callbacks import Events, EventsCallback, RunFlags
from engine.recipes.common import (  # noqa: F401 - finished_step, resume_point: the names sft offered
    finished_step, prepare, resume_point, run_started_fields, train_and_save, training_arguments)
from engine.recipes.datasets import FlatCollator, build_datasets
from engine.recipes.techniques import apply_techniques
from engine.recipes.techniques import collator as batch_collator
from engine.models.loading import apply_adapter, load_model, model_facts

log = logging.getLogger("engine.recipes.sft")


def train(run_dir: Path, resume: bool, events: Events, flags: RunFlags) -> int:
    """Run one training session for ``run_dir``; returns the process exit status."""
    ready = prepare(run_dir, events, flags)
    config, tokenizer = ready.config, ready.tokenizer

    # ---- model --------------------------------------------------------------
    # Weights: bf16 on GPUs that do it natively (half the memory of fp32, same exponent range
    # so no loss scaling), fp32 everywhere else. With quant.mode 4bit/8bit, bitsandbytes packs
    # the frozen linear weights as they load and dequantises them tile by tile in every
    # matmul (compute_dtype), so QLoRA is slower per step than LoRA and trades speed for
    # memory. Quantized weights cannot be trained (config refuses full + quant), and the
    # rounding is permanent for this run: the adapter learns on top of the quantized base.
    model = load_model(config, ready.path)
    # LoRA/DoRA matrices are created in fp32 by peft (autocast_adapter_dtype) whatever the base
    # dtype: the optimizer's small updates would vanish in bf16 rounding.
    model = apply_adapter(model, config)
    facts = model_facts(model, config, ready.path)
    log.info("model: %s", facts)
    flags.check_stop()

    # ---- data ---------------------------------------------------------------
    events.emit(PHASE, name="loading_data", message=f"tokenising {', '.join(config.data.train)}")
    built = build_datasets(config.data, tokenizer, config.train.seed, stage=config.stage)
    for message in built.warnings:
        events.emit(WARNING, message=message, code="data")
    flags.check_stop()

    # ---- trainer ------------------------------------------------------------
    # Padding-free batches, the LoRA dropout kept as a bool mask and the loss computed without the
    # whole logits: less work and memory for the same losses (engine/recipes/techniques.py).
    collator = batch_collator(model, config, tokenizer.pad_token_id, torch.cuda.is_available())
    apply_techniques(model, config)
    checkpoint = resume_point(run_dir, events) if resume else None
    started = run_started_fields(run_dir, config, facts, built.stats)
    callback = EventsCallback(events, run_dir, flags, started, resumed=checkpoint is not None)
    trainer = Trainer(
        model=model,
        args=training_arguments(config, run_dir, has_eval=built.eval is not None,
                                flat_batches=isinstance(collator, FlatCollator)),
        train_dataset=built.train,
        eval_dataset=built.eval,
        data_collator=collator,
        processing_class=tokenizer,
        callbacks=[callback],
    )

    # ---- train and save -----------------------------------------------------
    return train_and_save(trainer, callback, run_dir, checkpoint, tokenizer, events, flags)
