"""The new run being set up, and how it becomes a full RunConfig. No Textual here.

The draft is shared by every screen that can pick something for the next run (the models,
data and presets screens post ``ModelChosen``, ``DataChosen``, ``PresetChosen``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.compose import Flags, compose_config
from engine.config import DEMO_MODEL, ConfigError, RunConfig
from engine.stages import DEFAULT_STAGE, DEMO_DATA, STAGES

RUN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}\Z")  # \Z: $ would let a final newline through
"""A run's name is its folder's name: letters, digits, '.', '_', '-', starting with a letter or digit."""


def run_name_problem(name: str) -> str | None:
    """Why ``name`` cannot name a run folder, or None (it is never rewritten behind the user's back)."""
    if RUN_NAME.match(name):
        return None
    return (f"{name!r} cannot be a folder name here: use 1 to 100 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit")


@dataclass
class RunDraft:
    """The choices of the run being set up."""

    model: str = DEMO_MODEL
    """Model alias, folder or hub id."""
    stage: str = DEFAULT_STAGE
    """Training stage (a name of engine.stages.STAGES)."""
    data: list[str] = field(default_factory=lambda: [DEMO_DATA])
    """Training data paths."""
    format: str = "auto"
    """Data record layout."""
    preset: str = "default"
    """Preset name or file."""
    name: str = ""
    """Run name (blank: made from the model and the time)."""
    made_name: str = ""
    """The name the flow made from the model, stage and time; while ``name`` is still it, the user typed none and
    it is made again when they change."""
    max_steps: str = ""
    """Optimizer steps as typed (blank: run the preset's epochs)."""
    cutoff: str = ""
    """Cutoff length in tokens as typed (blank: the preset's)."""
    settings: dict[str, Any] | None = None
    """Preset values edited for this run on the review step (they replace the preset's and the run
    config's); None: as the preset (or run config) says."""
    origin: str = ""
    """Where the settings came from when not from the preset ("config of run X", "LLaMA-Factory lf.yaml")."""
    config_file: str = ""
    """A run's config.yaml to start from ("new run from this config"): every setting of that run,
    the preset's values only where it has none; blank: the preset alone."""

    def start_from_config(self, path: Path) -> list[str]:
        """Take a config file's model, data and settings: a tuitune run config as it is, a LLaMA-Factory
        training YAML through its import (whose notes that need a look are returned, else none).

        Raises:
            ConfigError: the file cannot be used, naming its lines.
        """
        from engine.lf.config import compose_lf, load_lf_or_none
        from engine.presets import preset_values

        imported = load_lf_or_none(path)
        if imported is None:
            self._take(load_config_file(path))
            self.config_file, self.origin = str(path), path.name
            return []
        config = compose_lf(imported, None, {})
        self._take(config)
        self.settings = preset_values(config)  # every knob as LLaMA-Factory's file sets it
        self.origin = f"LLaMA-Factory {path.name}"
        return [str(warning) for warning in imported.warnings()]

    def _take(self, config: RunConfig) -> None:
        self.model, self.data, self.format = config.model.name_or_path, list(config.data.train), config.data.format
        self.stage = config.stage
        self.config_file, self.settings, self.name, self.max_steps, self.cutoff = "", None, "", "", ""
        self.made_name = ""
        self.origin = ""

    def start_from_run(self, run_dir: Path) -> None:
        """Take ``run_dir``'s model, data and settings (a new name, steps and cutoff as its config says)."""
        self._take(load_config_file(run_dir / "config.yaml"))
        self.config_file, self.origin = str(run_dir / "config.yaml"), f"config of {run_dir.name}"


def load_config_file(path: Path) -> RunConfig:
    """A tuitune run config file, validated (ConfigError naming its lines)."""
    from engine.config import load_config

    return load_config(path)


def resolve_draft(draft: RunDraft, preset: dict[str, Any]) -> RunConfig:
    """The full run config: the preset's values laid over the defaults, then the draft's choices.

    Raises:
        ConfigError: one line per problem, naming the field.
    """
    flags: Flags = {
        "stage": ("stage", draft.stage),
        "model": ("model.name_or_path", draft.model.strip()),
        "data": ("data.train", [p.strip() for p in draft.data if p.strip()]),
        "format": ("data.format", draft.format),
    }
    problems: list[str] = []
    if draft.name.strip() and (problem := run_name_problem(draft.name.strip())):
        problems.append(f"run name: {problem}")
    for label, text, dotted, least in (("max steps", draft.max_steps, "train.max_steps", 1),
                                       ("cutoff", draft.cutoff, "data.cutoff_len", 8)):
        text = text.strip()
        if not text:
            continue
        try:
            number = int(text)
        except ValueError:
            problems.append(f"{label} ({dotted}): {text!r} is not a whole number")
            continue
        if number < least:
            problems.append(f"{label} ({dotted}): {number} is too small: it must be {least} or more")
        else:
            flags[label] = (dotted, number)
    if problems:
        raise ConfigError(problems)
    if draft.settings is not None:
        return compose_config(draft.settings, flags=flags)
    return compose_config(preset, draft.config_file or None, flags=flags)


def load_presets() -> list[tuple[str, str, str | None, str | None]]:
    """(name, description, error, stage) of every preset, shipped and user's; stage None when the preset
    names none (it suits any stage) or cannot be read."""
    from engine.presets import list_presets, load_preset

    listed = []
    for preset in list_presets():
        stage = None
        if preset.error is None:
            try:
                stage = load_preset(preset.path).get("stage")
            except ConfigError:
                pass
        listed.append((preset.name, preset.description, preset.error, stage))
    return listed


def presets_for_stage(presets: list[tuple[str, str, str | None, str | None]],
                      stage: str) -> list[tuple[str, str, str | None, str | None]]:
    """The presets offered for ``stage``: those made for it first, then those that name no stage
    (the default stage's, which suit any stage); presets made for another stage are left out."""
    if stage == DEFAULT_STAGE:
        return [p for p in presets if p[3] in (None, DEFAULT_STAGE)]
    return [p for p in presets if p[3] == stage] + [p for p in presets if p[3] is None]


def stage_preset(presets: list[tuple[str, str, str | None, str | None]], stage: str, gpu: bool) -> str | None:
    """The preset the new-run flow takes when ``stage`` is chosen, or None to keep the one chosen before.

    Without a GPU, the stage's CPU first try (``Stage.cpu_preset``): the stage's other presets are sized for a
    GPU (``dpo-lora``: cutoff 1024, 16 pairs a step, minutes a step on a CPU). With one, the first preset made
    for the stage that is no CPU first try. Only presets that load without error count.
    """
    usable = [name for name, _, error, preset_stage in presets if error is None and preset_stage == stage]
    cpu_presets = {row.cpu_preset for row in STAGES.values()}
    if not gpu:
        cpu = STAGES[stage].cpu_preset
        if cpu in (name for name, _, error, _ in presets if error is None):
            return cpu
    return next((name for name in usable if name not in cpu_presets), None)


def load_preset_values(name: str) -> dict[str, Any]:
    """A preset's values."""
    from engine.presets import load_preset

    return load_preset(name)
