"""RecordView: one record as the model will see it — chat template applied, trained tokens marked.

The screen pushes data in; the widget never reads files or starts processes. First the
record's messages are shown as plain turns (:meth:`show_messages`); when the engine has
encoded it (``python -m engine data --serve``, the same ``encode_conversation`` that makes the
training labels) :meth:`show_tokens` replaces them with the rendered template, trained tokens
highlighted, masked ones dim, and everything past the cutoff struck through.
"""

from __future__ import annotations

from typing import Any

from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual import getters
from textual.containers import VerticalScroll
from textual.widgets import Static

TRAINED = "bold #0b1f0f on #8fd19e"
MASKED = "#9a9a9a"
CUT = "strike #d08770"
LEGEND = Text.assemble(("trained", TRAINED), " assistant tokens   ", ("masked", MASKED), " not trained   ",
                       ("cut", CUT), " past the cutoff")


class RecordView(VerticalScroll):
    """Scrollable view of one record: header, legend, then turns or tokens."""

    DEFAULT_CSS = """
    RecordView { height: 1fr; padding: 0 1; }
    RecordView > #record-head { color: $text-muted; }
    RecordView > #record-body { width: 1fr; }
    """

    head_line = getters.query_one("#record-head", Static)
    body_view = getters.query_one("#record-body", Static)

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.trained_text = ""
        """The text of the trained tokens within the cutoff, as shown (for checks and tests)."""
        self.encoded: dict[str, Any] | None = None
        """The last encoded event shown, or None while only messages are shown."""
        self.body = Text()
        """The styled text of the last tokens shown."""

    def compose(self):
        """Header line and body."""
        yield Static("No record selected.", id="record-head", markup=False)
        yield Static("", id="record-body")

    def show_note(self, note: str) -> None:
        """Show ``note`` alone (no record, or why the record cannot be shown)."""
        self.encoded, self.trained_text = None, ""
        self.head_line.update(note)
        self.body_view.update("")

    def show_messages(self, title: str, messages: list[dict[str, str]] | None, problems: list[str],
                      raw: str = "") -> None:
        """Show a record's turns (or its raw JSON) and problems before tokens arrive."""
        self.encoded, self.trained_text = None, ""
        self.head_line.update(title)
        body = Text()
        for problem in problems:
            body.append(f"✗ {problem}\n", style="bold #e06c75")
        if messages is None:
            body.append(raw)
        for message in messages or []:
            body.append(f"{message['role']}\n", style="bold")
            body.append(message["content"] + "\n\n", style=TRAINED if message["role"] == "assistant" else "")
        self.body_view.update(body)

    def show_example(self, title: str, example: Any, problems: list[str], raw: str = "") -> None:
        """Show a pair's prompt and both answers side by side, a kto answer with its label, a prompt
        with its reference answer, or a document, before tokens arrive (``example`` None: the raw JSON and the
        problems)."""
        self.encoded, self.trained_text = None, ""
        self.head_line.update(title)
        head = Text()
        for problem in problems:
            head.append(f"✗ {problem}\n", style="bold #e06c75")
        if example is None:
            self.body_view.update(Text.assemble(head, raw))
            return
        if example.kind == "text":
            self.body_view.update(Text.assemble(head, (example.text or "", TRAINED)))
            return
        for message in example.prompt:
            head.append(f"{message['role']}\n", style="bold")
            head.append(message["content"] + "\n\n")
        if example.kind == "prompts":  # what the model is asked; the reference is compared with, never trained
            reference = example.chosen if example.chosen is not None else "(none: rewards without a reference score it)"
            self.body_view.update(Text.assemble(head, ("reference answer\n", "bold"), (reference, "italic")))
            return
        if example.kind == "kto":
            label = ("desirable ✓", "bold green") if example.label else ("undesirable ✗", "bold red")
            self.body_view.update(Text.assemble(head, ("assistant ", "bold"), label, "\n",
                                                (example.chosen or "", TRAINED)))
            return
        self.body_view.update(Group(head, _side_by_side(Text(example.chosen or "", TRAINED),
                                                        Text(example.rejected or "", TRAINED))))

    def show_tokens(self, title: str, encoded: dict[str, Any]) -> None:
        """Show the encoded record: template text with trained/masked/cut segments and the counts;
        a preference pair's two sides side by side, each with its own counts."""
        self.encoded = encoded
        cutoff = encoded["cutoff"]
        rejected = encoded.get("rejected")
        counts = f"{encoded['full_length']:,} tokens · {encoded['trained_tokens']:,} trained"
        if rejected:
            counts = (f"chosen {counts} · rejected {rejected['full_length']:,} tokens · "
                      f"{rejected['trained_tokens']:,} trained")
        truncated = encoded["truncated"] or bool(rejected and rejected["truncated"])
        self.head_line.update(f"{title} · {counts} · cutoff {cutoff:,}" + (" · TRUNCATED" if truncated else ""))
        body = _segments_text(encoded["segments"], cutoff)
        self.trained_text = "".join(s["text"] for s in encoded["segments"] if s["trained"] and not s["cut"])
        self.body = body
        if rejected:
            self.body_view.update(Group(Text.assemble(LEGEND, "\n"),
                                        _side_by_side(body, _segments_text(rejected["segments"], cutoff))))
        else:
            self.body_view.update(Text.assemble(LEGEND, "\n\n", body))


def _segments_text(segments: list[dict[str, Any]], cutoff: int) -> Text:
    """Display runs styled as trained, masked or cut, with a mark where the cutoff falls."""
    body, cut_marked = Text(), False
    for segment in segments:
        if segment["cut"] and not cut_marked:
            body.append(f" ✂ cutoff at token {cutoff:,} ", style="reverse #d08770")
            cut_marked = True
        body.append(segment["text"], style=CUT if segment["cut"] else TRAINED if segment["trained"] else MASKED)
    return body


def _side_by_side(chosen: Text, rejected: Text) -> Table:
    """Two columns headed chosen and rejected."""
    table = Table.grid(expand=True, padding=(0, 1))
    table.add_column(ratio=1)
    table.add_column(ratio=1)
    table.add_row(Text("chosen ✓", style="bold green"), Text("rejected ✗", style="bold red"))
    table.add_row(chosen, rejected)
    return table
