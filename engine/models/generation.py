"""A run's model ready to answer: loaded as the run trained it, its adapter on or off per answer.

The chat service (engine.services.chat) asks here, so the torch side of answering stays with model
loading. One base model is loaded; ``base`` answers switch the adapter off around the whole
generation (peft's ``disable_adapter``), so comparing costs no second copy in memory.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from peft import PeftModel
from transformers import StoppingCriteria, StoppingCriteriaList, TextStreamer

from engine.config import load_config
from engine.data.encode import render
from engine.data.formats import with_system
from engine.data.template_doctor import END_OF_TURN
from engine.models.demo import resolve_model
from engine.models.info import ModelError, context_length_of
from engine.models.loading import device, load_model
from engine.models.safetensors_header import weights_problem
from engine.models.tokenizer import load_tokenizer
from engine.protocol import CONFIG_FILE
from engine.stages import STAGES


@dataclass
class ChatModel:
    """A loaded model and what answering with it needs."""

    model: Any
    tokenizer: Any
    name: str
    """The run's model.name_or_path."""
    adapter: Path
    """The adapter (or, for a full fine-tune, the weights) answering as ``tuned``."""
    device: str
    can_compare: bool
    """Whether there is an adapter to switch off (not for full fine-tuning)."""
    system_prompt: str | None
    stop_ids: list[int]
    context: int | None
    """The most tokens the model reads, question and answer together (None: its config does not say)."""


class CannotAnswer(ValueError):
    """A question the model cannot answer as asked; the message says why, for people."""


@dataclass(frozen=True)
class Settings:
    """How to answer: greedy unless ``temperature`` is above 0."""

    max_new_tokens: int = 256
    temperature: float = 0.0
    top_p: float = 1.0
    repetition_penalty: float = 1.0
    seed: int = 0


def load_chat_model(run_dir: Path, adapter: Path, phase: Callable[[str], None] = lambda _: None) -> ChatModel:
    """The run's base model loaded as the run was trained (quantized when it was, on the GPU when
    there is one) with ``adapter`` on it; ``phase`` hears what is loading.

    Raises:
        ModelError: ``adapter`` holds a weights file that is not whole (told from the file, before anything loads).
    """
    if problem := weights_problem(adapter):
        raise ModelError(problem)
    config = load_config(run_dir / CONFIG_FILE)
    if STAGES[config.stage].score_head:
        raise ValueError(f"{run_dir.name} trained a reward model (stage {config.stage}): it scores answers and does "
                         "not generate them; use it as an RL run's reward (rl.rewards reward_model)")
    full = config.adapter.method == "full"
    phase("loading the tokenizer")
    path = resolve_model(config.model.name_or_path)
    tokenizer = load_tokenizer(path, config.model.revision, config.model.trust_remote_code)
    phase("loading the model")
    # A full fine-tune saved whole weights instead of an adapter: they are the tuned model.
    model = load_model(config, str(adapter) if full else path, pad_token_id=tokenizer.pad_token_id, on_device=True)
    model.config.use_cache = True  # off for training; generation needs it
    if not full:
        phase("loading the adapter")
        model = PeftModel.from_pretrained(model, str(adapter))
    model.eval()
    return ChatModel(model, tokenizer, config.model.name_or_path, adapter, str(device()), not full,
                     config.data.system_prompt, stop_ids(tokenizer, model), context_length_of(model.config.to_dict()))


def stop_ids(tokenizer: Any, model: Any) -> list[int]:
    """The tokens that end an answer: EOS (the tokenizer's and the generation config's) and the
    template's end-of-turn marker."""
    ids: set[int] = set()
    configured = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    for value in (tokenizer.eos_token_id, configured):
        ids.update(value if isinstance(value, list) else [value] if value is not None else [])
    vocab = tokenizer.get_vocab()
    ids.update(vocab[token] for token in END_OF_TURN if token in vocab)
    return sorted(ids)


class _StopWhenAsked(StoppingCriteria):
    """Ends the generation at the next token once ``event`` is set (a stop from the user)."""

    def __init__(self, event: threading.Event) -> None:
        self.event = event

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor, **kwargs: Any) -> torch.BoolTensor:
        return torch.full((input_ids.shape[0],), self.event.is_set(), dtype=torch.bool, device=input_ids.device)


class _PieceStreamer(TextStreamer):
    """Hands each decoded piece of the answer to ``on_text`` (words whole, as TextStreamer cuts them)."""

    def __init__(self, tokenizer: Any, on_text: Callable[[str], None]) -> None:
        super().__init__(tokenizer, skip_prompt=True, skip_special_tokens=True)
        self.on_text = on_text

    def on_finalized_text(self, text: str, stream_end: bool = False) -> None:
        if text:
            self.on_text(text)


def answer(chat: ChatModel, messages: list[dict[str, str]], side: str, settings: Settings, stop: threading.Event,
           on_text: Callable[[str], None]) -> tuple[str, int, float]:
    """Answer the conversation from ``side`` (``base`` or ``tuned``), streaming pieces to ``on_text``.

    The conversation is rendered with the run's own chat template exactly as training rendered it
    (engine.data.encode.render), with the run's system prompt where it has none. The answer ends at the
    end of the model's context if ``max_new_tokens`` would run past it.

    Returns:
        ``(reason, tokens, seconds)``: reason is ``eos``, ``length`` or ``stopped``.

    Raises:
        CannotAnswer: ``base`` of a full fine-tune, or a conversation that fills the model's context (the
            message gives both in tokens).
    """
    if side == "base" and not chat.can_compare:
        raise CannotAnswer("a full fine-tune has no adapter to switch off: there is no base side to ask")
    text = render(with_system(messages, chat.system_prompt), chat.tokenizer, generation_prompt=True)
    inputs = chat.tokenizer(text, add_special_tokens=False, return_tensors="pt").to(chat.device)
    prompt = inputs["input_ids"].shape[1]
    room = settings.max_new_tokens if chat.context is None else min(settings.max_new_tokens, chat.context - prompt)
    if room < 1:  # past its context a model's positions are untrained, and its attention grows without bound
        raise CannotAnswer(f"the conversation is {prompt:,} tokens and the model reads at most {chat.context:,} "
                           "(its context): shorten it, or start a new one")
    sampling = settings.temperature > 0
    if sampling:
        torch.manual_seed(settings.seed)
    options: dict[str, Any] = {"max_new_tokens": room, "do_sample": sampling,
                               "repetition_penalty": settings.repetition_penalty, "eos_token_id": chat.stop_ids,
                               "pad_token_id": chat.tokenizer.pad_token_id}
    if sampling:
        options.update(temperature=settings.temperature, top_p=settings.top_p)
    else:  # greedy: the model's own sampling defaults would only warn
        options.update(temperature=None, top_p=None, top_k=None)
    started = time.monotonic()
    # The adapter is switched off around the whole generation, inside the thread that generates.
    switch = chat.model.disable_adapter() if side == "base" else nullcontext()
    with switch, torch.inference_mode():
        output = chat.model.generate(**inputs, **options, streamer=_PieceStreamer(chat.tokenizer, on_text),
                                     stopping_criteria=StoppingCriteriaList([_StopWhenAsked(stop)]))
    new = output[0][inputs["input_ids"].shape[1]:].tolist()
    reason = "stopped" if stop.is_set() else "eos" if new and new[-1] in chat.stop_ids else "length"
    return reason, len(new), time.monotonic() - started
