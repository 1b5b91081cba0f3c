"""EngineLink: the Data screen's engine subprocesses, the report and the record encoder.

The screen reads files and pages itself; what needs the ML stack runs as ``python -m engine
data`` twice: once for the report on the open file (problems, progress, statistics) and once
as a long-lived encoder that answers for the highlighted record with the labels training would
use. Thread workers of the screen read the subprocesses, and their events come back to it as
``ReportRead`` and ``TokensRead`` messages.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from textual.message import Message
from textual.screen import Screen
from textual.worker import get_current_worker

from tuitune.services import EngineProcesses


class EngineLink:
    """The report and encoder subprocesses of ``screen``, killed with ``stop_all``."""

    @dataclass
    class ReportRead(Message):
        """A batch of events from ``python -m engine data``; ``generation`` names the open it belongs to."""

        events: list[dict[str, Any]]
        generation: int = 0

    @dataclass
    class TokensRead(Message):
        """An event from the encoder (``ready``, ``encoded``, ``error`` or ``failed``)."""

        event: dict[str, Any]

    def __init__(self, screen: Screen) -> None:
        self.screen = screen
        self.processes = EngineProcesses()
        """The engine subprocesses."""
        self.request = 0
        """Id of the last encode request; older answers are ignored."""

    @property
    def encoding(self) -> bool:
        """Whether the encoder runs."""
        return "encoder" in self.processes

    def start_encoder(self, model: str, cutoff: int) -> None:
        """Start the encoder for ``model``'s chat template at ``cutoff`` tokens (ending a running one)."""
        self.screen.run_worker(lambda: self._read_encoder(model, cutoff), thread=True, exclusive=True,
                               group="data-encoder", exit_on_error=False, description="starting the tokeniser")

    def stop_encoder(self) -> None:
        """End the encoder (the next open starts one with the new model)."""
        self.processes.stop("encoder")

    def encode(self, request: dict[str, Any]) -> None:
        """Ask the encoder for the tokens of one record (an ``EncodeRequest`` without its id: ``messages``,
        ``rejected``, ``answer_only`` or ``text``); its answer is the only one ``is_answer`` takes."""
        self.request += 1
        # the id first: a request too long for the encoder to read is refused with the id it begins with
        self.processes.send("encoder", {"id": self.request, **request})

    def is_answer(self, event: dict[str, Any]) -> bool:
        """Whether ``event`` answers the latest encode request."""
        return event.get("id") == self.request

    def start_report(self, path: str, fmt: str, model: str, cutoff: int, generation: int) -> None:
        """Start the report on ``path`` (ending a running one); its batches carry ``generation``."""
        self.screen.run_worker(lambda: self._read_report(path, fmt, model, cutoff, generation), thread=True,
                               exclusive=True, group="data-report", exit_on_error=False,
                               description="checking the data")

    def stop_all(self) -> None:
        """End every subprocess."""
        self.processes.stop_all()

    def _read_encoder(self, model: str, cutoff: int) -> None:
        process = self.processes.start("encoder", "--serve", "--model", model, "--cutoff", str(cutoff))
        for event in self.processes.events(process):
            self.screen.post_message(self.TokensRead(event))

    def _read_report(self, path: str, fmt: str, model: str, cutoff: int, generation: int) -> None:
        worker = get_current_worker()
        process = self.processes.start("report", path, "--format", fmt, "--cutoff", str(cutoff),
                                       *(["--model", model] if model else []))
        batch: list[dict[str, Any]] = []
        sent = time.monotonic()
        for event in self.processes.events(process):
            if worker.is_cancelled:
                return
            batch.append(event)
            if time.monotonic() - sent > 0.1 or event["type"] in ("checked", "token_stats", "done", "failed"):
                self.screen.post_message(self.ReportRead(batch, generation))
                batch, sent = [], time.monotonic()
        if batch:
            self.screen.post_message(self.ReportRead(batch, generation))
