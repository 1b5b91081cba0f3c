"""ModelsScreen: pick a base model and see what it is and whether a run with it will fit.

Sources on the left: the built-in demo model, recently used models, the Hugging Face cache,
and a box for a local folder (with completion) or a hub id. On the right: the model's facts
(read from config.json and safetensors headers, never by loading it) and the memory estimate
for the chosen preset against the GPUs found. Nothing is downloaded here: a hub id is handed
to the engine, which downloads it when the run starts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from textual import getters, on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.message import Message
from textual.reactive import reactive
from textual.widgets import Footer, Input, Label, OptionList, Select
from textual.widgets.option_list import Option

from engine.compose import compose_config
from engine.config import DEMO_MODEL, ConfigError, RunConfig
from engine.estimate.fit import verdict
from engine.machine import gpus as gpus_mod
from engine.models import hf_cache
from engine.models.info import ModelError, ModelInfo, read_model_info
from engine.presets import list_presets, load_preset
from tuitune.messages import ModelChosen
from tuitune.path_suggester import PathSuggester
from tuitune.recent_models import add_recent, load_recent
from tuitune.screens.base import AppScreen
from tuitune.widgets.model_details import ModelDetails
from tuitune.widgets.model_memory import ModelMemory, devices_line

DEFAULT_PRESET = "default"
CPU_PRESET = "cpu-first-try"
"""Shown first when there is no GPU, as the new-run flow does."""


class ModelsScreen(AppScreen):
    """Choose a base model from the demo, recent models, the HF cache, a folder or a hub id."""

    CSS_PATH = "models.tcss"
    BINDINGS = [
        Binding("ctrl+n", "use", "Use for new run"),
        Binding("ctrl+r", "rescan", "Rescan"),
        Binding("ctrl+l", "focus_path", "Path / hub id"),
    ]

    model_name: reactive[str] = reactive(DEMO_MODEL, init=False)
    """The model shown on the right: alias, folder or hub id."""
    preset: reactive[str] = reactive(DEFAULT_PRESET, init=False)
    """The preset whose run the estimate is for."""

    sources = getters.query_one("#sources", OptionList)
    path_input = getters.query_one("#path", Input)
    preset_select = getters.query_one("#preset", Select)
    details = getters.query_one("#details", ModelDetails)
    memory = getters.query_one("#memory", ModelMemory)

    @dataclass
    class SourcesRead(Message):
        """The worker listed recent models, the HF cache, presets and GPUs."""

        recent: list[str]
        cached: list[hf_cache.CachedModel]
        presets: list[str]
        gpus: list[gpus_mod.Gpu]
        gpu_note: str

    @dataclass
    class ModelRead(Message):
        """The worker read a model (``info``) or found it unusable (``error``)."""

        name: str
        info: ModelInfo | None
        error: str | None

    def __init__(self) -> None:
        super().__init__()
        self.info: ModelInfo | None = None
        """Facts about ``model_name`` once read."""
        self.gpus: list[gpus_mod.Gpu] = []
        self.gpu_note = ""
        self._preset_values: dict[str, dict[str, Any] | str] = {}
        self._preset_picked = False
        self._last_sources: tuple = ([], [DEFAULT_PRESET], [], "")

    def compose(self) -> ComposeResult:
        """Sources on the left; details and estimate on the right."""
        with Horizontal(id="models-body"):
            with Vertical(id="sources-pane"):
                yield Label("Models", classes="pane-title")
                yield OptionList(id="sources", classes="-focus-first")
                yield Input(placeholder="folder or ORG/NAME", suggester=PathSuggester(paths_only=True), id="path")
            with VerticalScroll(id="info-pane"):
                yield ModelDetails(id="details")
                with Horizontal(id="preset-row"):
                    yield Label("Estimate for preset", id="preset-label")
                    yield Select([(DEFAULT_PRESET, DEFAULT_PRESET)], value=DEFAULT_PRESET, allow_blank=False,
                                 id="preset")
                yield ModelMemory(id="memory")
        yield Footer()

    def on_mount(self) -> None:
        """Read sources and the default model in the background."""
        self.sources.focus()
        self.action_rescan()
        self._read_model(self.model_name)

    def action_rescan(self) -> None:
        """Re-read recent models, the HF cache, presets and GPUs."""
        self._scan()

    def action_focus_path(self) -> None:
        """Put the cursor in the path / hub id box."""
        self.path_input.focus()

    def action_use(self) -> None:
        """Hand the shown model to the new-run flow (ModelChosen) and remember it."""
        if self.info is None:
            self.notify("Choose a usable model first.", severity="warning")
            return
        self.post_message(ModelChosen(self.model_name))
        self._remember(self.model_name)
        if self.info.needs_remote_code:
            self.notify("This model runs its own code: turn on model.trust_remote_code for the run, "
                        "or the engine will refuse it.", severity="warning", timeout=8)
        else:
            self.notify(f"{self.model_name} will be used for the next run.")

    @work(thread=True, exclusive=True, group="models-scan", exit_on_error=False, description="listing models")
    def _scan(self) -> None:
        presets = [p.name for p in list_presets() if p.error is None]
        found, note = gpus_mod.list_gpus()
        self.post_message(self.SourcesRead(load_recent(), hf_cache.scan(), presets, found, note))

    @work(thread=True, exclusive=True, group="models-read", exit_on_error=False, description="reading the model")
    def _read_model(self, name: str) -> None:
        try:
            self.post_message(self.ModelRead(name, read_model_info(name), None))
        except (ModelError, OSError) as exc:
            self.post_message(self.ModelRead(name, None, str(exc)))

    @work(thread=True, group="models-recent", exit_on_error=False, description="remembering the model")
    def _remember(self, name: str) -> None:
        add_recent(name)
        self.post_message(self.SourcesRead(load_recent(), *self._last_sources))

    @on(SourcesRead)
    def _show_sources(self, message: SourcesRead) -> None:
        self._last_sources = (message.cached, message.presets, message.gpus, message.gpu_note)
        self.gpus, self.gpu_note = message.gpus, message.gpu_note
        options: list[Option | None] = [Option("Built-in", disabled=True), Option(f"  {DEMO_MODEL}", id=DEMO_MODEL)]
        recent = [name for name in message.recent if name != DEMO_MODEL]
        if recent:
            options += [None, Option("Recent", disabled=True)]
            options += [Option(f"  {name}", id=f"recent:{name}") for name in recent]
        options += [None, Option("Hugging Face cache", disabled=True)]
        options += [Option(f"  {m.repo_id}", id=f"cache:{m.repo_id}") for m in message.cached] or [
            Option("  (none found)", disabled=True)]
        sources = self.sources
        highlighted = sources.highlighted
        sources.set_options(options)
        sources.highlighted = highlighted if highlighted is not None else 1
        select = self.preset_select
        select.set_options([(name, name) for name in message.presets])
        if not self._preset_picked and not message.gpus and CPU_PRESET in message.presets:
            self.preset = CPU_PRESET
        if self.preset in message.presets:
            select.value = self.preset
        self._update_memory()

    @on(OptionList.OptionHighlighted, "#sources")
    def _pick_source(self, event: OptionList.OptionHighlighted) -> None:
        option_id = event.option.id
        if option_id:
            self.model_name = option_id.split(":", 1)[1] if ":" in option_id else option_id

    @on(Input.Submitted, "#path")
    def _pick_typed(self, event: Input.Submitted) -> None:
        if event.value.strip():
            self.model_name = event.value.strip()

    @on(Select.Changed, "#preset")
    def _pick_preset(self, event: Select.Changed) -> None:
        if isinstance(event.value, str) and event.value != self.preset:
            self._preset_picked = True
            self.preset = event.value

    def watch_model_name(self, name: str) -> None:
        """Read the newly chosen model."""
        self._read_model(name)

    def watch_preset(self) -> None:
        """Re-estimate for the newly chosen preset."""
        self._update_memory()

    @on(ModelRead)
    def _show_model(self, message: ModelRead) -> None:
        if message.name != self.model_name:
            return
        self.info = message.info
        self.details.show(message.info, message.error)
        self._update_memory()

    def _update_memory(self) -> None:
        config = self._config()
        if isinstance(config, str):
            self.memory.show(None, note=config)
        elif self.info is None:
            self.memory.show(None, note="No estimate: choose a usable model.")
        else:
            self.memory.show(verdict(self.info, config, self.gpus), devices_line(self.gpus, self.gpu_note))

    def _config(self) -> RunConfig | str:
        """The run config of the chosen preset with the shown model, or why there is none."""
        if self.preset not in self._preset_values:
            self._preset_values[self.preset] = load_preset_values(self.preset)
        values = self._preset_values[self.preset]
        if isinstance(values, str):
            return values
        return preset_config(self.preset, values, self.model_name)


def load_preset_values(name: str) -> dict[str, Any] | str:
    """The preset's values as written, or the error text when it cannot be read."""
    try:
        return load_preset(name)
    except (ConfigError, ValueError) as exc:
        return f"preset {name}: {exc}"


def preset_config(name: str, values: dict[str, Any], model: str) -> RunConfig | str:
    """The preset (``name``, loaded as ``values``) with ``model``, as every command composes a config;
    or the error text when they make no valid config."""
    try:
        return compose_config(preset=values, flags={"model": ("model.name_or_path", model)})
    except (ConfigError, ValueError) as exc:
        return f"preset {name}: {exc}"
