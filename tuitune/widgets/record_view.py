"""RecordView: one record as the model will see it — chat template applied, trained tokens marked.

The screen pushes data in; the widget never reads files or starts processes. First the
record's messages are shown as plain turns (:meth:`show_messages`); when the engine has
encoded it (``python -m engine data --serve``, the same ``encode_conversation`` that makes the
training labels) :meth:`show_tokens` replaces them with the rendered template, trained tokens
highlighted, masked ones dim, and everything past the cutoff struck through.
"""

from __future__ import annotations

from typing import Any

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

    def show_tokens(self, title: str, encoded: dict[str, Any]) -> None:
        """Show the encoded record: template text with trained/masked/cut segments and the counts."""
        self.encoded = encoded
        cutoff = encoded["cutoff"]
        head = (f"{title} · {encoded['full_length']:,} tokens · {encoded['trained_tokens']:,} trained · "
                f"cutoff {cutoff:,}" + (" · TRUNCATED" if encoded["truncated"] else ""))
        self.head_line.update(head)
        body = Text.assemble(LEGEND, "\n\n")
        cut_marked = False
        for segment in encoded["segments"]:
            if segment["cut"] and not cut_marked:
                body.append(f" ✂ cutoff at token {cutoff:,} ", style="reverse #d08770")
                cut_marked = True
            style = CUT if segment["cut"] else TRAINED if segment["trained"] else MASKED
            body.append(segment["text"], style=style)
        self.trained_text = "".join(s["text"] for s in encoded["segments"] if s["trained"] and not s["cut"])
        self.body = body
        self.body_view.update(body)
