"""RunSettingsDialog: the preset editor's fields for one new run, with the diff, and save-as-preset.

The new-run flow's review step opens it: rank, learning rate or any other knob changes here for
this run without leaving for the Presets screen. It answers the edited preset values (or None);
ctrl+s saves them as a user preset too, through the same dialog and engine call as the Presets screen.
"""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual import getters, on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Footer, Static

from tuitune.dialogs.save_preset import SavePresetDialog
from tuitune.widgets.preset_form import PresetForm


def describe_diff(diff: list[tuple[str, Any, Any]]) -> str:
    """``adapter.r 16 → 32, train.learning_rate 0.0002 → 0.0001`` (or that nothing changed)."""
    if not diff:
        return "No changes from the preset."
    return "Changed: " + ", ".join(f"{field} {'none' if old is None else old} → {'none' if new is None else new}"
                                   for field, old, new in diff)


class RunSettingsDialog(ModalScreen[dict[str, Any] | None]):
    """Edit ``values`` (default: ``base``) against ``base``; answers the values, or None when cancelled.

    Args:
        base: The preset values the run starts from (the diff is against them).
        values: The values edited so far for this run, if any.
        title: What the base is ("preset default", "config of run X").
        shipped: Names of shipped presets (read-only, for save-as).
        user: Names of the user's presets (overwritten only after asking).
    """

    DEFAULT_CSS = """
    RunSettingsDialog { align: center middle; }
    RunSettingsDialog > Vertical {
        width: 100; max-width: 100%; height: 90%; border: thick $primary; background: $surface;
    }
    RunSettingsDialog #settings-title { text-style: bold; padding: 0 1; }
    RunSettingsDialog #settings-diff { height: auto; max-height: 3; padding: 0 1; color: $warning; }
    """

    BINDINGS = [
        Binding("ctrl+t", "apply", "Use for this run", priority=True),
        Binding("ctrl+s", "save_as", "Save as preset…", priority=True),
        Binding("escape", "cancel", "Cancel"),
    ]

    form = getters.query_one("#settings-form", PresetForm)
    diff_line = getters.query_one("#settings-diff", Static)

    def __init__(self, base: dict[str, Any], values: dict[str, Any] | None, title: str,
                 shipped: set[str], user: set[str]) -> None:
        super().__init__()
        self.base, self.values, self.title_text = base, values, title
        self.shipped, self.user = shipped, user

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static(f"Settings of the new run, from {self.title_text}", markup=False, id="settings-title")
            yield PresetForm(self.base, id="settings-form")
            yield Static("", markup=False, id="settings-diff")
            yield Footer(compact=True)

    def on_mount(self) -> None:
        if self.values is not None:
            self.form.load(self.base, self.values)
        self._show_diff()

    @on(PresetForm.Changed, "#settings-form")
    def _show_diff(self) -> None:
        form = self.form
        if form.errors:
            problems = "; ".join(f"{field}: {message}" for field, message in form.errors.items())
            self.diff_line.update(Text(f"Cannot use: {problems}", "red"))
        else:
            self.diff_line.update(describe_diff(form.diff))

    def action_apply(self) -> None:
        """Answer the edited values (refused while a field is invalid)."""
        if self.form.errors:
            self.notify("fix the marked fields first", severity="error")
            return
        self.dismiss(self.form.values)

    def action_save_as(self) -> None:
        """Save the edited values as a user preset, then keep editing."""
        if self.form.errors:
            self.notify("fix the marked fields first", severity="error")
            return
        values = self.form.values
        self.app.push_screen(SavePresetDialog("my-preset", self.shipped, self.user),
                             lambda name: self._save(name, values) if name else None)

    @work(thread=True, exclusive=True, group="settings-save", exit_on_error=False, description="saving the preset")
    def _save(self, name: str, values: dict[str, Any]) -> None:
        from engine.config import ConfigError
        from engine.presets import PresetExists, save_user_preset

        try:
            path = save_user_preset(name, values, overwrite=name in self.user)
        except (ConfigError, PresetExists, OSError) as exc:
            self.app.call_from_thread(self.notify, str(exc), title="Not saved", severity="error")
            return
        self.user.add(name)
        self.app.call_from_thread(self.notify, f"Saved {path}", title="Preset saved")

    def action_cancel(self) -> None:
        """Close, keeping the run's settings as they were."""
        self.dismiss(None)
