"""Reward model (stage ``rm``), top to bottom, on TRL's ``RewardTrainer``.

The base model gets a scalar head (``AutoModelForSequenceClassification`` with one label: the
``score`` layer, new and randomly initialised), the adapter goes on the base's linear layers, and
the head is trained whole and saved with the adapter (peft's ``modules_to_save`` for the
sequence-classification task), so ``adapter/`` alone loads back as the reward model. The loading is
every stage's (:func:`engine.models.loading.load_model` and ``apply_adapter``, which give the stage
its score head because its row in engine.stages says it trains one):
``AutoModelForSequenceClassification.from_pretrained(base, num_labels=1)`` then
``PeftModel.from_pretrained(model, RUN/adapter)``.

Pairs are encoded by our encoder (:func:`engine.data.encode.encode_pairs`) and given to TRL as
``chosen_ids``/``rejected_ids`` (prompt + answer), which it takes as they are. The loss
(``-log sigmoid(r_chosen - r_rejected)``) and metrics (``accuracy``, ``margin``, ``min_reward``,
``mean_reward``, ``max_reward``) are TRL's.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from trl import RewardConfig, RewardTrainer

from engine.recipes.attempt import Events, RunFlags
from engine.recipes.callbacks import EventsCallback
from engine.recipes.common import load_for_stage, resume_point, run_started_fields, train_and_save, training_arguments

log = logging.getLogger("engine.recipes.rm")


def train(run_dir: Path, resume: bool, events: Events, flags: RunFlags) -> int:
    """Run one reward-model training session for ``run_dir``; returns the process exit status."""
    # ---- model and data ------------------------------------------------------
    # The base with a one-output score head (the stage's, engine.stages), the adapter on it.
    loaded = load_for_stage(run_dir, events, flags)
    config, tokenizer, model, facts, built = loaded.config, loaded.tokenizer, loaded.model, loaded.facts, loaded.built
    train_set, eval_set = (_whole_sequences(d) if d is not None else None for d in (built.train, built.eval))
    flags.check_stop()

    # ---- trainer ------------------------------------------------------------
    args = training_arguments(config, run_dir, has_eval=eval_set is not None, args_class=RewardConfig,
                              max_length=config.data.cutoff_len)
    checkpoint = resume_point(run_dir, events) if resume else None
    started = run_started_fields(run_dir, config, facts, built.stats)
    callback = EventsCallback(events, run_dir, flags, started, resumed=checkpoint is not None)
    trainer = RewardTrainer(model=model, args=args, train_dataset=train_set, eval_dataset=eval_set,
                            processing_class=tokenizer, callbacks=[callback])
    score_head_in_model_dtype(trainer.model)

    # ---- train and save -----------------------------------------------------
    return train_and_save(trainer, callback, run_dir, checkpoint, tokenizer, events, flags)


def score_head_in_model_dtype(model: Any) -> None:
    """Give the trained score head back the dtype of the hidden states it reads.

    With a quantized base TRL casts every trained parameter to bf16 (QLoRA's advice for adapters, which
    cast their input themselves); the score head is a plain linear layer, so on fp32 hidden states (a CPU,
    or a GPU without bf16) its first forward fails on the mixed dtypes.
    """
    hidden = model.get_input_embeddings().weight.dtype
    for name, param in model.named_parameters():
        if param.requires_grad and ".score." in f".{name}." and param.dtype != hidden:
            param.data = param.data.to(hidden)


def _whole_sequences(dataset: Any) -> Any:
    """``chosen_ids``/``rejected_ids`` as whole sequences (prompt + answer), the columns RewardTrainer takes as is."""
    return dataset.map(lambda row: {"chosen_ids": row["prompt_ids"] + row["chosen_ids"],
                                    "rejected_ids": row["prompt_ids"] + row["rejected_ids"]},
                       remove_columns=["prompt_ids"])
