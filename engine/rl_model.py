"""A reward model as an RL reward: a tuitune ``rm`` run's adapter, or a sequence-classification model folder.

An ``rm`` run saves its adapter with the trained score head (peft's ``modules_to_save``), so the base
with a one-output head plus ``RUN/adapter`` is the reward model it trained; the base is the one the
run's config names. The answers are laid out with the reward model's own tokenizer and chat template,
the way the rm run encoded its pairs, and the score is the head's output at the last real token.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from engine.protocol import ADAPTER_DIR, CONFIG_FILE


def locate(path: str) -> tuple[str, str | None]:
    """``(base model, adapter folder or None)`` for a reward model path.

    Raises:
        ValueError: the path is none of an rm run folder, an adapter folder or a model folder (saying which it is).
    """
    from engine.config import load_config
    from engine.models.demo import resolve_model

    folder = Path(path).expanduser()
    run = folder if (folder / CONFIG_FILE).is_file() and (folder / ADAPTER_DIR).is_dir() else \
        folder.parent if (folder.parent / CONFIG_FILE).is_file() and (folder / "adapter_config.json").is_file() else None
    if run is not None:
        config = load_config(run / CONFIG_FILE)
        if config.stage != "rm":
            raise ValueError(f"rl.rewards reward_model: {path} is a {config.stage} run, not an rm run (a reward model)")
        adapter = run / ADAPTER_DIR
        if not (adapter / "adapter_config.json").is_file():
            raise ValueError(f"rl.rewards reward_model: {path} has no trained adapter yet ({adapter} is missing)")
        return resolve_model(config.model.name_or_path), str(adapter)
    if (folder / "adapter_config.json").is_file():
        base = json.loads((folder / "adapter_config.json").read_text(encoding="utf-8")).get("base_model_name_or_path")
        return str(base), str(folder)
    if (folder / "config.json").is_file():
        return str(folder), None
    raise ValueError(f"rl.rewards reward_model: {path} is not an rm run folder, an adapter folder or a model folder")


class RewardModel:
    """A frozen reward model that scores (prompt, answer) pairs."""

    def __init__(self, path: str) -> None:
        from transformers import AutoModelForSequenceClassification

        from engine.models.tokenizer import load_tokenizer

        base, adapter = locate(path)
        self.tokenizer = load_tokenizer(adapter or base, None, False)  # an rm run saves its tokenizer with the adapter
        model = AutoModelForSequenceClassification.from_pretrained(base, num_labels=1, dtype=torch.float32)
        model.config.pad_token_id = self.tokenizer.pad_token_id
        if adapter:
            from peft import PeftModel

            model = PeftModel.from_pretrained(model, adapter).merge_and_unload()
        self.device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        self.model = model.to(self.device).eval().requires_grad_(False)

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
