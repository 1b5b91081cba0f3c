"""Direct preference optimisation (stage ``dpo``), top to bottom, on TRL's ``DPOTrainer``.

config.yaml → tokenizer → model (bitsandbytes) → adapter (peft) → preference pairs encoded by
our own encoder (:func:`engine.data.encode.encode_pairs`, the one ``tuitune data check`` and the
Data screen use) → ``DPOTrainer`` with the EventsCallback → train → adapter → run_finished.

The loss, the reference pass and the metrics (``rewards/chosen``, ``rewards/rejected``,
``rewards/margins``, ``rewards/accuracies``, ``logps/*``, ``logits/*``) are TRL's; the log events
carry them under ``metrics``. What this module decides:

* **The data** comes tokenised (``prompt_ids``, ``chosen_ids``, ``rejected_ids``): TRL's own
  tokenisation is skipped (:class:`PretokenizedDPOTrainer`), so the trainer sees exactly the tokens
  the check showed, cut at ``data.cutoff_len`` as it said.
* **The reference** (``preference.reference: base``) is the base model with the adapter switched
  off: no second copy in memory. TRL 1.16, given a model that already carries an adapter, copies
  that adapter as a frozen ``ref`` adapter; ours is freshly initialised (LoRA's B = 0, so the copy
  computes exactly the base), so the copy is dropped again and TRL falls back to disabling the
  adapter. Full fine-tuning has no adapter to switch off: TRL loads a frozen copy of the base.
  ``precomputed`` runs the reference once over the data before training instead of every step.
* **Dropout** is off, TRL's default for preference training: the policy and the reference must score
  the same network, and dropout noise would show up as reward.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from trl import DPOConfig, DPOTrainer

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

log = logging.getLogger("engine.recipes.dpo")


class PretokenizedDPOTrainer(DPOTrainer):
    """TRL's DPOTrainer fed with pairs our encoder already tokenised and cut."""

    def _prepare_dataset(self, dataset: Any, processing_class: Any, args: Any, dataset_name: str) -> Any:
        return dataset


def train(run_dir: Path, resume: bool, events: Events, flags: RunFlags) -> int:
    """Run one DPO training session for ``run_dir``; returns the process exit status."""
    # ---- model and data ------------------------------------------------------
    loaded = load_for_stage(run_dir, events, flags)
    config, tokenizer, model, facts, built = loaded.config, loaded.tokenizer, loaded.model, loaded.facts, loaded.built

    # ---- trainer ------------------------------------------------------------
    pref = config.preference
    args = training_arguments(
        config, run_dir, has_eval=built.eval is not None, args_class=DPOConfig,
        beta=pref.beta, loss_type=[pref.loss_type], label_smoothing=pref.label_smoothing,
        max_length=config.data.cutoff_len,  # the encoder cut already; TRL's collator then cuts nothing
        precompute_ref_log_probs=pref.reference == "precomputed",
    )
    checkpoint = resume_point(run_dir, events) if resume else None
    started = run_started_fields(run_dir, config, facts, built.stats)
    callback = EventsCallback(events, run_dir, flags, started, resumed=checkpoint is not None)
    trainer = PretokenizedDPOTrainer(model=model, args=args, train_dataset=built.train, eval_dataset=built.eval,
                                     processing_class=tokenizer, callbacks=[callback])
    drop_reference_copy(trainer.model)

    # ---- train and save -----------------------------------------------------
    return train_and_save(trainer, callback, run_dir, checkpoint, tokenizer, events, flags)

