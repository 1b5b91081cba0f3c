"""PredictionView: one evaluated record — its prompt and reference, then the base and the tuned answer side by side.

The screen pushes a record of ``predictions.jsonl`` in (:meth:`show`); the widget never reads
files. The two answers sit side by side, or one above the other with the ``-stacked`` class
(the screen sets it on narrow terminals). Every text is shown as plain text, never as markup:
a model's answer may hold square brackets.
"""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual import getters
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widgets import Static

SIDES = ("base", "tuned")


class PredictionView(Vertical):
    """The prompt, the reference and the two answers of one record."""

    DEFAULT_CSS = """
    PredictionView { height: 1fr; }
    PredictionView > #pv-head { height: auto; max-height: 40%; padding: 0 1; }
    PredictionView > #pv-sides { height: 1fr; }
    PredictionView.-stacked > #pv-sides { layout: vertical; }
    PredictionView .pv-side { width: 1fr; height: 1fr; padding: 0 1; border-top: solid $panel-lighten-2; }
    PredictionView #pv-base { border-right: solid $panel-lighten-2; }
    PredictionView.-stacked #pv-base { border-right: none; }
    """

    head = getters.query_one("#pv-head", Static)

    def compose(self) -> ComposeResult:
        """Prompt and reference above, then one scrollable column per side."""
        yield Static("No prediction to show.", id="pv-head", markup=False)
        with Horizontal(id="pv-sides"):
            for side in SIDES:
                with VerticalScroll(id=f"pv-{side}", classes="pv-side"):
                    yield Static("", id=f"pv-{side}-text", markup=False)

    def show(self, record: dict[str, Any] | None, note: str = "") -> None:
        """Show ``record`` (a line of predictions.jsonl), or ``note`` alone when there is none."""
        if record is None:
            self.head.update(note or "No prediction to show.")
            for side in SIDES:
                self.query_one(f"#pv-{side}-text", Static).update("")
            return
        self.head.update(prompt_text(record))
        for side in SIDES:
            self.query_one(f"#pv-{side}-text", Static).update(answer_text(record, side))
            self.query_one(f"#pv-{side}", VerticalScroll).scroll_home(animate=False)

    def answer(self, side: str) -> str:
        """The text shown for ``side`` now (for tests)."""
        return str(self.query_one(f"#pv-{side}-text", Static).render())


def prompt_text(record: dict[str, Any]) -> Text:
    """The turns before the answer, then the reference answer."""
    out = Text()
    prompt = record.get("prompt")
    for turn in prompt if isinstance(prompt, list) else []:
        if isinstance(turn, dict):
            role = str(turn.get("role", "?"))
            out.append(f"{role}: ", style="bold")
            out.append(f"{turn.get('content', '')}\n", style="dim" if role == "system" else "")
    out.append("reference: ", style="bold cyan")
    out.append(str(record.get("reference", "")))
    return out


def answer_text(record: dict[str, Any], side: str) -> Text:
    """One side's heading (loss, BLEU-4, ROUGE-L, tokens) and its answer."""
    scores = record.get("scores") if isinstance(record.get("scores"), dict) else {}
    mine = scores.get(side) if isinstance(scores.get(side), dict) else {}
    facts = [f"loss {_num(record.get(f'{side}_loss'), 3)}", f"BLEU-4 {_num(mine.get('bleu_4'), 1)}",
             f"ROUGE-L {_num(mine.get('rouge_l'), 1)}", f"{record.get(f'{side}_tokens', '?')} tok"]
    out = Text.assemble((side.upper(), "bold green" if side == "tuned" else "bold"), "  ", ("  ".join(facts), "dim"),
                        "\n")
    out.append(str(record.get(side, "")))
    return out


def _num(value: Any, digits: int) -> str:
    return f"{value:.{digits}f}" if isinstance(value, (int, float)) and not isinstance(value, bool) else "-"
