"""OpenConfigDialog: the path of a run config to start a new run from (tuitune's or LLaMA-Factory's)."""

from __future__ import annotations

from pathlib import Path

from textual import getters, on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Label, Static

from tuitune.path_suggester import PathSuggester


class OpenConfigDialog(ModalScreen[str | None]):
    """Answers the typed path of an existing file, or None when cancelled."""

    DEFAULT_CSS = """
    OpenConfigDialog { align: center middle; }
    OpenConfigDialog > Vertical { width: 76; max-width: 100%; height: auto; padding: 0 1; border: thick $primary;
                                  background: $surface; }
    OpenConfigDialog #config-problem { color: $error; }
    """

    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    path_input = getters.query_one("#config-path", Input)
    problem_line = getters.query_one("#config-problem", Static)

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label("Start from a run config: tuitune's, or a LLaMA-Factory training YAML (enter opens it)")
            yield Input(placeholder="path/to/config.yaml", id="config-path",
                        suggester=PathSuggester((".yaml", ".yml")))
            yield Static("", markup=False, id="config-problem")

    @on(Input.Submitted, "#config-path")
    def _open(self, event: Input.Submitted) -> None:
        path = Path(event.value.strip()).expanduser()
        if not path.is_file():
            self.problem_line.update(f"{path.absolute()}: no such file")
            return
        self.dismiss(str(path.absolute()))

    def action_cancel(self) -> None:
        self.dismiss(None)
