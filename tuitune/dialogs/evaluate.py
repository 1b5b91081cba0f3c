"""EvaluateDialog: the held-out data file to evaluate a run's adapter or one of its checkpoints on."""

from __future__ import annotations

from pathlib import Path

from textual import getters, on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Label, Static

from tuitune.path_suggester import DATA_SUFFIXES, PathSuggester


class EvaluateDialog(ModalScreen[str | None]):
    """Answers the typed path of an existing data file, or None when cancelled.

    Args:
        what: What is evaluated, for the title (``RUN at checkpoint-40``).
    """

    DEFAULT_CSS = """
    EvaluateDialog { align: center middle; }
    EvaluateDialog > Vertical { width: 76; max-width: 100%; height: auto; padding: 0 1; border: thick $primary;
                                background: $surface; }
    EvaluateDialog #data-problem { color: $error; }
    """

    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    path_input = getters.query_one("#data-path", Input)
    problem_line = getters.query_one("#data-problem", Static)

    def __init__(self, what: str) -> None:
        super().__init__()
        self.what = what

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(f"Evaluate {self.what} on held-out data (enter starts it; esc cancels)", markup=False)
            yield Input(placeholder="path/to/held_out.jsonl", id="data-path", suggester=PathSuggester(DATA_SUFFIXES))
            yield Static("", markup=False, id="data-problem")

    @on(Input.Submitted, "#data-path")
    def _evaluate(self, event: Input.Submitted) -> None:
        path = Path(event.value.strip()).expanduser()
        if not event.value.strip() or not path.is_file():
            self.problem_line.update(f"{path.absolute()}: no such file")
            return
        self.dismiss(str(path.absolute()))

    def action_cancel(self) -> None:
        """Close without evaluating."""
        self.dismiss(None)
