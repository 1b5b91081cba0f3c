"""DataInspector: the Data screen's right side — Record, Problems, Statistics and Template tabs.

The Template tab shows the chat-template doctor's verdicts of the report (:mod:`engine.data.template_doctor`)
on the model chosen below the statistics: every check with its token, errors in red with their evidence.

The screen pushes data in (records to show, report events, tokens); the inspector keeps the
report's state and posts :class:`DataInspector.ProblemChosen` when Enter is pressed on a problem.
It never reads files or starts processes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from rich.text import Text
from textual import getters, on
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.message import Message
from textual.widgets import DataTable, Input, Static, TabbedContent, TabPane

from engine.data.formats import LAYOUTS, TRAINABLE, to_example, to_messages, to_prompt
from engine.data.problems import Problem
from engine.data.report_events import VERDICT
from engine.data.source import RawRecord
from engine.data.verdicts import Verdict
from tuitune.widgets.data_stats import DataStats
from tuitune.widgets.data_table import ProblemTable
from tuitune.widgets.record_view import RecordView


def plural(count: int, noun: str) -> str:
    """``1 error``, ``2 errors``."""
    return f"{count:,} {noun}{'' if count == 1 else 's'}"


SEVERITY_STYLES = {"ok": "green", "warning": "yellow", "error": "bold red"}


def verdicts_text(verdicts: list[Verdict]) -> Text:
    """The doctor's verdicts, one line each in the colour of its severity; the evidence and the fix of one
    that does not pass below it, dimmed."""
    text = Text()
    for verdict in verdicts:
        if text:
            text.append("\n")
        text.append(verdict.line(with_fix=False), style=SEVERITY_STYLES[verdict.severity])
        if verdict.severity != "ok":
            for label, value in (("fix", verdict.fix), ("evidence", verdict.evidence)):
                if value:
                    text.append(f"\n    {label}: {value}", style="dim")
    return text


def record_title(raw: RawRecord) -> str:
    """``record 3 · line 4``."""
    return f"record {raw.index}" + (f" · line {raw.line}" if raw.line else "")


class DataInspector(Vertical):
    """Tabs showing the highlighted record, the problems found, and statistics with progress."""

    @dataclass
    class ProblemChosen(Message):
        """Enter on a problem: the screen should show ``record``."""

        record: int

    tabs = getters.query_one(TabbedContent)
    problem_table = getters.query_one("#data-problems", ProblemTable)
    problem_line = getters.query_one("#data-problem", Static)
    record_view = getters.query_one("#data-record", RecordView)
    stats = getters.query_one("#data-stats", DataStats)
    template_view = getters.query_one("#data-template", Static)

    def __init__(self, model: str, cutoff: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.model, self.cutoff = model, cutoff
        self.checked: dict[str, Any] | None = None
        """The last ``checked`` event of the report."""
        self.tokens: dict[str, Any] | None = None
        """The last ``token_stats`` event of the report."""
        self.done = False
        """Whether the report has ended (done or failed)."""
        self.verdicts: list[Verdict] = []
        """The chat-template doctor's verdicts of the report."""
        self.failed = False
        """Whether the report ended without checking every record."""
        self.title_shown = ""

    def compose(self):
        """The four tabs; the Statistics tab also holds the model and cutoff boxes."""
        with TabbedContent():
            with TabPane("Record", id="tab-record"):
                yield RecordView(id="data-record")
            with TabPane("Problems", id="tab-problems"):
                yield ProblemTable(id="data-problems")
                yield Static("", id="data-problem", markup=False)
            with TabPane("Statistics", id="tab-stats"):
                yield DataStats(id="data-stats")
                with Horizontal(id="data-token-bar"):
                    yield Input(self.model, placeholder="model (empty: no tokens)", id="data-model")
                    yield Input(str(self.cutoff), type="integer", id="data-cutoff")
            with TabPane("Template", id="tab-template"), VerticalScroll():
                yield Static(self._template_note(), id="data-template")

    def show_tab(self, tab: str) -> None:
        """Bring the tab ``tab`` (tab-record, tab-problems, tab-stats, tab-template) to the front."""
        self.tabs.active = tab

    def reset(self, model: str) -> None:
        """Forget the last report; ``model`` is the one the next report tokenises with."""
        self.model, self.checked, self.tokens, self.done, self.failed = model, None, None, False, False
        self.verdicts = []
        self.template_view.update(self._template_note())
        self.tabs.get_tab("tab-template").label = "Template"
        self.problem_table.reset()
        self.problem_line.update("")
        self.record_view.show_note("Reading…")
        self._count_problems()

    def show_record(self, raw: RawRecord, fmt: str | None) -> dict[str, Any] | None:
        """Show ``raw``'s turns (or raw JSON and problems); returns the encoder's request for it
        (``messages``, with ``rejected`` for a pair, ``answer_only`` for a kto answer, or ``text``)
        when it can be trained."""
        self.title_shown = record_title(raw)
        problems = [raw.problem.message] if raw.problem else []
        dump = json.dumps(raw.value, ensure_ascii=False, indent=2) if raw.value is not None else ""
        if raw.problem is None and fmt in LAYOUTS and fmt not in TRAINABLE:
            # a prompt of an RL stage has no trained tokens (its answers are sampled): no token view
            example, found = to_prompt(raw.value, fmt) if LAYOUTS[fmt] == "prompts" else to_example(raw.value, fmt)
            problems = [f"{f}: {m}" if f else m for f, m in found]
            self.record_view.show_example(self.title_shown, example, problems, dump)
            if example is None or problems or example.kind == "prompts":
                return None
            if example.kind == "text":
                return {"text": example.text}
            if example.kind == "kto":
                return {"messages": example.conversation("chosen"), "answer_only": True}
            return {"messages": example.conversation("chosen"), "rejected": example.conversation("rejected")}
        messages = None
        if raw.problem is None and fmt in TRAINABLE:
            messages, found = to_messages(raw.value, fmt)
            problems = [f"{f}: {m}" if f else m for f, m in found]
        self.record_view.show_messages(self.title_shown, messages, problems, dump)
        return {"messages": messages} if messages is not None else None

    def show_tokens(self, encoded: dict[str, Any]) -> None:
        """Show the encoder's answer for the record shown last."""
        self.record_view.show_tokens(self.title_shown, encoded)

    def add_events(self, events: list[dict[str, Any]]) -> None:
        """Fold a batch of report events into the problems list and the statistics."""
        problems = [e for e in events if e["type"] == "problem"]
        if problems:
            self.problem_table.add_problems(problems)
            self._count_problems()
        stats = self.stats
        for event in events:
            kind = event["type"]
            if kind == "progress":
                stats.show_progress(event["phase"], event["fraction"], event["records"])
            elif kind in ("checked", "token_stats"):
                setattr(self, "checked" if kind == "checked" else "tokens", event)
                stats.show_stats(self.checked, self.tokens,
                                 "" if self.model else "Set a model below to see token statistics.")
            elif kind == VERDICT:
                self.verdicts.append(Verdict.from_dict(event))
                self.template_view.update(verdicts_text(self.verdicts))
                errors = sum(v.is_error for v in self.verdicts)
                self.tabs.get_tab("tab-template").label = f"Template ({plural(errors, 'error')})" if errors \
                    else "Template"
            elif kind in ("failed", "done"):
                self.done, self.failed = True, kind == "failed"
                stats.finish(event.get("message") or
                             f"done: {plural(event['errors'], 'error')}, {plural(event['warnings'], 'warning')}")
                self._count_problems()

    def _template_note(self) -> str:
        return ("The chat template's verdicts appear once the report has tokenised the data." if self.model
                else "Set a model on the Statistics tab to check its chat template.")

    def _count_problems(self) -> None:
        count = len(self.problem_table.problems)
        self.tabs.get_tab("tab-problems").label = f"Problems ({count:,})" if count else "Problems"
        self.problem_table.display = bool(count)  # an empty table is a bare header: say what it means instead
        if not count:
            self.problem_line.update("The check stopped early (see Statistics); no problems found before it."
                                     if self.failed else "No problems found: every record can be trained on."
                                     if self.done else "Checking… no problems found so far.")

    @on(DataTable.RowHighlighted, "#data-problems")
    def _show_problem(self, event: DataTable.RowHighlighted) -> None:
        problem = self.problem_table.problems[int(event.row_key.value)]
        self.problem_line.update(f"{Problem.from_dict(problem)}  (Enter: go to the record)")

    @on(DataTable.RowSelected, "#data-problems")
    def _choose_problem(self, event: DataTable.RowSelected) -> None:
        event.stop()
        problem = self.problem_table.problems[int(event.row_key.value)]
        if problem.get("record") is not None:
            self.post_message(self.ProblemChosen(problem["record"]))
