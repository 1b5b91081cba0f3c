"""CheckpointsScreen: a run's checkpoints with the train loss before each and the eval loss at it, the best one
marked, and chat, evaluation and export from the one chosen.

The rows come from ``tuitune.runs.checkpoints`` (the run's events and its ``checkpoints/`` folder), read in a
worker that follows the run while the screen is open (a live run saves more, and deletes); "best" is what
``tuitune export RUN --best`` takes. Chat, evaluation and export reuse what the dashboard uses (the Chat screen,
the Evaluate dialog and the export controller), given the checkpoint's folder.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from rich.text import Text
from textual import getters, on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.message import Message
from textual.widgets import DataTable, Footer, Static
from textual.worker import get_current_worker

from engine.protocol import CHECKPOINTS_DIR
from tuitune.controllers.eval_start import EvalStarter
from tuitune.controllers.export_start import ExportStarter
from tuitune.runs.checkpoints import CheckpointRow, best_row, checkpoint_rows
from tuitune.runs.folder import initial_state, read_meta
from tuitune.runs.state import fold
from tuitune.runs.tail import EventTail
from tuitune.screens.base import AppScreen

POLL_S = 1.0
"""Seconds between looks for new events and checkpoint folders."""

COLUMNS = ("", "step", "train loss", "eval loss", "")
"""The best mark, the step, the losses and what is wrong with the checkpoint (if anything)."""


def loss_cell(value: float | None) -> str:
    """A loss to four places, or a dash when there is none."""
    return "—" if value is None else f"{value:.4f}"


def note_text(rows: list[CheckpointRow], best: CheckpointRow | None) -> str:
    """What the table's columns mean, and why no checkpoint is marked best when none is."""
    if not rows:
        return "No checkpoint yet: the run saves one every train.save_steps steps (c on the dashboard saves one now)."
    said = "train loss: last logged at or before the step · eval loss: evaluated at it\n"
    if best is None:
        return said + "None is marked best: no checkpoint has an eval loss (a run evaluates only with data.val_size>0)"
    if not best.usable:
        return said + f"★ best: step {best.step}, the lowest eval loss, but it cannot be used: {best.problem}"
    return said + f"★ best: step {best.step}, the lowest eval loss (what tuitune export RUN --best takes)"


class CheckpointsScreen(AppScreen):
    """The checkpoints of ``run_dir``, oldest first, the best marked; chat with, evaluate or export the chosen one."""

    CSS_PATH = "checkpoints.tcss"

    BINDINGS = [
        Binding("C", "chat", "Chat"),
        Binding("e", "evaluate", "Evaluate"),
        Binding("x", "export", "Export"),
        Binding("escape,b", "back", "Back"),
    ]

    @dataclass
    class RowsRead(Message):
        """The worker read the run's checkpoints."""

        rows: list[CheckpointRow]

    table = getters.query_one("#checkpoints", DataTable)
    note = getters.query_one("#note", Static)

    def __init__(self, run_dir: str | Path) -> None:
        super().__init__()
        self.run_dir = Path(run_dir)
        self.rows: list[CheckpointRow] = []
        """The checkpoints as last read, oldest first."""
        self.best: CheckpointRow | None = None
        """The checkpoint of the lowest eval loss, deleted or not; None when none has one."""
        self.exporter = ExportStarter(self)
        self.evaluator = EvalStarter(self)

    def compose(self) -> ComposeResult:
        yield Static(Text.assemble((" CHECKPOINTS ", "bold reverse"), f" {self.run_dir.name}"), id="title")
        yield DataTable(id="checkpoints", cursor_type="row", zebra_stripes=True)
        yield Static("Reading the checkpoints…", id="note", markup=False)
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.table.add_columns(*COLUMNS)
        self.read_rows()

    @work(thread=True, exclusive=True, group="checkpoints-read", exit_on_error=False, description="reading checkpoints")
    def read_rows(self) -> None:
        """Fold the run's events and list its checkpoint folders; then, while the screen is open, read the new
        events and list the folders again whenever either changed (a live run saves more, and deletes)."""
        worker = get_current_worker()
        tail = EventTail(self.run_dir)
        state = fold(initial_state(self.run_dir, read_meta(self.run_dir)), tail.read_all())
        seen: object = None
        while not worker.is_cancelled:
            if new := tail.read_all():
                state = fold(state, new)
            folders = sorted(p.name for p in (self.run_dir / CHECKPOINTS_DIR).glob("checkpoint-*"))
            if (state.events_seen, folders) != seen:
                seen = (state.events_seen, folders)
                self.post_message(self.RowsRead(checkpoint_rows(self.run_dir, state)))
            deadline = time.monotonic() + POLL_S
            while not worker.is_cancelled and time.monotonic() < deadline:
                time.sleep(0.05)

    @on(RowsRead)
    def show_rows(self, message: RowsRead) -> None:
        """Fill the table (the cursor stays on the step it was on; at first on the best one)."""
        chosen = self.chosen
        self.rows, self.best = message.rows, best_row(message.rows)
        table = self.table
        table.clear()
        for row in self.rows:
            mark = Text("★ best", style="bold green") if row is self.best else ""
            problem = Text(row.problem or "", style="dim" if row.problem else "")
            table.add_row(mark, str(row.step), loss_cell(row.train_loss), loss_cell(row.eval_loss), problem,
                          key=str(row.step))
        keep = chosen or self.best
        if keep is not None and keep in self.rows:
            table.move_cursor(row=self.rows.index(keep))
        self.note.update(note_text(self.rows, self.best))

    @property
    def chosen(self) -> CheckpointRow | None:
        """The checkpoint under the cursor."""
        if not self.rows or not self.is_mounted:
            return None
        return self.rows[min(self.table.cursor_row, len(self.rows) - 1)]

    def _usable(self) -> CheckpointRow | None:
        """The chosen checkpoint, or None after saying why it cannot be used."""
        row = self.chosen
        if row is None:
            self.notify(f"{self.run_dir.name} has no checkpoint yet", severity="warning")
        elif not row.usable:
            self.notify(f"checkpoint-{row.step} cannot be used: {row.problem}", severity="warning")
        else:
            return row
        return None

    def action_chat(self) -> None:
        """Talk to the chosen checkpoint."""
        if row := self._usable():
            self.tuitune_app.open_chat(row.path)

    def action_evaluate(self) -> None:
        """Evaluate the chosen checkpoint on a held-out data file (the Evaluate dialog asks which)."""
        if row := self._usable():
            self.evaluator.open(row.path)

    def action_export(self) -> None:
        """Export the chosen checkpoint (the Export dialog)."""
        if row := self._usable():
            self.exporter.open(row.path)

    def action_back(self) -> None:
        """Back to the dashboard."""
        self.app.pop_screen()
