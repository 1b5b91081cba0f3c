"""One way to make a run's config: defaults ← preset ← config file ← flags. No torch here.

``tuitune train``, ``tuitune estimate``, the new-run flow and the Models screen all compose a
config here, so a preset, a file and a typed value mean the same thing everywhere. Paths are
made absolute as the config is composed (the engine may run in another folder): paths written
in a config file against that file's folder, paths given as flags against the current folder.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from engine.config import ConfigError, RunConfig, deep_merge, load_config, parse_config

Flags = dict[str, tuple[str, Any]]
"""What the user gave outside the file: ``{"--max-steps": ("train.max_steps", 3)}``, keyed by the
name errors should use (a command-line flag, or a field's label in the app). Top-level fields are
named alone: ``{"--stage": ("stage", "dpo")}``."""
PATH_FIELDS = ("model.name_or_path", "data.train")
"""Fields holding paths (or names that are not paths: aliases, hub ids, ``builtin:`` data)."""


def compose_config(preset: str | dict[str, Any] | None = None, config_file: str | os.PathLike[str] | None = None,
                   flags: Flags | None = None, cwd: Path | None = None) -> RunConfig:
    """The run config of ``preset`` (a name, a YAML path or its loaded values) under
    ``config_file`` under ``flags``, validated.

    Raises:
        ConfigError: naming the file, line and field that is wrong, or the flag.
    """
    cwd = cwd or Path.cwd()
    base = _preset_values(preset)
    config = load_config(config_file, base=base) if config_file else parse_config("", "<defaults>", base=base)
    here = Path(config_file).resolve().parent if config_file else cwd
    values = config.model_dump(mode="json")
    values = _with(values, "model.name_or_path", absolute(config.model.name_or_path, here))
    values = _with(values, "data.train", [absolute(p, here) for p in config.data.train])
    for field, value in (flags or {}).values():
        if field == "model.name_or_path":
            value = absolute(value, cwd)
        elif field == "data.train":
            value = [absolute(p, cwd) for p in value]
        values = _with(values, field, value)
    try:
        return RunConfig.model_validate(values)
    except ValidationError as exc:
        names = {field: flag for flag, (field, _) in (flags or {}).items()}
        raise ConfigError([_flag_problem(err, names) for err in exc.errors()]) from None


def absolute(value: str, base: Path) -> str:
    """``value`` as an absolute path when it names something under ``base``; aliases,
    ``builtin:`` names and hub ids (nothing on disk) are returned unchanged."""
    if value.startswith("builtin:"):
        return value
    path = Path(value).expanduser()
    if not path.is_absolute():
        path = base / path
    return str(path.resolve()) if path.exists() else value


def _preset_values(preset: str | dict[str, Any] | None) -> dict[str, Any]:
    if preset is None:
        return {}
    if isinstance(preset, dict):
        return preset
    from engine.presets import load_preset

    return load_preset(preset)


def _with(values: dict[str, Any], dotted: str, value: Any) -> dict[str, Any]:
    """``values`` with the field at ``dotted`` (``section.key``) set to ``value``."""
    section, _, key = dotted.partition(".")
    return deep_merge(values, {section: {key: value}} if key else {section: value})


def _flag_problem(err: Any, names: dict[str, str]) -> str:
    """One pydantic error as ``--flag (section.field): message``, or ``section.field: message``."""
    field = ".".join(str(part) for part in err["loc"][:2])
    message = err["msg"].removeprefix("Value error, ").replace("Input should be", "must be")
    if not field:  # a rule across fields: name the flags whose fields it speaks of
        flags = [flag for named, flag in names.items() if named in message]
        return f"{', '.join(flags)}: {message}" if flags else message
    return f"{names[field]} ({field}): {message}" if field in names else f"{field}: {message}"
