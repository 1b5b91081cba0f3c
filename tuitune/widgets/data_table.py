"""Tables of the Data screen: a page of records, and the problems found.

Only one page of records is ever in the table (the screen feeds pages from the file's index),
so a file of a million records costs the widget no more than a page.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.text import Text
from textual.message import Message
from textual.widgets import DataTable

from engine.data.formats import LAYOUTS, TRAINABLE, Example, last_user_turn, to_example, to_messages
from engine.data.source import RawRecord

PREVIEW = 72
"""Characters of a record shown in its row."""


def one_line(text: str, width: int = PREVIEW, words: bool = False) -> str:
    """``text`` on one line, cut to ``width`` characters with an ellipsis; with ``words``, after the last whole
    word that fits (mid-word only when the first word is longer than the width)."""
    flat = " ".join(text.split())
    if len(flat) <= width:
        return flat
    cut = flat[: width - 1]
    if words and " " in cut:
        cut = cut[: cut.rindex(" ")].rstrip(" ,;:")
    return cut + "…"


def record_cells(raw: RawRecord, fmt: str | None) -> tuple[str, str, Text, str]:
    """Cells of one record row: index, line, status mark, preview (or the first problem)."""
    line = "" if raw.line is None else str(raw.line)
    if raw.problem is not None:
        return str(raw.index), line, Text("✗", style="bold red"), one_line(raw.problem.message)
    if fmt in LAYOUTS and fmt not in TRAINABLE:
        example, problems = to_example(raw.value, fmt)
        if problems or example is None:
            field, message = problems[0] if problems else ("", "not usable")
            shown = one_line(f"{field}: {message}" if field else message)
            return str(raw.index), line, Text("✗", style="bold red"), shown
        return str(raw.index), line, Text("✓", style="green"), one_line(example_preview(example))
    if fmt not in TRAINABLE:
        return str(raw.index), line, Text("·"), one_line(json.dumps(raw.value, ensure_ascii=False))
    messages, problems = to_messages(raw.value, fmt)
    if problems:
        field, message = problems[0]
        return str(raw.index), line, Text("✗", style="bold red"), one_line(f"{field}: {message}" if field else message)
    users = [m["content"] for m in messages if m["role"] == "user"]
    answers = [m["content"] for m in messages if m["role"] == "assistant"]
    turns = f"[{len(users) + len(answers)}] " if len(answers) > 1 else ""
    return str(raw.index), line, Text("✓", style="green"), one_line(f"{turns}{users[0]} → {answers[-1]}")


def example_preview(example: Example) -> str:
    """One line for a pair (prompt → chosen ≻ rejected), a kto answer (+/-), a prompt (→ its reference) or a
    document."""
    if example.kind == "text":
        return example.text or ""
    prompt = last_user_turn(example.prompt)
    if example.kind == "kto":
        return f"{'+' if example.label else '-'} {prompt} → {example.chosen}"
    if example.kind == "prompts":  # the reference answer, when the prompt has one
        return f"{prompt} → {example.chosen}" if example.chosen is not None else prompt
    return f"{prompt} → {example.chosen} ≻ {example.rejected}"


class RecordTable(DataTable):
    """One page of records; row keys are record indices. Moving past the first or last row asks
    for the neighbouring page (:class:`RecordTable.EdgeReached`)."""

    @dataclass
    class EdgeReached(Message):
        """The cursor tried to leave the page: ``step`` -1 (up from the top) or +1 (down from the bottom)."""

        step: int

    def action_cursor_down(self) -> None:
        """Down; from the last row, ask for the next page."""
        if self.row_count and self.cursor_row == self.row_count - 1:
            self.post_message(self.EdgeReached(1))
        else:
            super().action_cursor_down()

    def action_cursor_up(self) -> None:
        """Up; from the first row, ask for the previous page."""
        if self.row_count and self.cursor_row == 0:
            self.post_message(self.EdgeReached(-1))
        else:
            super().action_cursor_up()

    def on_mount(self) -> None:
        """Columns: record, line, status, preview."""
        self.cursor_type = "row"
        self.records: dict[int, RawRecord] = {}
        # Fixed widths: measured from the content, a page could be drawn before or after its rows
        # were measured, and the same screen came out two ways.
        self.add_column("#", key="index", width=6)
        self.add_column("line", key="line", width=6)
        self.add_column(" ", key="ok", width=1)
        self.add_column("record", key="preview", width=PREVIEW)

    def show_page(self, rows: list[RawRecord], fmt: str | None) -> None:
        """Replace the rows with ``rows``."""
        self.clear()
        self.records = {raw.index: raw for raw in rows}
        for raw in rows:
            self.add_row(*record_cells(raw, fmt), key=str(raw.index))


def where(problem: dict[str, Any]) -> str:
    """Short location of a problem event: ``name:line`` and ``#record``."""
    text = Path(problem["file"]).name
    if problem.get("line") is not None:
        text += f":{problem['line']}" + (f":{problem['column']}" if problem.get("column") is not None else "")
    if problem.get("record") is not None:
        text += f" #{problem['record']}"
    return text


class ProblemTable(DataTable):
    """Problems of the open data; row keys index :attr:`problems`; Enter selects (jumps).

    A problem's text is cut after the last whole word that fits the table's width (the line under the table
    shows the highlighted one whole), and cut again when the table's width changes."""

    LIMIT = 5000
    """Rows shown; more are counted."""

    def on_mount(self) -> None:
        """Columns: severity, where, field and message."""
        self.cursor_type = "row"
        self.problems: list[dict[str, Any]] = []
        self.fitted = 0
        """The width the problems' texts are cut to."""
        for label in (" ", "where", "problem"):
            self.add_column(label, key=label.strip() or "severity")

    def reset(self) -> None:
        """Forget every problem."""
        self.problems = []
        self.clear()

    def add_problems(self, problems: list[dict[str, Any]]) -> None:
        """Append problem events (as streamed by ``python -m engine data``)."""
        first = len(self.problems)
        for problem in problems:
            self.problems.append(problem)
            if len(self.problems) <= self.LIMIT:
                mark = Text("✗", style="bold red") if problem["severity"] == "error" else Text("!", style="yellow")
                self.add_row(mark, where(problem), problem_text(problem), key=str(len(self.problems) - 1))
        self.fit_texts(first)

    def text_width(self) -> int:
        """Cells the problem column has: the table's width less the other columns and the scrollbar."""
        others = sum(column.get_render_width(self) for key, column in self.columns.items() if key.value != "problem")
        return max(16, self.size.width - others - 2 * self.cell_padding - 2)

    def fit_texts(self, first: int = 0) -> None:
        """Cut the shown problems' texts from row ``first`` on to the column's width (every row's when that width
        changed); nothing until the table is laid out (a hidden tab): its resize comes then."""
        if not self.size.width:
            return
        width = self.text_width()
        if width != self.fitted:
            self.fitted, first = width, 0
        for index, problem in enumerate(self.problems[first: self.LIMIT], first):
            self.update_cell(str(index), "problem", one_line(problem_text(problem), width, words=True))
        column = next(column for key, column in self.columns.items() if key.value == "problem")
        column.auto_width, column.width = False, width  # a set width: no measuring of every cell again
        self._require_update_dimensions = True
        self.refresh()

    def on_resize(self) -> None:
        """The width changed: cut the texts to it."""
        self.fit_texts()


def problem_text(problem: dict[str, Any]) -> str:
    """``field: message`` of a problem event (the message alone when no field is named)."""
    return f"{problem['field']}: {problem['message']}" if problem.get("field") else problem["message"]
