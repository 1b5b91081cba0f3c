"""RenameRunDialog: asks for a run's new name, refusing names that cannot be a folder or are taken."""

from __future__ import annotations

from collections.abc import Callable

from textual import getters, on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Static


class RenameRunDialog(ModalScreen[str | None]):
    """Answers the new name through ``dismiss(name)``, or None when cancelled.

    Args:
        current: The run's name now (the box starts with it).
        problem: Why a name cannot be used (malformed, taken), or None; the caller knows the folder.
    """

    DEFAULT_CSS = """
    RenameRunDialog { align: center middle; }
    RenameRunDialog > Vertical {
        width: 72; max-width: 95%; height: auto; padding: 1 2; border: thick $primary; background: $surface;
    }
    RenameRunDialog #name-problem { color: $error; }
    RenameRunDialog Horizontal { height: auto; margin-top: 1; align-horizontal: right; }
    RenameRunDialog Button { margin-left: 2; }
    """

    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    name_input = getters.query_one("#name", Input)
    problem_line = getters.query_one("#name-problem", Static)

    def __init__(self, current: str, problem: Callable[[str], str | None]) -> None:
        super().__init__()
        self.current = current
        self.problem = problem

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static(f"Rename run {self.current} (its folder is renamed)", markup=False, id="rename-head")
            yield Input(self.current, id="name")
            yield Static("", markup=False, id="name-problem")
            with Horizontal():
                yield Button("Rename", variant="primary", id="rename")
                yield Button("Cancel [esc]", id="cancel")

    @on(Input.Changed, "#name")
    def _check(self, event: Input.Changed) -> None:
        name = event.value.strip()
        self.problem_line.update("" if name == self.current else self.problem(name) or "")

    @on(Input.Submitted, "#name")
    @on(Button.Pressed, "#rename")
    def _rename(self) -> None:
        name = self.name_input.value.strip()
        if name == self.current:
            self.dismiss(None)
        elif (why := self.problem(name)) is not None:
            self.problem_line.update(why)
            self.name_input.focus()
        else:
            self.dismiss(name)

    @on(Button.Pressed, "#cancel")
    def action_cancel(self) -> None:
        self.dismiss(None)
