"""ModelsScreen: pick a base model and see what it is and whether a run with it will fit.

Sources on the left: the built-in demo model, recently used models, the Hugging Face cache,
and a box for a local folder (with completion) or a hub id. On the right: the model's facts
(read from config.json and safetensors headers, never by loading it) and the memory estimate
for the chosen preset against the GPUs found. A typed hub id that is not in the cache is read from
the Hub (its file list, config.json and safetensors header ranges: never its weights), so its facts,
estimate and fit verdict show before it is downloaded; ctrl+g pulls it: the same pull job as
``tuitune pull`` (it goes on if the app closes), its progress followed here from the job's events.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from textual import getters, on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.message import Message
from textual.reactive import reactive
from textual.widgets import Footer, Input, Label, OptionList, ProgressBar, Select, Static
from textual.widgets.option_list import Option
from textual.worker import get_current_worker

from engine.compose import compose_config
from engine.config import DEMO_MODEL, ConfigError, RunConfig
from engine.estimate.fit import verdict
from engine.machine import gpus as gpus_mod
from engine.models import hf_cache
from engine.models.hub import read_with_hub
from engine.models.info import ModelError, ModelInfo
from engine.presets import list_presets, load_preset
from engine.protocol import JOB_FAILED, JOB_FINISHED, JOB_STARTED, PROGRESS, TERMINAL_TYPES
from tuitune.messages import ModelChosen
from tuitune.path_suggester import PathSuggester
from tuitune.recent_models import add_recent, load_recent
from tuitune.runs.launch import is_alive, start_pull
from tuitune.runs.state import describe_download
from tuitune.runs.tail import EventTail
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
        Binding("ctrl+g", "pull", "Pull"),
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
    pull_line = getters.query_one("#pull-line", Static)
    pull_bar = getters.query_one("#pull-bar", ProgressBar)

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

    @dataclass
    class PullEvent(Message):
        """The pull of ``name`` wrote ``event`` (its start, progress or end), or could not start (``error``)."""

        name: str
        event: dict[str, Any] | None
        error: str | None = None

    def __init__(self) -> None:
        super().__init__()
        self.pulling: str | None = None
        """The hub id this screen is pulling, until its pull ends."""
        self._select_after_scan: str | None = None
        """The option to highlight once the sources are read again (a model just pulled, now in the cache)."""
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
                yield Static(id="pull-line")
                yield ProgressBar(id="pull-bar", show_eta=False)
                with Horizontal(id="preset-row"):
                    yield Label("Estimate for preset", id="preset-label")
                    yield Select([(DEFAULT_PRESET, DEFAULT_PRESET)], value=DEFAULT_PRESET, allow_blank=False,
                                 id="preset")
                yield ModelMemory(id="memory")
        yield Footer()

    def on_mount(self) -> None:
        """Read sources and the default model in the background."""
        self.pull_line.display = self.pull_bar.display = False
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

    def action_pull(self) -> None:
        """Pull the shown hub id into the Hugging Face cache with the pull job, following its progress here."""
        info = self.info
        if info is None or info.source != "hub":
            self.notify("Only a model on the Hub that is not on this machine can be pulled: type its ORG/NAME.",
                        severity="warning")
            return
        if self.pulling is not None:
            self.notify(f"{self.pulling} is being pulled already.", severity="warning")
            return
        self.pulling = info.name_or_path
        self.pull_line.update(f"Pulling {info.name_or_path}: starting…")
        self.pull_line.display = self.pull_bar.display = True
        self.pull_bar.update(total=None, progress=0)
        self._pull(info.name_or_path)

    @work(thread=True, exclusive=True, group="models-pull", exit_on_error=False, description="pulling the model")
    def _pull(self, name: str) -> None:
        try:
            folder, offset = start_pull(name)
        except (OSError, RuntimeError, ValueError) as exc:
            self.post_message(self.PullEvent(name, None, str(exc)))
            return
        tail, worker, gone_since = EventTail(folder, offset), get_current_worker(), None
        while not worker.is_cancelled:
            for event in tail.read():
                self.post_message(self.PullEvent(name, event))
                if event["type"] in TERMINAL_TYPES:
                    return
            if is_alive(folder):
                gone_since = None
            elif gone_since is None:
                gone_since = time.monotonic()
            elif time.monotonic() - gone_since > 3.0:
                self.post_message(self.PullEvent(name, None, f"the pull is gone without a final event; see "
                                                             f"{folder / 'engine.log'}"))
                return
            time.sleep(0.2)

    @on(PullEvent)
    def _show_pull(self, message: PullEvent) -> None:
        event = message.event or {}
        kind = event.get("type")
        if kind == JOB_STARTED:
            self.pull_bar.update(total=event.get("total_bytes") or None)
        elif kind == PROGRESS:
            self.pull_line.update(f"Pulling {message.name}: {describe_download(event)}")
            self.pull_bar.update(total=event.get("total") or None, progress=event.get("done") or 0)
        elif message.error is not None or kind in TERMINAL_TYPES:
            self._end_pull(message.name, event, message.error)

    def _end_pull(self, name: str, end: dict[str, Any], error: str | None) -> None:
        self.pulling = None
        self.pull_bar.display = False
        if end.get("type") == JOB_FINISHED:
            self.pull_line.update(f"{name} is in the Hugging Face cache: {end.get('destination')}")
            self.notify(f"{name} pulled.")
            self._select_after_scan = f"cache:{name}"  # highlighted in the list, read again: now from the cache
            self.action_rescan()
            if name == self.model_name:
                self._read_model(name)
            return
        why = error or (end.get("cause") if end.get("type") == JOB_FAILED else "stopped; pull again to go on")
        self.pull_line.update(f"Pull of {name} did not finish: {why}")
        self.notify(f"Pull of {name}: {why}", severity="error", timeout=10)

    @work(thread=True, exclusive=True, group="models-scan", exit_on_error=False, description="listing models")
    def _scan(self) -> None:
        presets = [p.name for p in list_presets() if p.error is None]
        found, note = gpus_mod.list_gpus()
        self.post_message(self.SourcesRead(load_recent(), hf_cache.scan(), presets, found, note))

    @work(thread=True, exclusive=True, group="models-read", exit_on_error=False, description="reading the model")
    def _read_model(self, name: str) -> None:
        try:
            self.post_message(self.ModelRead(name, read_with_hub(name), None))  # a hub id not cached: asks the Hub
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
        wanted, self._select_after_scan = self._select_after_scan, None
        # Refilling the list moves its highlight, which must not replace the model shown (a hub id typed while
        # the scan ran): only the user's highlighting, or a model just pulled, picks one.
        with self.prevent(OptionList.OptionHighlighted):
            sources.set_options(options)
            if wanted is not None and any(option is not None and option.id == wanted for option in options):
                highlighted = sources.get_option_index(wanted)
                self.model_name = wanted.split(":", 1)[1]
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
