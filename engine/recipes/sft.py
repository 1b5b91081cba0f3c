"""Supervised fine-tuning (stage ``sft``), top to bottom.

config.yaml → tokenizer → model (bitsandbytes) → adapter (peft) → dataset → Trainer with an
EventsCallback → train (from the latest checkpoint on --resume) → adapter + tokenizer saved
to RUN/adapter → run_finished. Everything the outside world learns goes through
RUN/events.jsonl; stdout/stderr (tracebacks included) land in RUN/engine.log, written by
the supervisor (engine/supervisor/launch.py). The process around it — signals, logging, turning any
failure into ``run_failed`` — is :mod:`engine.recipes.runner`, shared by every stage; the
load and train → save → terminal-event steps every stage shares are :mod:`engine.recipes.common`.

Continued pre-training (stage ``pt``, whose row in engine.stages names this recipe) is this same
loop on raw text: only the dataset differs (every token trained, documents cut into pieces and
packed, no token dropped), which ``build_datasets`` makes from the stage.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch
from transformers import Trainer

from engine.recipes.attempt import Events, RunFlags
from engine.recipes.callbacks import EventsCallback
from engine.recipes.common import load_for_stage, resume_point, run_started_fields, train_and_save, training_arguments
from engine.recipes.datasets import FlatCollator
from engine.recipes.techniques import collator as batch_collator

log = logging.getLogger("engine.recipes.sft")


def train(run_dir: Path, resume: bool, events: Events, flags: RunFlags) -> int:
    """Run one training session for ``run_dir``; returns the process exit status."""
    # ---- model and data -----------------------------------------------------
    # The base (quantized as configured), the adapter on it, and the techniques: the LoRA dropout
    # kept as a bool mask and the loss computed without the whole logits, for the same losses with
    # less work and memory (engine/recipes/techniques.py); then the conversations, encoded and cut.
    loaded = load_for_stage(run_dir, events, flags)
    config, tokenizer, model, facts, built = loaded.config, loaded.tokenizer, loaded.model, loaded.facts, loaded.built

    # ---- trainer ------------------------------------------------------------
    # Padding-free batches where the model keeps records apart by position ids.
    collator = batch_collator(model, config, tokenizer.pad_token_id, torch.cuda.is_available())
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
