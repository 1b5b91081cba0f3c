"""PresetsScreen: the presets on the left (shipped, user, broken), the editor on the right.

Shipped presets are read-only: edit one and save it under a new name. As the form changes,
the trainable parameter count and the memory estimate for the selected model follow.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rich.text import Text
from textual import getters, on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.reactive import reactive
from textual.widgets import Footer, Label, OptionList, Static
from textual.widgets.option_list import Option

from engine.config import DEMO_MODEL, ConfigError
from engine.estimate import memory as estimate_mod
from engine.estimate.trainable import trainable_params
from engine.models.info import read_model_info
from engine.presets import PresetExists, PresetInfo, list_presets, load_preset, resolve, save_user_preset
from engine.units import fmt_bytes
from tuitune.dialogs.save_preset import SavePresetDialog
from tuitune.messages import PresetChosen
from tuitune.screens.base import AppScreen
from tuitune.widgets.preset_form import PresetForm


@dataclass
class Entry:
    """A listed preset and, when it loads, its data."""

    info: PresetInfo
    data: dict[str, Any] | None


class PresetsScreen(AppScreen):
    """Browse presets, edit one in a schema-built form, save it as a user preset or use it for a run."""

    CSS_PATH = "presets.tcss"
    BINDINGS = [
        Binding("ctrl+s", "save_as", "Save as…"),
        Binding("ctrl+n", "use", "Use for new run"),
        Binding("ctrl+r", "revert", "Revert"),
        Binding("ctrl+l", "reload", "Reload files"),
    ]

    model_name: reactive[str] = reactive(DEMO_MODEL)
    """The model whose trainable parameters and memory are shown (alias, folder or hub id)."""

    preset_list = getters.query_one("#preset-list", OptionList)
    preset_note = getters.query_one("#preset-note", Static)
    editor_title = getters.query_one("#editor-title", Static)
    preset_error = getters.query_one("#preset-error", Static)
    form = getters.query_one("#form", PresetForm)
    estimate_line = getters.query_one("#estimate", Static)
    diff_line = getters.query_one("#diff", Static)

    @dataclass
    class Listed(Message):
        """The worker read the presets folder."""

        entries: list[Entry]
        select: str | None

    @dataclass
    class ModelRead(Message):
        """The worker read the selected model's shapes (or failed to)."""

        name: str
        info: Any
        error: str | None

    def __init__(self) -> None:
        super().__init__()
        self.entries: list[Entry] = []
        """Presets in list order."""
        self._model_info: Any = None
        self._model_error: str | None = "reading the model…"

    @property
    def current(self) -> Entry | None:
        """The highlighted preset."""
        index = self.preset_list.highlighted
        return self.entries[index] if index is not None and index < len(self.entries) else None

    def compose(self) -> ComposeResult:
        """The list pane and the editor pane."""
        with Horizontal(id="presets-body"):
            with Vertical(id="preset-list-pane"):
                yield Label("Presets", classes="pane-title")
                yield OptionList(id="preset-list", classes="-focus-first")
                yield Static("", markup=False, id="preset-note")
            with Vertical(id="editor-pane"):
                yield Static("", markup=False, id="editor-title")
                yield Static("", markup=False, id="preset-error")
                yield PresetForm(id="form")
                yield Static("", markup=False, id="estimate")
                yield Static("", markup=False, id="diff")
        yield Footer()

    def on_mount(self) -> None:
        """Read the presets and the model in the background."""
        self.preset_list.focus()
        self.reload()
        editors = getattr(self.app, "editors", None)
        if editors is not None:
            editors.append(self)

    def on_unmount(self) -> None:
        editors = getattr(self.app, "editors", None)
        if editors is not None and self in editors:
            editors.remove(self)

    def unsaved_edits(self) -> str | None:
        """The edits to the highlighted preset that are not saved, or None."""
        entry = self.current
        if entry is None or entry.data is None or not self.form.diff:
            return None
        return f"the unsaved edits to preset {entry.info.name} ({len(self.form.diff)} field(s))"

    def on_screen_resume(self) -> None:
        """Follow the model chosen for the new run (the app's draft), if the app keeps one."""
        draft = getattr(self.app, "draft", None)
        if getattr(draft, "model", None):
            self.model_name = draft.model

    def reload(self, select: str | None = None) -> None:
        """Re-read the presets (selecting ``select`` afterwards)."""
        self._list_presets(select)

    @work(thread=True, exclusive=True, group="presets-list", exit_on_error=False)
    def _list_presets(self, select: str | None) -> None:
        entries = [Entry(info, None if info.error else _load_or_none(info)) for info in list_presets()]
        self.post_message(self.Listed(entries, select))

    def watch_model_name(self, name: str) -> None:
        """Re-read the model when another one is selected."""
        self._read_model(name)

    @work(thread=True, exclusive=True, group="presets-model", exit_on_error=False)
    def _read_model(self, name: str) -> None:
        try:
            self.post_message(self.ModelRead(name, read_model_info(name), None))
        except (ValueError, OSError) as exc:
            self.post_message(self.ModelRead(name, None, str(exc)))

    @on(Listed)
    def _show_list(self, message: Listed) -> None:
        self.entries = message.entries
        options = self.preset_list
        options.clear_options()
        options.add_options([Option(_prompt(entry.info)) for entry in self.entries])
        names = [(e.info.name, e.info.source) for e in self.entries]
        wanted = (message.select, "user") if (message.select, "user") in names else (message.select, "shipped")
        options.highlighted = names.index(wanted) if wanted in names else 0

    @on(OptionList.OptionHighlighted, "#preset-list")
    def _show_preset(self) -> None:
        entry = self.current
        if entry is None:
            return
        info = entry.info
        self.set_class(info.error is not None, "-broken")
        self.preset_note.update(info.description or "")
        source = "shipped · read-only: save as a new name" if info.source == "shipped" else "your preset"
        self.editor_title.update(Text.assemble((info.name, "bold"), f"  ({source})"))
        fix = "\n\nFix the file, then press ctrl+l to read it again." if info.error else ""
        self.preset_error.update(Text((info.error or "") + fix))
        if entry.data is not None:
            self.form.load(entry.data)

    @on(ModelRead)
    def _model_read(self, message: ModelRead) -> None:
        if message.name != self.model_name:
            return
        self._model_info, self._model_error = message.info, message.error
        self._show_estimate()

    @on(PresetForm.Changed, "#form")
    def _form_changed(self, message: PresetForm.Changed) -> None:
        self._show_estimate()
        diff = self.diff_line
        if message.errors:
            diff.update(Text(f"Cannot save: {len(message.errors)} problem(s), see the marked fields.", "red"))
        elif message.diff:
            changes = ", ".join(f"{field} {_short(old)} → {_short(new)}" for field, old, new in message.diff)
            diff.update(Text(f"Changed from the base: {changes}"))
        else:
            diff.update(Text("No changes from the base preset.", "dim"))

    def _show_estimate(self) -> None:
        self.estimate_line.update(estimate_text(self.model_name, self._model_info, self._model_error, self.form))

    def action_save_as(self) -> None:
        """Ask for a name and save the form as a user preset (refused while a field is invalid)."""
        form, entry = self.form, self.current
        if entry is None or entry.data is None:
            self.notify("Nothing to save: this preset does not load.", severity="error")
            return
        if form.errors:
            problems = "; ".join(f"{field}: {message}" for field, message in form.errors.items())
            self.notify(f"Not saved: {problems}", title="Invalid values", severity="error")
            return
        shipped = {e.info.name for e in self.entries if e.info.source == "shipped"}
        user = {e.info.name for e in self.entries if e.info.source == "user"}
        suggested = entry.info.name if entry.info.source == "user" else f"my-{entry.info.name}"
        values = form.values
        self.app.push_screen(SavePresetDialog(suggested, shipped, user),
                             lambda name: self._save(name, values, name in user) if name else None)

    @work(thread=True, exclusive=True, group="presets-save", exit_on_error=False)
    def _save(self, name: str, values: dict[str, Any], overwrite: bool) -> None:
        try:
            path = save_user_preset(name, values, overwrite=overwrite)
        except (ConfigError, PresetExists, OSError) as exc:
            self.app.call_from_thread(self.notify, str(exc), title="Not saved", severity="error")
            return
        self.app.call_from_thread(self.notify, f"Saved {path.name}", title="Preset saved")
        self.app.call_from_thread(self.reload, name)

    def action_use(self) -> None:
        """Post PresetChosen for the highlighted preset, if it loads and has no unsaved edits."""
        entry, form = self.current, self.form
        if entry is None or entry.info.error:
            self.notify("This preset is broken; fix the file or pick another.", severity="error")
        elif form.diff:
            self.notify("Unsaved changes: save them as a preset first (ctrl+s).", severity="warning")
        else:
            self.post_message(PresetChosen(entry.info.name))
            self.notify(f"Preset {entry.info.name} chosen for the new run.")

    def action_reload(self) -> None:
        """Read the preset files again (after fixing one in an editor), keeping the highlight."""
        self.reload(self.current.info.name if self.current else None)

    def action_revert(self) -> None:
        """Throw away the edits: back to the highlighted preset as saved."""
        entry = self.current
        if entry is not None and entry.data is not None:
            self.form.load(entry.data)


def estimate_text(model: str, info: Any, error: str | None, form: PresetForm) -> Text:
    """The trainable parameter count and memory estimate line for ``model``, or why it is unavailable."""
    if info is None:
        return Text(f"{model}: trainable parameters unavailable ({error})", "dim")
    try:
        config = resolve(form.values)
        trainable = trainable_params(info, config.adapter)
        total = info.params_total or 0
        share = f" ({100 * trainable / total:.2f}%)" if total else ""
        line = f"{model}: {trainable:,} trainable of {total:,} parameters{share}"
        gpu, cpu = (estimate_mod.estimate(info, config, device) for device in ("cuda", "cpu"))
        return Text(f"{line} · memory ≈ {fmt_bytes(gpu.total)} on a GPU, {fmt_bytes(cpu.total)} on CPU")
    except (ValueError, KeyError) as exc:
        return Text(f"{model}: estimate unavailable ({exc})", "dim")


def _load_or_none(info: PresetInfo) -> dict[str, Any] | None:
    """The preset's data; None if it broke since it was listed."""
    try:
        return load_preset(info.path)
    except ConfigError:
        return None


def _prompt(info: PresetInfo) -> Text:
    """How a preset shows in the list: name, then its source or that it is broken."""
    if info.error:
        return Text.assemble(("✗ ", "red"), (info.name, "red"), (" broken", "dim red"))
    return Text.assemble(info.name, (" user" if info.source == "user" else "", "dim"))


def _short(value: Any) -> str:
    """A value for the one-line diff."""
    return "none" if value is None else str(value)
