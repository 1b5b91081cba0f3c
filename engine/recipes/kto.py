"""KTO (stage ``kto``), top to bottom, on TRL's ``KTOTrainer``.

Answers marked desirable or undesirable (``trl_kto``, ``sharegpt_kto``/``alpaca_kto`` with
LLaMA-Factory's ``kto_tag``, or preference pairs unpaired into one of each) are encoded by our own
encoder (:func:`engine.data.encode.encode_completions`) and handed to TRL already tokenised; data
with only one kind of answer is refused before training (:func:`engine.data.checks.kto_balance_problem`).
The loss, its KL estimate and the metrics (``kl``, ``rewards/chosen``, ``rewards/rejected``,
``logps/*``, ``logits/*``) are TRL's and reach the log events under ``metrics``.

As in :mod:`engine.recipes.dpo`, the reference is the base with the adapter off (TRL's frozen copy
of the fresh adapter is dropped), and dropout is off. TRL estimates the KL term from mismatched
prompt/answer pairs made inside each batch, so batches keep file order and hold at least 2 answers.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from trl import KTOConfig, KTOTrainer

from engine.recipes.attempt import Events, RunFlags
from engine.recipes.callbacks import EventsCallback
from engine.recipes.common import (
    drop_reference_copy,
    load_for_stage,
    resume_point,
    run_started_fields,
    train_and_save,
    training_arguments,
)

log = logging.getLogger("engine.recipes.kto")


class PretokenizedKTOTrainer(KTOTrainer):
    """TRL's KTOTrainer fed with answers our encoder already tokenised and cut.

    Only TRL's last step of data preparation is kept: each answer's mismatched KL completion, the
    previous answer of its batch (TRL's own rotation, from ``KTOTrainer._prepare_dataset``).
    """

    def _prepare_dataset(self, dataset: Any, processing_class: Any, args: Any, dataset_name: str) -> Any:
        if not self.calculate_KL:
            return dataset

        def add_kl_completion_ids(examples: dict[str, list]) -> dict[str, list]:
            examples["KL_completion_ids"] = [examples["completion_ids"][-1]] + examples["completion_ids"][:-1]
            return examples

        return dataset.map(add_kl_completion_ids, batched=True, batch_size=args.per_device_train_batch_size)


def train(run_dir: Path, resume: bool, events: Events, flags: RunFlags) -> int:
    """Run one KTO training session for ``run_dir``; returns the process exit status."""
    # ---- model and data ------------------------------------------------------
    loaded = load_for_stage(run_dir, events, flags)
    config, tokenizer, model, facts, built = loaded.config, loaded.tokenizer, loaded.model, loaded.facts, loaded.built

    # ---- trainer ------------------------------------------------------------
    pref = config.preference
    args = training_arguments(
        config, run_dir, has_eval=built.eval is not None, args_class=KTOConfig,
        beta=pref.beta, desirable_weight=pref.desirable_weight, undesirable_weight=pref.undesirable_weight,
        max_length=config.data.cutoff_len, precompute_ref_log_probs=pref.reference == "precomputed",
    )
    checkpoint = resume_point(run_dir, events) if resume else None
    started = run_started_fields(run_dir, config, facts, built.stats)
    callback = EventsCallback(events, run_dir, flags, started, resumed=checkpoint is not None)
    trainer = PretokenizedKTOTrainer(model=model, args=args, train_dataset=built.train, eval_dataset=built.eval,
                                     processing_class=tokenizer, callbacks=[callback])
    drop_reference_copy(trainer.model)

    # ---- train and save -----------------------------------------------------
    return train_and_save(trainer, callback, run_dir, checkpoint, tokenizer, events, flags)
