"""SavePresetDialog: asks for a preset name, refusing shipped or malformed ones, and asks before overwriting."""

from __future__ import annotations

from textual import getters, on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Static

from engine.presets import NAME_PATTERN


class SavePresetDialog(ModalScreen[str | None]):
    """Answers the chosen name through ``dismiss(name)``, or None when cancelled.

    A name of an existing user preset needs a second confirmation (the Save button turns into
    Overwrite), so nothing is replaced without asking. The dialog touches no files: the caller
    passes the names that exist.

    Args:
        suggested: Name the box starts with.
        shipped: Names of shipped presets, which are read-only.
        user: Names of the user's presets, which may be overwritten after asking.
    """

    DEFAULT_CSS = """
    SavePresetDialog { align: center middle; }
    SavePresetDialog > Vertical {
        width: 64; max-width: 95%; height: auto; padding: 1 2; border: thick $primary; background: $surface;
    }
    SavePresetDialog #name-problem { color: $error; }
    SavePresetDialog #name-warning { color: $warning; }
    SavePresetDialog Horizontal { height: auto; margin-top: 1; align-horizontal: right; }
    SavePresetDialog Button { margin-left: 2; }
    """

    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    name_input = getters.query_one("#name", Input)
    problem_line = getters.query_one("#name-problem", Static)
    warning_line = getters.query_one("#name-warning", Static)
    save_button = getters.query_one("#save", Button)

    def __init__(self, suggested: str, shipped: set[str], user: set[str]) -> None:
        super().__init__()
        self.suggested = suggested
        self.shipped = shipped
        self.user = user
        self._confirming = False

    def compose(self) -> ComposeResult:
        """Title, name box, problem and warning lines, buttons."""
        with Vertical():
            yield Label("Save preset as (in your presets folder)")
            yield Input(self.suggested, placeholder="my-preset", id="name")
            yield Static("", markup=False, id="name-problem")
            yield Static("", markup=False, id="name-warning")
            with Horizontal():
                yield Button("Save", variant="primary", id="save")
                yield Button("Cancel [esc]", id="cancel")

    def on_mount(self) -> None:
        """Check the suggested name at once."""
        self._check(self.suggested)

    def problem(self, name: str) -> str | None:
        """Why ``name`` cannot be saved, or None."""
        if not NAME_PATTERN.match(name):
            return "Use 1 to 64 letters, digits, '.', '_' or '-', starting with a letter or digit."
        if name in self.shipped:
            return f"'{name}' is a shipped preset and read-only: choose another name."
        return None

    def _check(self, name: str) -> None:
        """Show the name's problem, or a warning if it would replace a user preset."""
        self._confirming = False
        self.save_button.label = "Save"
        self.problem_line.update(self.problem(name) or "")
        exists = name in self.user and not self.problem(name)
        self.warning_line.update(f"A user preset '{name}' exists." if exists else "")

    @on(Input.Changed, "#name")
    def _name_changed(self, event: Input.Changed) -> None:
        self._check(event.value.strip())

    @on(Input.Submitted, "#name")
    @on(Button.Pressed, "#save")
    def _save(self) -> None:
        """Dismiss with the name, after a second press when it would overwrite."""
        name = self.name_input.value.strip()
        if self.problem(name):
            self.name_input.focus()
            return
        if name in self.user and not self._confirming:
            self._confirming = True
            self.warning_line.update(
                f"Overwrite your preset '{name}'? Press Overwrite (or Enter) again to replace it, Esc to cancel."
            )
            self.save_button.label = "Overwrite"
            return
        self.dismiss(name)

    @on(Button.Pressed, "#cancel")
    def action_cancel(self) -> None:
        """Close without saving."""
        self.dismiss(None)
