"""The protocol of ``python -m engine chat``: every message it reads or writes. Standard library only.

The app (the Chat screen, ``tuitune chat --once``) starts the chat service in a subprocess once
per screen and talks to it in JSON lines (:mod:`engine.services.jsonlines`). The service loads the
run's base model as the run trained it, with its adapter, then:

Service to app::

    {"type": "loading", "message": "loading the model"}                 while it loads
    {"type": "ready", "model": ..., "adapter": ..., "device": "cpu", "can_compare": true, "system_prompt": null}
    {"type": "token", "id": 3, "side": "tuned", "text": "I'm"}          streamed pieces of an answer
    {"type": "done", "id": 3, "side": "tuned", "reason": "eos", "tokens": 12, "seconds": 0.8}
    {"type": "error", "id": 3, "message": ...}                          a request it cannot answer
    {"type": "failed", "message": ...}                                  it cannot load; it exits with 2

App to service::

    {"type": "generate", "id": 3, "messages": [...], "sides": ["base", "tuned"], "max_new_tokens": 256,
     "temperature": 0.0, "top_p": 1.0, "repetition_penalty": 1.0, "seed": 0}
    {"type": "stop"}                                                    end the answer being written

``sides`` are answered one after the other, each fully (``done``) before the next, from the same
``messages`` (the Chat screen sends one side a request, so each side keeps its own conversation);
``base`` switches the adapter off around the whole generation, so there is one model in memory.
``reason`` is ``eos`` (the model ended its turn), ``length`` (``max_new_tokens``) or ``stopped``.
The service ends when its stdin closes.
"""

from __future__ import annotations

from typing import Literal, TypedDict

from engine.services.jsonlines import BadLine

LOADING = "loading"
READY = "ready"
TOKEN = "token"
DONE = "done"
ERROR = "error"
FAILED = "failed"
GENERATE = "generate"
STOP = "stop"

Side = Literal["base", "tuned"]
SIDES: tuple[Side, ...] = ("base", "tuned")


class Generate(TypedDict):
    """A question: answer the conversation ``messages`` from each of ``sides``."""

    type: str
    id: int
    messages: list[dict[str, str]]
    """system/user/assistant turns, the last one the user's."""
    sides: list[Side]
    max_new_tokens: int
    temperature: float
    """0 answers greedily (the same answer every time); above 0 samples."""
    top_p: float
    repetition_penalty: float
    seed: int


class Ready(TypedDict):
    """The model is loaded and questions can come."""

    type: str
    model: str
    """The run's model.name_or_path."""
    adapter: str
    """The adapter (or checkpoint) folder answering as ``tuned``."""
    device: str
    can_compare: bool
    """False for a full fine-tune: there is no adapter to switch off, so no ``base`` side."""
    system_prompt: str | None
    """The run's data.system_prompt, put in front of conversations that have none."""


class Token(TypedDict):
    """A piece of an answer, as soon as it is decoded."""

    type: str
    id: int
    side: Side
    text: str


class Done(TypedDict):
    """An answer is complete."""

    type: str
    id: int
    side: Side
    reason: Literal["eos", "length", "stopped"]
    tokens: int
    seconds: float


class Error(TypedDict):
    """A request the service could not answer (it goes on)."""

    type: str
    id: int | None
    message: str


def generate(request_id: int, messages: list[dict[str, str]], sides: list[Side], max_new_tokens: int = 256,
             temperature: float = 0.0, top_p: float = 1.0, repetition_penalty: float = 1.0,
             seed: int = 0) -> Generate:
    """A ``generate`` request."""
    return Generate(type=GENERATE, id=request_id, messages=messages, sides=sides, max_new_tokens=max_new_tokens,
                    temperature=temperature, top_p=top_p, repetition_penalty=repetition_penalty, seed=seed)


def bad_line_error(bad: BadLine, sender: str) -> Error:
    """An :class:`Error` telling people that ``sender`` wrote ``bad`` (a line that is no message)."""
    return Error(type=ERROR, id=None, message=f"{sender} wrote a line that is not a message: {bad}")
