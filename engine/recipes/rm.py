"""Reward model (stage ``rm``), top to bottom, on TRL's ``RewardTrainer``.

The base model gets a scalar head (``AutoModelForSequenceClassification`` with one label: the
``score`` layer, new and randomly initialised), the adapter goes on the base's linear layers, and
the head is trained whole and saved with the adapter (peft's ``modules_to_save`` for the
sequence-classification task), so ``adapter/`` alone loads back as the reward model:
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

import torch
from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training
from transformers import AutoModelForSequenceClassification
from trl import RewardConfig, RewardTrainer

from engine.config import RunConfig
from engine.models.info import ModelError
from engine.models.loading import attention_implementation, pick_dtype, quantization_config
from engine.recipes.callbacks import Events, EventsCallback, RunFlags
from engine.recipes.common import (
    load_for_stage, resume_point, run_started_fields, train_and_save, training_arguments)

log = logging.getLogger("engine.recipes.rm")


def load_reward_model(config: RunConfig, path: str, pad_token_id: int) -> Any:
    """The base with a one-output ``score`` head, quantized as configured, with the adapter (or all weights) trainable.

    The head must know the pad id: the score is read at each sequence's last non-pad token.
    """
    full = config.adapter.method == "full"
    kwargs: dict[str, Any] = {"num_labels": 1, "dtype": pick_dtype(config.model.dtype, full_finetune=full)}
    if config.model.revision:
        kwargs["revision"] = config.model.revision
    if config.model.trust_remote_code:
        kwargs["trust_remote_code"] = True
    attention = attention_implementation(kwargs["dtype"])
    if attention:
        kwargs["attn_implementation"] = attention
    quant = quantization_config(config)
    if quant is not None:
        kwargs["quantization_config"] = quant
        if torch.cuda.is_available():
            kwargs["device_map"] = {"": 0}
    try:
        model = AutoModelForSequenceClassification.from_pretrained(path, **kwargs)
    except OSError as exc:
        raise ModelError.not_found(config.model.name_or_path, exc) from exc
    model.config.pad_token_id = pad_token_id
    model.config.use_cache = False
    if quant is not None:
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=config.train.gradient_checkpointing,
                                                gradient_checkpointing_kwargs={"use_reentrant": False})
    if full:
        for param in model.parameters():
            param.requires_grad_(True)
        return model
    adapter = config.adapter
    # task_type SEQ_CLS makes peft train and save the new score head whole (modules_to_save).
    lora = LoraConfig(task_type="SEQ_CLS", r=adapter.r, lora_alpha=adapter.alpha, lora_dropout=adapter.dropout,
                      target_modules=adapter.target_modules, use_dora=adapter.method == "dora",
                      use_rslora=adapter.rslora, bias="none")
    return get_peft_model(model, lora)


def train(run_dir: Path, resume: bool, events: Events, flags: RunFlags) -> int:
    """Run one reward-model training session for ``run_dir``; returns the process exit status."""
    # ---- model and data ------------------------------------------------------
    # the base with a one-output score head, the adapter on it (see load_reward_model)
    loaded = load_for_stage(run_dir, events, flags, stage="rm",
                            load=lambda config, path, tokenizer: load_reward_model(config, path, tokenizer.pad_token_id))
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

    # ---- train and save -----------------------------------------------------
    return train_and_save(trainer, callback, run_dir, checkpoint, tokenizer, events, flags)


def _whole_sequences(dataset: Any) -> Any:
    """``chosen_ids``/``rejected_ids`` as whole sequences (prompt + answer), the columns RewardTrainer takes as is."""
    return dataset.map(lambda row: {"chosen_ids": row["prompt_ids"] + row["chosen_ids"],
                                    "rejected_ids": row["prompt_ids"] + row["rejected_ids"]},
                       remove_columns=["prompt_ids"])
