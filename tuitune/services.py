"""The app's end of the engine's services: ``python -m engine data|chat …`` subprocesses, by name. No Textual here.

The Data screen's thread workers read their stdout as messages (:meth:`EngineProcesses.events`);
its main thread sends requests to the encoder's stdin. Every process is killed when the screen
goes away. Lines are read through :mod:`engine.services.jsonlines` and named by
:mod:`engine.services.data_protocol`; a line that is no message becomes an ``error`` message, so
the reading worker lives on and the screen can say what happened.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from typing import Any

from engine.services import jsonlines
from engine.services.data_protocol import bad_line_error


def engine_command(verb: str, *args: str) -> list[str]:
    """``python -m engine VERB ARGS`` with this interpreter."""
    return [sys.executable, "-m", "engine", verb, *args]


class EngineProcesses:
    """Named engine subprocesses speaking JSON lines."""

    def __init__(self) -> None:
        self.running: dict[str, subprocess.Popen] = {}
        """Live processes by name (``report``, ``encoder``)."""

    def __contains__(self, name: str) -> bool:
        process = self.running.get(name)
        return process is not None and process.poll() is None

    def start(self, name: str, *args: str, verb: str = "data") -> subprocess.Popen:
        """Start ``python -m engine VERB ARGS`` as ``name``, ending one of that name first."""
        self.stop(name)
        # surrogateescape: a byte that is not UTF-8 reaches the reader as a bad line, not as an exception
        process = subprocess.Popen(engine_command(verb, *args), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                   stderr=subprocess.DEVNULL, text=True, encoding="utf-8", errors="surrogateescape")
        self.running[name] = process
        return process

    def events(self, process: subprocess.Popen) -> Iterator[dict[str, Any]]:
        """The messages ``process`` prints, until it ends; a bad line comes as an ``error`` message."""
        for message in jsonlines.read_messages(process.stdout):
            # data_protocol and chat_protocol say it the same way: an error message with no id
            yield bad_line_error(message, "the engine") if isinstance(message, jsonlines.BadLine) else message

    def send(self, name: str, request: dict[str, Any]) -> bool:
        """Write ``request`` as one line to ``name``'s stdin; False when it is not running."""
        process = self.running.get(name)
        try:
            jsonlines.write_message(process.stdin, request)
            return True
        except (OSError, ValueError, AttributeError):
            return False

    def stop(self, name: str) -> None:
        """Kill ``name`` if it runs, and reap it."""
        process = self.running.pop(name, None)
        if process is not None:
            if process.poll() is None:
                process.kill()
            process.wait()
            for stream in (process.stdin, process.stdout):
                if stream is not None:
                    try:
                        stream.close()
                    except OSError:
                        pass

    def stop_all(self) -> None:
        """Kill every process."""
        for name in list(self.running):
            self.stop(name)
