"""``python -m engine chat --run-dir RUN --adapter DIR``: a run's model answering over JSON lines.

The app starts this once per Chat screen (and ``tuitune chat --once`` once per question); the
protocol, and what the service promises, is :mod:`engine.services.chat_protocol`. Requests are read
and checked on a thread of their own, so a ``stop`` reaches the answer being generated at its next
token and a request that cannot be answered is refused at once; answers are generated one at a
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

from engine.models.generation import CannotAnswer, ChatModel, Settings, answer, load_chat_model
from engine.models.info import ModelError
from engine.services import jsonlines
from engine.services.chat_protocol import (
    DONE,
    ERROR,
    FAILED,
    GENERATE,
    LOADING,
    READY,
    SETTINGS,
    STOP,
    TOKEN,
    Done,
    Error,
    Ready,
    Token,
    bad_line_error,
    generate_problem,
    sides_of,
)


class Service:
    """The answering loop over one loaded model."""

    def __init__(self, chat: ChatModel, out: Any = None) -> None:
        self.chat = chat
        self.out = out or sys.stdout
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.closed = threading.Event()
        """Set when stdin has closed: whoever asked has gone."""
        self.requests: queue.Queue[dict[str, Any] | None] = queue.Queue()

    def emit(self, message: Any) -> None:
        """Write one message (the reader thread and the answering loop both write)."""
        with self.lock:
            jsonlines.write_message(self.out, message)

    def read(self, stream: Any) -> None:
        """Thread: route each request line of the binary ``stream``; a stop takes effect at once, a request that
        cannot be answered is refused at once, questions queue up. When the stream ends, so does the answering."""
        try:
            for message in jsonlines.read_requests(stream):
                if isinstance(message, jsonlines.BadLine):
                    self.emit(bad_line_error(message, "the app"))
                elif message["type"] == STOP:
                    self.stop.set()
                elif message["type"] != GENERATE:
                    self.refuse(message, f"unknown request {message['type']!r}")
                elif problem := generate_problem(message):
                    self.refuse(message, f"generate request: {problem}")
                else:
                    self.requests.put(message)
        finally:  # whatever ended the reading, the answering loop must hear of it or it waits forever
            self.closed.set()
            self.stop.set()
            self.requests.put(None)

    def refuse(self, request: dict[str, Any], why: str) -> None:
        """Answer ``request`` with an error saying ``why``."""
        self.emit(Error(type=ERROR, id=jsonlines.request_id(request), message=why))

    def serve(self) -> int:
        """Answer requests until stdin closes; those still waiting then are answered as stopped."""
        while (request := self.requests.get()) is not None:
            self.stop.clear()
            if self.closed.is_set():
                self.stop.set()
            try:
                self.respond(request)
            except CannotAnswer as exc:
                self.emit(Error(type=ERROR, id=request["id"], message=str(exc)))
            except Exception as exc:  # one bad request must not end the service
                self.emit(Error(type=ERROR, id=request["id"], message=f"{type(exc).__name__}: {exc}"))
        return 0

    def respond(self, request: dict[str, Any]) -> None:
        """Answer one checked ``generate`` request (:func:`generate_problem`) from each of its sides, in order."""
        request_id, messages = request["id"], request["messages"]
        sides = sides_of(request)
        settings = Settings(**{key: request[key] for key in SETTINGS if key in request})
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

    loading = ["reading the run's config"]

    def phase(message: str) -> None:
        loading.append(message)
        jsonlines.write_message(out, {"type": LOADING, "message": message})

    try:
        chat = load_chat_model(args.run_dir, args.adapter, phase)
    except ModelError as exc:  # said plainly: it names the file and what is wrong with it
        jsonlines.write_message(out, {"type": FAILED, "message": f"cannot load the model: {exc}"})
        return 2
    except Exception as exc:  # a message, never a traceback on the app's pipe
        jsonlines.write_message(out, {"type": FAILED, "message": f"cannot load the model ({loading[-1]}, "
                                                                 f"{args.adapter}): {type(exc).__name__}: {exc}"})
        return 2
    service = Service(chat, out)
    service.emit(Ready(type=READY, model=chat.name, adapter=str(chat.adapter), device=chat.device,
                       can_compare=chat.can_compare, system_prompt=chat.system_prompt))
    threading.Thread(target=service.read, args=(sys.stdin.buffer,), name="requests", daemon=True).start()
    return service.serve()
