"""A reward model as an RL reward: a tuitune ``rm`` run's adapter, or a sequence-classification model folder.

A reward-model run saves its adapter with the trained score head (peft's ``modules_to_save``), so the
base with a one-output head plus ``RUN/adapter`` is the reward model it trained; the base is the one
the run's config names, loaded as that run trained it (quantized when it was) by the one loader
(:func:`engine.models.loading.load_model`), on this process's device. The answers are laid out with
the reward model's own tokenizer and chat template, the way the rm run encoded its pairs, and the
score is the head's output at the last real token.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from engine.config import RunConfig, load_config
from engine.protocol import ADAPTER_DIR, CONFIG_FILE
from engine.stages import STAGES

SCORING_STAGE = next(name for name, row in STAGES.items() if row.score_head)
"""The stage that trains a reward model (its config loads a model folder with a score head)."""


def locate(path: str) -> tuple[RunConfig, str, str | None]:
    """``(config to load it with, base model, adapter folder or None)`` for a reward model path.

    Raises:
        ValueError: the path is none of a reward-model run folder, an adapter folder or a model folder
            (saying which it is).
    """
    from engine.models.demo import resolve_model

    folder = Path(path).expanduser()
    in_run = (folder.parent / CONFIG_FILE).is_file() and (folder / "adapter_config.json").is_file()  # RUN/adapter
    run = folder if (folder / CONFIG_FILE).is_file() and (folder / ADAPTER_DIR).is_dir() else \
        folder.parent if in_run else None
    if run is not None:
        config = load_config(run / CONFIG_FILE)
        if not STAGES[config.stage].score_head:
            raise ValueError(f"rl.rewards reward_model: {path} is a {config.stage} run, not an {SCORING_STAGE} run "
                             "(a reward model)")
        adapter = run / ADAPTER_DIR
        if not (adapter / "adapter_config.json").is_file():
            raise ValueError(f"rl.rewards reward_model: {path} has no trained adapter yet ({adapter} is missing)")
        return config, resolve_model(config.model.name_or_path), str(adapter)
    if (folder / "adapter_config.json").is_file():
        base = json.loads((folder / "adapter_config.json").read_text(encoding="utf-8")).get("base_model_name_or_path")
        return RunConfig(stage=SCORING_STAGE, model={"name_or_path": str(base)}), str(base), str(folder)
    if (folder / "config.json").is_file():
        return RunConfig(stage=SCORING_STAGE, model={"name_or_path": str(folder)}), str(folder), None
    raise ValueError(f"rl.rewards reward_model: {path} is not an {SCORING_STAGE} run folder, an adapter folder or "
                     "a model folder")


class RewardModel:
    """A frozen reward model that scores (prompt, answer) pairs."""

    def __init__(self, path: str) -> None:
        from engine.models.loading import load_model
        from engine.models.tokenizer import load_tokenizer

        config, base, adapter = locate(path)
        # an rm run saves its tokenizer with the adapter
        self.tokenizer = load_tokenizer(adapter or base, None, config.model.trust_remote_code)
        model = load_model(config, base, pad_token_id=self.tokenizer.pad_token_id, on_device=True)
        if adapter:
            from peft import PeftModel

            model = PeftModel.from_pretrained(model, adapter)
        self.model = model.eval().requires_grad_(False)
        self.device = next(self.model.parameters()).device

    def score(self, prompts: list[Any], answers: list[str]) -> list[float]:
        """One score per answer to its prompt (a message list or a string)."""
        texts = []
        for prompt, answer in zip(prompts, answers):
            turns = prompt if isinstance(prompt, list) else [{"role": "user", "content": str(prompt)}]
            texts.append(self.tokenizer.apply_chat_template([*turns, {"role": "assistant", "content": answer}],
                                                            tokenize=False))
        batch = self.tokenizer(texts, return_tensors="pt", padding=True, padding_side="right",
                               add_special_tokens=False).to(self.device)
        with torch.inference_mode():
            return self.model(**batch).logits[:, 0].float().tolist()
