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
``reason`` is ``eos`` (the model ended its turn), ``length`` (``max_new_tokens``, or the end of the
model's context) or ``stopped``.

What the service promises:

* Every request is answered: a ``generate`` by a ``done`` per side, or by one ``error`` naming the
  request's ``id`` and what is wrong with it (the field, :func:`generate_problem`; a conversation
  longer than the model's context, with its tokens and the context). A line that is no request gets
  an ``error`` too, with no ``id``.
* A request line longer than :data:`engine.services.jsonlines.MAX_REQUEST_BYTES` (4 MiB) is refused
  as soon as that much of it has come, unread past it, with an ``error`` carrying the ``id`` it began
  with; the service reads on.
* It ends when its stdin closes (the app's end of the pipe goes with the app): the answer being
  written stops at its next token and the requests still waiting are answered ``stopped``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any, Literal, TypedDict

from engine.data.formats import messages_problem
from engine.protocol import is_kind
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
DEFAULT_SIDES: list[Side] = ["tuned"]
"""The sides a ``generate`` without ``sides`` is answered from."""

SETTINGS: dict[str, tuple[str, Callable[[Any], bool], str]] = {
    "max_new_tokens": ("int", lambda n: n >= 1, "a whole number of at least 1"),
    "temperature": ("finite", lambda x: x >= 0, "a number of at least 0 (0 answers greedily)"),
    "top_p": ("finite", lambda x: 0 < x <= 1, "a number above 0 and at most 1"),
    "repetition_penalty": ("finite", lambda x: x > 0, "a number above 0"),
    "seed": ("int", lambda n: n >= 0, "a whole number of at least 0"),
}
"""The settings a ``generate`` may carry (each optional): its JSON kind (:data:`engine.protocol.Kind`), the
test a value must pass, and that test in words. ``tuitune chat`` checks its flags against the same table."""


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


def setting_problem(name: str, value: Any) -> str | None:
    """Why ``value`` cannot be the setting ``name`` of :data:`SETTINGS` (``expected a whole number of at least 1,
    got "lots"``), or None when it can."""
    kind, test, words = SETTINGS[name]
    return None if is_kind(value, kind) and test(value) else f"expected {words}, got {_shown(value)}"


def generate_problem(request: Mapping[str, Any]) -> str | None:
    """What is wrong with a ``generate`` request as ``FIELD: what`` (``sides[0]: expected base or tuned, got
    "evil"``), or None when it can be answered as it stands."""
    if not is_kind(request.get("id"), "int"):
        return f"id: expected a whole number, got {_shown(request.get('id'))}"
    if problem := messages_problem(request.get("messages")):
        return problem
    sides = sides_of(request)
    if not isinstance(sides, list) or not sides:
        return f"sides: expected an array of one or both of {', '.join(SIDES)}, got {_shown(sides)}"
    for n, side in enumerate(sides):
        if side not in SIDES or side in sides[:n]:
            return f"sides[{n}]: expected {' or '.join(SIDES)}, each once, got {_shown(side)}"
    for name in SETTINGS:
        if name in request and (problem := setting_problem(name, request[name])):
            return f"{name}: {problem}"
    return None


def sides_of(request: Mapping[str, Any]) -> list[Side]:
    """The sides a ``generate`` request asks to be answered from (:data:`DEFAULT_SIDES` when it names none)."""
    sides = request.get("sides")
    return DEFAULT_SIDES if sides is None else sides


def _shown(value: Any) -> str:
    """``value`` as JSON, cut short, for a message."""
    shown = json.dumps(value, ensure_ascii=False) if value is not None else "nothing"
    return shown if len(shown) <= 40 else shown[:40] + "…"


def bad_line_error(bad: BadLine, sender: str) -> Error:
    """An :class:`Error` telling people that ``sender`` wrote ``bad`` (a line that is no message); it carries
    the request's id when a line too long to read began with one."""
    return Error(type=ERROR, id=bad.request_id, message=f"{sender} wrote a line that is not a message: {bad}")
