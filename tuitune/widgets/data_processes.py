"""The Data screen's engine subprocesses (``python -m engine data …``), by name. No Textual here.

The screen's thread workers read their stdout line by line; the screen's main thread sends
requests to the encoder's stdin. Every process is killed when the screen goes away.
"""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any, Iterator


def engine_command(*args: str) -> list[str]:
    """``python -m engine data ARGS`` with this interpreter."""
    return [sys.executable, "-m", "engine", "data", *args]


class EngineProcesses:
    """Named engine subprocesses speaking JSON lines."""

    def __init__(self) -> None:
        self.running: dict[str, subprocess.Popen] = {}
        """Live processes by name (``report``, ``encoder``)."""

    def __contains__(self, name: str) -> bool:
        process = self.running.get(name)
        return process is not None and process.poll() is None

    def start(self, name: str, *args: str) -> subprocess.Popen:
        """Start ``python -m engine data ARGS`` as ``name``, ending one of that name first."""
        self.stop(name)
        process = subprocess.Popen(engine_command(*args), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                   stderr=subprocess.DEVNULL, text=True, encoding="utf-8")
        self.running[name] = process
        return process

    def events(self, process: subprocess.Popen) -> Iterator[dict[str, Any]]:
        """The JSON events ``process`` prints, until it ends (other lines are skipped)."""
        for line in process.stdout:
            if line.startswith("{"):
                yield json.loads(line)

    def send(self, name: str, request: dict[str, Any]) -> bool:
        """Write ``request`` as one line to ``name``'s stdin; False when it is not running."""
        process = self.running.get(name)
        try:
            process.stdin.write(json.dumps(request) + "\n")
            process.stdin.flush()
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
