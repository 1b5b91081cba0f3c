"""NewRunScreen: model → data → preset → review → start, all by keyboard (Enter moves on).

Choices live in the app's ``RunDraft``, so a pick made on the models, data or presets screens
(``ModelChosen``, ``DataChosen``, ``PresetChosen``) lands here. The review step shows the
fit verdict of the resolved run (``engine.estimate.fit``, as on the models screen), which the
screen's ``RunStarter`` works out in a worker: a run that will not fit asks before it starts,
and a model that cannot load is refused. The chat-template doctor's errors show in red, and are asked
about before the run starts. Starting calls ``tuitune.runs.launch.start_run``,
which detaches the engine and returns at once.

The review step lists the GPUs found (name, memory in use, busy processes), all ticked; untick
some and the run trains on the others (``train.gpus``), more than one under torchrun, and the
estimate is per GPU. Without a GPU it says so: the run trains on the CPU.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from rich.table import Table
from rich.text import Text
from textual import getters, on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widgets import ContentSwitcher, Footer, Input, OptionList, SelectionList, Static, TextArea
from textual.widgets.option_list import Option
from textual.widgets.selection_list import Selection

from engine.config import DEMO_MODEL, ConfigError, RunConfig, config_to_yaml
from engine.data.formats import accepted_layouts
from engine.estimate.fit import Verdict
from engine.estimate.prestart import Prestart
from engine.machine.gpus import Gpu
from engine.presets import diff_from, preset_values
from engine.stages import DEMO_DATA, STAGES
from engine.units import fmt_bytes
from tuitune.controllers.run_start import RunStarter
from tuitune.dialogs.run_settings import describe_diff
from tuitune.messages import RunStarted
from tuitune.runs.doctor import TemplateCheck
from tuitune.runs.draft import (
    RunDraft,
    load_preset_values,
    load_presets,
    presets_for_stage,
    resolve_draft,
    stage_preset,
)
from tuitune.runs.launch import default_run_name
from tuitune.screens.base import AppScreen
from tuitune.settings import has_nvidia_gpu
from tuitune.widgets.model_memory import ModelMemory

STEPS = ("model", "stage", "data", "preset", "review")
STEP_TITLES = {"model": "Model", "stage": "Stage", "data": "Data", "preset": "Preset", "review": "Review & start"}


def preset_label(name: str, description: str, error: bool) -> Table:
    """A preset's line in the list: its name, then its description wrapped in a column of its own (at 80
    columns a description runs over several lines and must not run back under the names)."""
    grid = Table.grid(padding=(0, 1), expand=True)
    grid.add_column(width=max(18, len(name)), no_wrap=True)  # the longest shipped name: cpu-first-try-orpo
    grid.add_column(ratio=1)
    grid.add_row(Text(name, style="bold"), Text(description, style="red" if error else "dim"))
    return grid


class NewRunScreen(AppScreen):
    """The new-run flow. Esc goes back a step (or closes), Enter goes on, ctrl+s starts."""

    CSS_PATH = "new_run.tcss"

    BINDINGS = [
        Binding("escape", "back", "Back"),
        Binding("ctrl+s", "start", "Start run"),
        Binding("ctrl+t", "edit_settings", "Settings"),
        Binding("ctrl+o", "open_config", "Open config"),
    ]

    pages = getters.query_one("#pages", ContentSwitcher)
    steps_view = getters.query_one("#steps", Static)
    yaml_view = getters.query_one("#yaml", TextArea)
    errors_view = getters.query_one("#errors", Static)
    refusal_view = getters.query_one("#refusal", Static)
    template_view = getters.query_one("#template", Static)
    memory = getters.query_one("#memory", ModelMemory)
    folder_view = getters.query_one("#folder", Static)
    edits_view = getters.query_one("#edits", Static)
    presets = getters.query_one("#presets", OptionList)
    stages = getters.query_one("#stages", OptionList)
    data_help = getters.query_one("#data-help", Static)
    model_input = getters.query_one("#model", Input)
    data_input = getters.query_one("#data", Input)
    name_input = getters.query_one("#name", Input)
    max_steps_input = getters.query_one("#max_steps", Input)
    cutoff_input = getters.query_one("#cutoff", Input)
    gpu_list = getters.query_one("#gpus", SelectionList)
    gpu_note = getters.query_one("#gpu-note", Static)

    def __init__(self, review: bool = False) -> None:
        super().__init__()
        self.open_at_review = review
        """Open at the review step (a run's config was taken), not at the model."""
        self.step = "model"
        """The step on show."""
        self.config: RunConfig | None = None
        """The resolved config once the review step validated it."""
        self._preset_values: dict[str, dict[str, Any]] = {}
        self.starter = RunStarter(self, self.show_verdict, lambda: self.config, self._place, self.show_template)
        """Judges whether the reviewed run fits, and starts it."""
        self.gpus: list[Gpu] = []
        """The GPUs found on this machine (empty until listed, and on a machine without any)."""

    @property
    def draft(self) -> RunDraft:
        """The app's draft (shared with the models, data and presets screens)."""
        return self.tuitune_app.draft

    @property
    def inputs(self) -> dict[str, Input]:
        """The text boxes by the draft field they fill."""
        return {"model": self.model_input, "data": self.data_input, "name": self.name_input,
                "max_steps": self.max_steps_input, "cutoff": self.cutoff_input}

    def compose(self) -> ComposeResult:
        yield Static("New run", id="heading")
        with Horizontal():
            yield Static("", id="steps")
            with ContentSwitcher(initial="page-model", id="pages"):
                with Vertical(id="page-model"):
                    yield Input(placeholder=DEMO_MODEL, id="model")
                    yield Static("Built-in alias, a local model folder or a Hugging Face hub id.", classes="help")
                with Vertical(id="page-stage"):
                    yield OptionList(*[Option(Text.assemble((f"{name:<6}", "bold"), (row.summary, "dim")), id=name)
                                       for name, row in STAGES.items()], id="stages")
                with Vertical(id="page-data"):
                    yield Input(placeholder=DEMO_DATA, id="data")
                    yield Static("", id="data-help", classes="help")
                with Vertical(id="page-preset"):
                    yield OptionList(id="presets")
                with Vertical(id="page-review"):
                    yield Input(id="name", placeholder="run name")
                    with Horizontal(id="knobs"):
                        yield Input(id="max_steps", placeholder="from epochs", type="integer")
                        yield Input(id="cutoff", placeholder="preset's", type="integer")
                    yield SelectionList[int](id="gpus")
                    yield Static("GPUs: looking…", id="gpu-note")
                    yield Static("", id="folder")
                    yield Static("", id="edits", markup=False)
                    yield Static("", id="errors")
                    yield Static("", id="refusal")
                    yield Static("", id="template")
                    with VerticalScroll(id="memory-box"):
                        yield ModelMemory(id="memory")
                    yield TextArea("", read_only=True, language=None, id="yaml")
        yield Footer(compact=True)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Each step is a field to type in: esc goes back a step at once, not out of the field first."""
        if action == "leave_field":
            return False
        return super().check_action(action, parameters)

    def on_mount(self) -> None:
        titles = {"model": "model", "data": "data", "name": "run name", "max_steps": "max steps", "cutoff": "cutoff"}
        for field, box in self.inputs.items():
            box.border_title = titles[field]
        self.presets.border_title = "preset"
        self.stages.border_title = "stage"
        self._all_presets: list[tuple[str, str, str | None, str | None]] = []
        self.yaml_view.border_title = "resolved config"
        self.gpu_list.border_title = "GPUs to train on (space ticks)"
        self.gpu_list.display = False
        self.list_presets()
        self.list_gpus()
        self.load_draft()
        if self.open_at_review:
            self.review()
        else:
            self.show_step("model")

    def on_screen_resume(self) -> None:
        """Choices made on other screens while this one was away show up here."""
        self.take_draft()

    def take_draft(self, review: bool = False) -> None:
        """Show the draft's current choices (and re-resolve on the review step, or go to it with ``review``)."""
        self.load_draft()
        if review or self.step == "review":
            self.review()

    def load_draft(self) -> None:
        """Fill the inputs from the draft."""
        draft = self.draft
        self._fill(self.model_input, draft.model)
        self._fill(self.data_input, ", ".join(draft.data))
        self.stages.highlighted = list(STAGES).index(draft.stage) if draft.stage in STAGES else 0
        self.data_help.update("JSON, JSON Lines or .txt files, datasets folders or Hub datasets (hf:ORG/NAME[:SPLIT]), "
                              "comma separated; builtin:identity is the shipped sample. "
                              f"{accepted_layouts(draft.stage).capitalize()}.")
        self._highlight_preset()
        self._show_steps()

    def _fill(self, field: Input, value: str) -> None:
        """Set an input's text with the cursor at its end, in view."""
        if field.value != value:
            field.value = value
            field.cursor_position = 0
            # After layout: a field on a page just switched to has no width yet to scroll in.
            self.call_after_refresh(field.action_end)

    def save_inputs(self) -> None:
        """Copy the inputs into the draft."""
        draft = self.draft
        draft.model = self.model_input.value.strip() or DEMO_MODEL
        draft.data = [p.strip() for p in self.data_input.value.split(",") if p.strip()] or [DEMO_DATA]
        draft.name = self.name_input.value.strip()
        draft.max_steps, draft.cutoff = self.max_steps_input.value, self.cutoff_input.value

    def show_step(self, step: str) -> None:
        """Switch to ``step`` and focus its first field."""
        self.step = step
        self.pages.current = f"page-{step}"
        focus = {"model": self.model_input, "stage": self.stages, "data": self.data_input, "preset": self.presets,
                 "review": self.name_input}
        focus[step].focus()
        self._show_steps()

    def _show_steps(self) -> None:
        draft, out = self.draft, Text()
        preset = draft.origin or draft.preset
        values = {"model": draft.model, "stage": draft.stage, "data": ", ".join(draft.data), "preset": preset,
                  "review": ""}
        for number, step in enumerate(STEPS, 1):
            style = "bold reverse" if step == self.step else ""
            out.append(f" {number} {STEP_TITLES[step]} \n", style=style)
            if values[step]:
                shown = values[step] if len(values[step]) <= 20 else "…" + values[step][-19:]  # the end names it
                out.append(f"   {shown}\n", style="dim")
        self.steps_view.update(out)

    @on(Input.Submitted)
    def next_step(self, event: Input.Submitted) -> None:
        """Enter moves to the next step; on the review step it starts the run."""
        self.save_inputs()
        if self.step == "review":
            self.action_start()
        else:
            self.show_step(STEPS[STEPS.index(self.step) + 1])

    @on(OptionList.OptionSelected, "#stages")
    def choose_stage(self, event: OptionList.OptionSelected) -> None:
        """Enter on a stage takes it (the presets and the data's help follow) and moves to the data."""
        self.draft.stage = str(event.option.id)
        self.save_inputs()
        own = [name for name, _, error, stage in self._all_presets if stage == self.draft.stage and error is None]
        gpu = has_nvidia_gpu()
        taken = stage_preset(self._all_presets, self.draft.stage, gpu)
        if taken and (not gpu or self.draft.preset not in own):
            self.draft.preset = taken  # the stage's own preset first (its CPU first try without a GPU)
        self._show_presets(self._all_presets)
        self.load_draft()
        self.show_step("data")

    @on(OptionList.OptionSelected, "#presets")
    def choose_preset(self, event: OptionList.OptionSelected) -> None:
        """Enter on a preset takes it and moves to the review."""
        self.draft.preset = str(event.option.id)
        self.draft.config_file = self.draft.origin = ""  # a preset picked here replaces the config started from
        self.draft.settings = None  # and the settings edited over the previous one
        self.save_inputs()
        self.review()

    def review(self) -> None:
        """Show the review step with the resolved config."""
        self.show_step("review")
        for field, value in ((self.name_input, self.draft.name), (self.max_steps_input, self.draft.max_steps),
                             (self.cutoff_input, self.draft.cutoff)):
            self._fill(field, value)
        self.fetch_preset(self.draft.preset)

    @on(Input.Changed, "#page-review Input")
    def refresh_review(self) -> None:
        """Re-resolve as the run name, steps or cutoff are typed."""
        self.save_inputs()
        self.resolve()

    def resolve(self) -> RunConfig | None:
        """Resolve the draft over the loaded preset and show the YAML or the problems."""
        preset = self._preset_values.get(self.draft.preset)
        if preset is None:
            return None
        try:
            self.config = resolve_draft(self.draft, preset)
        except ConfigError as exc:
            self.config = None
            self.show_problems(exc.problems)
            return None
        self.config, problem = self._on_ticked_gpus(self.config)
        self.show_problems([problem] if problem else [])
        if problem:
            self.config = None
            return None
        if not self.draft.name or self.draft.name == self.draft.made_name:  # not typed: follow the model
            made = default_run_name(self.config)
            if not self.draft.name or made.rsplit("-", 2)[0] != self.draft.made_name.rsplit("-", 2)[0]:  # not the time
                self.draft.name = self.draft.made_name = made
                self._fill(self.name_input, made)
        self.yaml_view.load_text(config_to_yaml(self.config))
        source = self.draft.origin or "preset"  # where the values not typed here come from
        if not self.draft.max_steps.strip():
            steps = self.config.train.max_steps
            self.max_steps_input.placeholder = f"{steps} ({source})" if steps else "from epochs"
        if not self.draft.cutoff.strip():
            self.cutoff_input.placeholder = f"{self.config.data.cutoff_len} ({source})"
        self._show_edits()
        folder = self.tuitune_app.runs_dir / (self.draft.name or "?")
        taken = " (taken: the run gets the next free name, -2, -3…)" if folder.exists() else ""
        self.folder_view.update(f"folder: {folder}{taken}")
        self.starter.check(self.config)
        return self.config

    def _on_ticked_gpus(self, config: RunConfig) -> tuple[RunConfig, str | None]:
        """``config`` on the GPUs ticked (all ticked keeps its own choice); a problem when none is."""
        if not self.gpus:
            return config, None
        ticked = sorted(self.gpu_list.selected)
        if not ticked:
            return config, "tick at least one GPU to train on"
        if len(ticked) == len(self.gpus):
            return config, None
        return config.model_copy(update={"train": config.train.model_copy(update={"gpus": ticked})}), None

    @work(thread=True, exclusive=True, group="gpus", exit_on_error=False, description="listing GPUs")
    def list_gpus(self) -> None:
        """Ask NVML for the GPUs in the background (the engine's one reader)."""
        from engine.machine import gpus

        found, note = gpus.list_gpus()
        self.app.call_from_thread(self._show_gpus, found, note)

    def _show_gpus(self, found: list[Gpu], note: str) -> None:
        """List the GPUs to tick, or say that the run trains on the CPU."""
        self.gpus = found
        self.gpu_list.clear_options()
        for gpu in found:
            busy = f"  {gpu.processes} process{'es' if gpu.processes != 1 else ''} on it" if gpu.processes else ""
            used = fmt_bytes(gpu.total_bytes - gpu.free_bytes)
            self.gpu_list.add_option(Selection(f"GPU {gpu.index} {gpu.name}  {used}/{fmt_bytes(gpu.total_bytes)} used"
                                               f"{busy}", gpu.index, True))
        self.gpu_list.display = bool(found)
        several = "; more than one trains under torchrun, the estimate is per GPU" if len(found) > 1 else ""
        self.gpu_note.update(f"{len(found)} GPU(s) found{several}" if found else
                             f"GPUs: none found ({note or 'NVML found none'}): the run trains on the CPU")
        if self.step == "review":
            self.resolve()

    @on(SelectionList.SelectedChanged, "#gpus")
    def gpus_ticked(self) -> None:
        """A GPU ticked or unticked: resolve and judge again."""
        if self.step == "review":
            self.resolve()

    def _base_config(self) -> RunConfig | None:
        """The run as the preset (or run config) makes it: without the edited settings, and without the
        steps and cutoff typed on the review step (they apply over the settings, whichever way they came)."""
        preset = self._preset_values.get(self.draft.preset)
        try:
            return resolve_draft(replace(self.draft, settings=None, max_steps="", cutoff=""), preset or {})
        except ConfigError:
            return None

    def _show_edits(self) -> None:
        """One line naming the settings edited for this run (ctrl+t), hidden when there are none."""
        base, edits = self._base_config(), ""
        if self.draft.settings is not None and base is not None:
            edits = describe_diff(diff_from(preset_values(base), self.draft.settings))
        self.edits_view.update(edits)
        self.edits_view.display = bool(edits)

    def action_open_config(self) -> None:
        """Start from a config file (tuitune's, or a LLaMA-Factory training YAML): its model, data and settings."""
        from tuitune.dialogs.open_config import OpenConfigDialog

        def opened(path: str | None) -> None:
            if path is None:
                return
            try:
                notes = self.draft.start_from_config(Path(path))
            except ConfigError as exc:
                self.notify("\n".join(exc.problems[:5]), title=f"cannot start from {path}", severity="error",
                            timeout=15)
                return
            if notes:
                self.notify("\n".join(notes[:5]), title="LLaMA-Factory config: look at", severity="warning",
                            timeout=15)
            self.load_draft()
            self.review()

        self.app.push_screen(OpenConfigDialog(), opened)

    def action_edit_settings(self) -> None:
        """Edit every preset field for this run (rank, learning rate…), with the diff; save-as is offered."""
        from engine.presets import list_presets
        from tuitune.dialogs.run_settings import RunSettingsDialog

        self.save_inputs()
        base = self._base_config()
        if base is None:
            self.notify("fix the problems shown first", severity="warning")
            return
        presets = list_presets()
        shipped = {p.name for p in presets if p.source == "shipped"}
        user = {p.name for p in presets if p.source == "user"}
        source = self.draft.origin or f"preset {self.draft.preset}"

        def edited(values: dict[str, Any] | None) -> None:
            if values is not None:
                self.draft.settings = None if not diff_from(preset_values(base), values) else values
                self.review()

        self.app.push_screen(RunSettingsDialog(preset_values(base), self.draft.settings, source, shipped, user), edited)

    def show_problems(self, problems: list[str]) -> None:
        """List the config's problems in red (the line is hidden when there are none)."""
        self.errors_view.update(Text("\n".join(problems), style="red"))
        self.errors_view.display = bool(problems)

    def action_back(self) -> None:
        """Back one step; from the first step, close the flow (the draft is kept)."""
        self.save_inputs()
        if self.step == "model":
            self.dismiss()
        else:
            self.show_step(STEPS[STEPS.index(self.step) - 1])

    def action_start(self) -> None:
        """Start the run as reviewed (from an earlier step: review first)."""
        self.save_inputs()
        if self.step != "review":
            self.review()
            return
        config = self.resolve()
        if config is None or self.starter.starting:
            self.notify("fix the problems shown first" if config is None else "already starting", severity="warning")
            return
        self.starter.start(config)

    def _place(self, config: RunConfig) -> tuple[Path, str]:
        """The runs folder and the name a run of ``config`` starts as."""
        return self.tuitune_app.runs_dir, self.draft.name or default_run_name(config)

    def show_verdict(self, verdict: Verdict | None, devices: str, checked: Prestart | None) -> None:
        """Show the memory panel for ``verdict`` (None: being checked) and what the check before a start
        found: its refusals in bold red, code the run executes in red, warnings in yellow."""
        if verdict is None or checked is None:
            self.memory.show(None, note="Estimating memory and checking the data…")
            self.refusal_view.display = False
            return
        self.memory.show(verdict, devices)
        text = Text()
        if checked.refusals:
            text.append("\n".join(checked.refusals), style="bold red")
        if checked.dangers:  # code the run will execute: allowed, but said in red
            text.append(("\n" if text else "") + "\n".join(checked.dangers), style="red")
        if checked.warnings:
            text.append(("\n" if text else "") + "\n".join(checked.warnings), style="yellow")
        self.refusal_view.update(text)
        self.refusal_view.display = bool(text)

    def show_template(self, checked: TemplateCheck | None) -> None:
        """Show what the chat-template doctor found (None: being checked, nothing shown): its errors in red, its
        warnings in yellow, each in one line naming the token it speaks of; passing verdicts are not repeated."""
        text = Text()
        if checked is not None and checked.not_checked:
            text.append(f"chat template not checked: {checked.not_checked}", style="yellow")
        for verdict in (checked.errors + checked.warnings) if checked is not None else []:
            line = f"chat template: {verdict.line().split(maxsplit=1)[1]}"
            text.append(("\n" if text else "") + line, style="bold red" if verdict.is_error else "yellow")
        self.template_view.update(text)
        self.template_view.display = bool(text)

    @work(thread=True, exclusive=True, group="presets", exit_on_error=False, description="listing presets")
    def list_presets(self) -> None:
        """Read the preset list in the background."""
        self.app.call_from_thread(self._show_presets, load_presets())

    def _show_presets(self, presets: list[tuple[str, str, str | None, str | None]]) -> None:
        """List the presets that suit the draft's stage (see ``presets_for_stage``)."""
        self._all_presets = presets
        options = self.presets
        options.clear_options()
        offered = presets_for_stage(presets, self.draft.stage)
        for name, description, error, _ in offered:
            options.add_option(Option(preset_label(name, error or description or "", bool(error)), id=name,
                                      disabled=error is not None))
        usable = [name for name, _, error, _ in offered if error is None]
        if self.draft.preset not in usable and usable:
            self.draft.preset = "default" if "default" in usable else usable[0]
        self._highlight_preset()
        self._show_steps()

    def _highlight_preset(self) -> None:
        options = self.presets
        for index in range(options.option_count):
            if options.get_option_at_index(index).id == self.draft.preset:
                options.highlighted = index

    @work(thread=True, exclusive=True, group="preset-load", exit_on_error=False, description="loading the preset")
    def fetch_preset(self, name: str) -> None:
        """Load a preset's values in the background, then resolve."""
        try:
            values = load_preset_values(name)
        except ConfigError as exc:
            self.app.call_from_thread(self.show_problems, exc.problems)
            return
        self._preset_values[name] = values
        self.app.call_from_thread(self.resolve)

    @on(RunStarted)
    def open_dashboard(self, message: RunStarted) -> None:
        """Hand over to the run's dashboard; the next new run starts from a fresh name."""
        self.draft.name = self.draft.made_name = ""
        self.tuitune_app.run_launched(message.run_dir)
