"""``python -m engine chat --run-dir RUN --adapter DIR``: a run's model answering over JSON lines.

The app starts this once per Chat screen (and ``tuitune chat --once`` once per question); the
protocol is :mod:`engine.services.chat_protocol`. Requests are read on a thread of their own, so
a ``stop`` reaches the answer being generated at its next token; answers are generated one at a
time on the main thread. The service ends when its stdin closes: the app's end of the pipe goes
when the screen or the app does, so it never outlives them.
"""

from __future__ import annotations

import argparse
import queue
import sys
import threading
from pathlib import Path
from typing import Any

from engine.models.generation import ChatModel, Settings, answer, load_chat_model
from engine.services import jsonlines
from engine.services.chat_protocol import (
    DONE,
    ERROR,
    FAILED,
    GENERATE,
    LOADING,
    READY,
    SIDES,
    STOP,
    TOKEN,
    Done,
    Error,
    Ready,
    Token,
    bad_line_error,
)


class Service:
    """The answering loop over one loaded model."""

    def __init__(self, chat: ChatModel, out: Any = None) -> None:
        self.chat = chat
        self.out = out or sys.stdout
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.requests: queue.Queue[dict[str, Any] | None] = queue.Queue()

    def emit(self, message: Any) -> None:
        """Write one message (the reader thread and the answering loop both write)."""
        with self.lock:
            jsonlines.write_message(self.out, message)

    def read(self, stream: Any) -> None:
        """Thread: route each request line; a stop takes effect at once, questions queue up."""
        for message in jsonlines.read_messages(stream):
            if isinstance(message, jsonlines.BadLine):
                self.emit(bad_line_error(message, "the app"))
            elif message["type"] == STOP:
                self.stop.set()
            elif message["type"] == GENERATE:
                self.requests.put(message)
            else:
                self.emit(Error(type=ERROR, id=message.get("id"), message=f"unknown request {message['type']!r}"))
        self.stop.set()
        self.requests.put(None)

    def serve(self) -> int:
        """Answer requests until stdin closes."""
        while (request := self.requests.get()) is not None:
            self.stop.clear()
            try:
                self.respond(request)
            except Exception as exc:  # one bad request must not end the service
                self.emit(Error(type=ERROR, id=request.get("id"), message=f"{type(exc).__name__}: {exc}"))
        return 0

    def respond(self, request: dict[str, Any]) -> None:
        """Answer one ``generate`` request from each of its sides, in order."""
        request_id, messages = request["id"], request["messages"]
        sides = [side for side in request.get("sides") or ["tuned"] if side in SIDES]
        settings = Settings(**{key: request[key] for key in Settings.__dataclass_fields__ if key in request})
        for side in sides:
            if self.stop.is_set():
                self.emit(Done(type=DONE, id=request_id, side=side, reason="stopped", tokens=0, seconds=0.0))
                continue

            def piece(text: str, side: str = side) -> None:
                self.emit(Token(type=TOKEN, id=request_id, side=side, text=text))

            reason, tokens, seconds = answer(self.chat, messages, side, settings, self.stop, piece)
            self.emit(Done(type=DONE, id=request_id, side=side, reason=reason, tokens=tokens,
                           seconds=round(seconds, 3)))


def main(argv: list[str]) -> int:
    """Entry point of ``python -m engine chat``."""
    parser = argparse.ArgumentParser(prog="python -m engine chat", description=__doc__.split("\n\n")[0])
    parser.add_argument("--run-dir", required=True, type=Path, help="the run whose model answers")
    parser.add_argument("--adapter", required=True, type=Path, help="its adapter folder or a checkpoint of it")
    args = parser.parse_args(argv)
    out = sys.stdout

    def phase(message: str) -> None:
        jsonlines.write_message(out, {"type": LOADING, "message": message})

    try:
        chat = load_chat_model(args.run_dir, args.adapter, phase)
    except Exception as exc:  # a message, never a traceback on the app's pipe
        jsonlines.write_message(out, {"type": FAILED, "message": f"cannot load the model: {type(exc).__name__}: {exc}"})
        return 2
    service = Service(chat, out)
    service.emit(Ready(type=READY, model=chat.name, adapter=str(chat.adapter), device=chat.device,
                       can_compare=chat.can_compare, system_prompt=chat.system_prompt))
    threading.Thread(target=service.read, args=(sys.stdin,), name="requests", daemon=True).start()
    return service.serve()
