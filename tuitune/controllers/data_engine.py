"""EngineLink: the Data screen's link to the engine subprocesses (report and record encoder).

A base class of :class:`tuitune.screens.data.DataScreen`, kept apart so each module has one job:
the screen reads files and pages; this part runs ``python -m engine data`` twice — once for the
report (problems, progress, statistics) and once as a long-lived encoder that answers for the
highlighted record with the labels training would use — and routes their events to the
:class:`DataInspector`. Thread workers read the subprocesses; results come back as messages.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from textual import on, work
from textual.message import Message
from textual.screen import Screen
from textual.widgets import DataTable
from textual.worker import get_current_worker

from engine.data.source import RawRecord
from tuitune.widgets.data_inspector import DataInspector
from tuitune.services import EngineProcesses
from tuitune.widgets.data_table import RecordTable


class EngineLink(Screen):
    """Screen base: engine subprocesses for the report and the record view."""

    @dataclass
    class ReportRead(Message):
        """A batch of events from ``python -m engine data``; ``generation`` names the open it belongs to."""

        events: list[dict[str, Any]]
        generation: int = 0

    @dataclass
    class TokensRead(Message):
        """An event from the encoder (``ready``, ``encoded``, ``error`` or ``failed``)."""

        event: dict[str, Any]

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.processes = EngineProcesses()
        """The engine subprocesses, killed on unmount."""
        self.request = 0
        """Id of the last encode request; older answers are ignored."""
        self.generation = 0
        """Counts opens; messages from workers of an earlier open are ignored."""
        self.fmt: str | None = None
        """Effective format of the open file (detected or chosen)."""

    def on_unmount(self) -> None:
        """End the engine subprocesses this screen started."""
        self.processes.stop_all()

    @on(DataTable.RowHighlighted, "#data-table")
    def _highlighted(self, event: DataTable.RowHighlighted) -> None:
        record = event.row_key.value
        raw = self.query_one(RecordTable).records.get(int(record)) if record is not None else None
        if raw is not None:
            self._show_record(raw)

    def _show_record(self, raw: RawRecord) -> None:
        """Show ``raw``'s turns now and ask the encoder for its tokens."""
        messages = self.query_one(DataInspector).show_record(raw, self.fmt)
        if messages is not None:
            self.request += 1
            self.processes.send("encoder", {"id": self.request, "messages": messages})

    @work(thread=True, exclusive=True, group="data-encoder", exit_on_error=False)
    def _run_encoder(self, model: str, cutoff: int) -> None:
        process = self.processes.start("encoder", "--serve", "--model", model, "--cutoff", str(cutoff))
        for event in self.processes.events(process):
            self.post_message(self.TokensRead(event))

    @on(TokensRead)
    def _show_tokens(self, message: TokensRead) -> None:
        event, table = message.event, self.query_one(RecordTable)
        if event["type"] == "ready" and table.row_count:
            raw = table.records.get(int(table.coordinate_to_cell_key((table.cursor_row, 0)).row_key.value))
            if raw is not None:
                self._show_record(raw)
        elif event["type"] == "encoded" and event["id"] == self.request:
            self.query_one(DataInspector).show_tokens(event)
        elif event["type"] in ("failed", "error"):
            self.notify(event["message"], title="Tokeniser", severity="error", timeout=8)

    @work(thread=True, exclusive=True, group="data-report", exit_on_error=False)
    def _run_report(self, path: str, fmt: str, model: str, cutoff: int, generation: int) -> None:
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
                self.post_message(self.ReportRead(batch, generation))
                batch, sent = [], time.monotonic()
        if batch:
            self.post_message(self.ReportRead(batch, generation))

    @on(ReportRead)
    def _show_report(self, message: ReportRead) -> None:
        if message.generation == self.generation:
            self.query_one(DataInspector).add_events(message.events)

    @property
    def report_done(self) -> bool:
        """Whether the report of the open file has ended."""
        return self.query_one(DataInspector).done
