"""ORPO (stage ``orpo``), top to bottom, on TRL's ``ORPOTrainer`` (``trl.experimental.orpo`` in TRL 1.16).

ORPO adds an odds-ratio preference term (weighted by ``preference.beta``, TRL's λ) to the
supervised loss on the chosen answer, so one run does SFT and preference together and needs no
reference model at all. Pairs are encoded by our encoder (:func:`engine.data.encode.encode_pairs`);
:class:`PretokenizedORPOTrainer` turns each into the columns TRL's collator takes instead of
tokenising the text again. The loss and metrics (``rewards/*``, ``logps/*``, ``nll_loss``,
``log_odds_ratio``, ``log_odds_chosen``) are TRL's. Dropout is off (TRL's default).

TRL marks ORPO experimental: its API may change between TRL releases, which is why this recipe
touches only ``tokenize_row`` and the config.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path
from typing import Any

from engine.data.encode import IGNORE_INDEX
from engine.recipes.attempt import Events, RunFlags
from engine.recipes.callbacks import EventsCallback
from engine.recipes.common import load_for_stage, resume_point, run_started_fields, train_and_save, training_arguments

with warnings.catch_warnings():  # TRL warns on import that the experimental API may change: said above
    warnings.simplefilter("ignore")
    from trl.experimental.orpo import ORPOConfig, ORPOTrainer

log = logging.getLogger("engine.recipes.orpo")


class PretokenizedORPOTrainer(ORPOTrainer):
    """TRL's ORPOTrainer fed with pairs our encoder already tokenised and cut."""

    def tokenize_row(self, feature: dict[str, Any], model: Any = None) -> dict[str, Any]:
        """The collator's columns from ``prompt_ids``/``chosen_ids``/``rejected_ids``: answers labelled, prompt not."""
        prompt = list(feature["prompt_ids"])
        row: dict[str, Any] = {"prompt_input_ids": prompt, "prompt_attention_mask": [1] * len(prompt)}
        for side in ("chosen", "rejected"):
            answer = list(feature[f"{side}_ids"])
            row[f"{side}_input_ids"] = prompt + answer
            row[f"{side}_attention_mask"] = [1] * (len(prompt) + len(answer))
            row[f"{side}_labels"] = [IGNORE_INDEX] * len(prompt) + answer
        return row

    def training_step(self, model: Any, inputs: dict[str, Any], *args: Any, **kwargs: Any) -> Any:
        """Count both sides' tokens for tokens/s: ORPO's batches have no ``input_ids`` for the Trainer to count."""
        self.state.num_input_tokens_seen += int(inputs["chosen_attention_mask"].sum() +
                                                inputs["rejected_attention_mask"].sum())
        return super().training_step(model, inputs, *args, **kwargs)


def train(run_dir: Path, resume: bool, events: Events, flags: RunFlags) -> int:
    """Run one ORPO training session for ``run_dir``; returns the process exit status."""
    # ---- model and data ------------------------------------------------------
    loaded = load_for_stage(run_dir, events, flags)
    config, tokenizer, model, facts, built = loaded.config, loaded.tokenizer, loaded.model, loaded.facts, loaded.built

    # ---- trainer ------------------------------------------------------------
    args = training_arguments(config, run_dir, has_eval=built.eval is not None, args_class=ORPOConfig,
                              beta=config.preference.beta, max_length=config.data.cutoff_len)
    args.include_num_input_tokens_seen = "no"  # counted by the trainer above
    checkpoint = resume_point(run_dir, events) if resume else None
    started = run_started_fields(run_dir, config, facts, built.stats)
    callback = EventsCallback(events, run_dir, flags, started, resumed=checkpoint is not None)
    trainer = PretokenizedORPOTrainer(model=model, args=args, train_dataset=built.train, eval_dataset=built.eval,
                                      processing_class=tokenizer, callbacks=[callback])

    # ---- train and save -----------------------------------------------------
    return train_and_save(trainer, callback, run_dir, checkpoint, tokenizer, events, flags)
