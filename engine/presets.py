"""Presets: partial run configs kept as YAML, shipped with tuitune or saved by the user.

Standard library, PyYAML and pydantic only, so the app can import it.

A preset is a partial RunConfig (usually description plus the quant, adapter, data and
train sections), laid over the defaults and validated by :func:`engine.config.validate_config`.

Names. Shipped presets (``presets/*.yaml`` in the repository) are read-only and their names
are reserved: ``--preset default`` means the same thing on every machine, so a user preset
never shadows a shipped one. :func:`save_user_preset` refuses shipped names, and a file in
the user's folder that bears one is listed with an error and otherwise ignored. A broken
user preset is listed with its error; listing never raises.

Trust. A preset is a file people share, so it may not set ``model.trust_remote_code``: a preset
that did would run the code of whatever model the run names, even one given with ``--model``.
Only the run's own config file may turn remote code on. Other ``model`` fields (dtype,
revision) remain allowed, as before; a flag still overrides them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel

from engine.config import ConfigError, RunConfig, load_yaml, locate, read_config_text, validate_config
from engine.files import write_text_atomic
from engine.paths import shipped_presets_dir, user_presets_dir
from engine.stages import DEFAULT_STAGE

PRESET_SECTIONS = ("quant", "adapter", "data", "train", "preference", "rl")
"""The sections a preset sets; the model and the data files are chosen per run."""
PRESET_TOP_FIELDS = ("description", "stage")
"""Top-level fields a preset holds: what it is for, and the stage it trains (a dpo preset is a dpo run)."""
RUN_ONLY_FIELDS = frozenset({"data.train", "train.gpus", "rl.allow_code"})
"""Fields inside preset sections that belong to one run (its files, its machine's GPUs, its trust in code), so presets
leave them out."""
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}\Z")  # \Z: $ would let a final newline through
"""Preset names: letters, digits, '.', '_', '-'; they become file names."""
SUFFIXES = (".yaml", ".yml")
NOT_IN_PRESETS = {"model.trust_remote_code": "a preset may not set this; only the run's own config file may turn "
                                            "on remote code",
                  "rl.allow_code": "a preset may not set this; only the run's own config file may allow a python "
                                   "reward to run its code"}
"""Fields a preset may not set, whatever the value, and why."""


class PresetNotFound(ConfigError):
    """No preset of that name, nor a file at that path."""


class PresetExists(FileExistsError):
    """A user preset of that name exists and overwriting was not asked for."""


@dataclass(frozen=True)
class PresetInfo:
    """One preset as listed: where it is, what it says it is for, and whether it loads."""

    name: str
    """File name without the suffix; what ``--preset`` takes."""
    path: Path
    """The YAML file."""
    description: str
    """The preset's one-line description ('' when unreadable)."""
    source: Literal["shipped", "user"]
    """shipped presets are read-only; user presets live in the XDG config folder."""
    error: str | None = None
    """Why the preset cannot be used (file:line:col field: message lines), or None."""
    stage: str = DEFAULT_STAGE
    """The stage the preset trains (its ``stage``, the default stage when it sets none): the new-run flow filters
    by it."""


def _yaml_files(folder: Path) -> list[Path]:
    """The preset files in ``folder``, sorted by name; none when it does not exist."""
    try:
        return sorted(p for p in folder.iterdir() if p.suffix in SUFFIXES and not p.name.startswith("."))
    except OSError:
        return []


def _inspect(path: Path, source: Literal["shipped", "user"], error: str | None = None) -> PresetInfo:
    """Read and validate one preset file into a PresetInfo, capturing any problem."""
    description, stage = "", DEFAULT_STAGE
    try:
        data = load_yaml(read_config_text(path), str(path))[1]
        if isinstance(data, dict) and isinstance(data.get("description"), str):
            description = data["description"]
        if isinstance(data, dict) and isinstance(data.get("stage"), str):
            stage = data["stage"]
    except ConfigError:
        pass
    if error is None:
        try:
            load_preset(path)
        except ConfigError as exc:
            error = str(exc)
    return PresetInfo(path.stem, path, description, source, error, stage)


def list_presets() -> list[PresetInfo]:
    """Shipped presets (default first, then by name), then the user's, broken ones included."""
    shipped = [_inspect(p, "shipped") for p in _yaml_files(shipped_presets_dir())]
    shipped.sort(key=lambda info: (info.name != "default", info.name))
    reserved = {info.name for info in shipped}
    user = []
    for path in _yaml_files(user_presets_dir()):
        clash = None
        if path.stem in reserved:
            clash = f"{path}: the name {path.stem!r} belongs to a shipped preset; rename this file to use it"
        user.append(_inspect(path, "user", clash))
    return shipped + user


def find_preset(name_or_path: str | Path) -> Path:
    """The file of a preset given by name (shipped names first: they are reserved) or by path.

    Raises:
        PresetNotFound: naming the presets that do exist.
    """
    text = str(name_or_path)
    candidate = Path(text).expanduser()
    if candidate.suffix in SUFFIXES or "/" in text or candidate.is_file():
        if candidate.is_file():
            return candidate
        if candidate.exists():
            raise PresetNotFound([f"{text}: not a regular file; give a YAML file"])
        raise PresetNotFound([f"{text}: no such preset file"])
    for folder in (shipped_presets_dir(), user_presets_dir()):
        for suffix in SUFFIXES:
            path = folder / f"{text}{suffix}"
            if path.is_file():
                return path
    names = ", ".join(info.name for info in list_presets())
    raise PresetNotFound([f"{text}: no such preset; available: {names}"])


def load_preset(name_or_path: str | Path) -> dict[str, Any]:
    """The preset's partial config as a plain dict, after validating it over the defaults.

    Raises:
        ConfigError: ``file:line:col field: message`` lines for malformed YAML, unknown keys,
            wrong types and out-of-range values (PresetNotFound when there is no such preset).
    """
    path = find_preset(name_or_path)
    node, data = load_yaml(read_config_text(path), str(path))
    check_preset(node, data, str(path))
    validate_config(node, data, str(path))
    return data or {}


def check_preset(node: yaml.Node | None, data: Any, source: str) -> None:
    """Refuse the fields of NOT_IN_PRESETS, located (``file:line:col field: why``).

    Raises:
        ConfigError: one line per field a preset may not set.
    """
    problems = []
    for dotted, why in NOT_IN_PRESETS.items():
        section, key = dotted.split(".")
        if isinstance(data, dict) and isinstance(data.get(section), dict) and key in data[section]:
            problems.append(f"{locate(node, [section, key], source, key=True)} {dotted}: {why}")
    if problems:
        raise ConfigError(problems)


def resolve(data: dict[str, Any]) -> RunConfig:
    """A (partial) preset dict laid over the defaults, validated (pydantic ValidationError)."""
    return RunConfig.model_validate(data)


def preset_values(config: RunConfig) -> dict[str, Any]:
    """The part of a resolved config a preset holds: description, stage and the preset sections."""
    dumped = config.model_dump(mode="json")
    values: dict[str, Any] = {key: dumped[key] for key in PRESET_TOP_FIELDS}
    for section in PRESET_SECTIONS:
        values[section] = {
            key: value for key, value in dumped[section].items() if f"{section}.{key}" not in RUN_ONLY_FIELDS
        }
    return values


def check_name(name: str) -> str | None:
    """Why ``name`` cannot name a new user preset, or None when it can."""
    if not NAME_PATTERN.match(name):
        return "use 1 to 64 letters, digits, '.', '_' or '-', starting with a letter or digit"
    if any((shipped_presets_dir() / f"{name}{suffix}").is_file() for suffix in SUFFIXES):
        return f"{name!r} is a shipped preset (read-only); choose another name"
    return None


def save_user_preset(name: str, data: dict[str, Any], overwrite: bool = False) -> Path:
    """Validate ``data`` and write it atomically as ``<user presets>/<name>.yaml``, commented.

    Raises:
        ConfigError: the name is not allowed (shipped or malformed) or the data does not validate.
        PresetExists: the user preset exists and ``overwrite`` is False.
    """
    path = user_presets_dir() / f"{name}.yaml"
    problem = check_name(name)
    if problem:
        raise ConfigError([f"{path}: {problem}"])
    text = preset_to_yaml(data)
    node, parsed = load_yaml(text, str(path))
    check_preset(node, parsed, str(path))
    validate_config(node, parsed, str(path))
    if path.exists() and not overwrite:
        raise PresetExists(f"{path} exists; pass overwrite=True to replace it")
    write_text_atomic(path, text)
    return path


def preset_to_yaml(data: dict[str, Any]) -> str:
    """``data`` as YAML with each known field followed by its schema help as a comment."""
    lines: list[str] = []
    _emit(lines, data, RunConfig, indent="")
    return "\n".join(lines) + "\n"


def _emit(lines: list[str], data: dict[str, Any], model: type[BaseModel] | None, indent: str) -> None:
    """Append ``data`` at ``indent`` to ``lines``, commenting fields of ``model``."""
    for key, value in data.items():
        field = model.model_fields.get(key) if model else None
        sub = field.annotation if field else None
        if isinstance(value, dict):
            lines.append(f"{indent}{_scalar(key)}:")
            nested = sub if isinstance(sub, type) and issubclass(sub, BaseModel) else None
            _emit(lines, value, nested, indent + "  ")
            continue
        # one line: a help text that spans lines would end the comment and break the YAML
        comment = f"  # {' '.join(field.description.split())}" if field and field.description else ""
        lines.append(f"{indent}{_scalar(key)}: {_scalar(value)}{comment}")


def _scalar(value: Any) -> str:
    """One value as a single line of flow-style YAML."""
    text = yaml.safe_dump(value, default_flow_style=True, width=1 << 16, allow_unicode=True).strip()
    return text.removesuffix("\n...").removesuffix("...").strip()


def flatten(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested dicts as ``{"adapter.r": 16, ...}``; lists and scalars are leaves."""
    flat: dict[str, Any] = {}
    for key, value in data.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten(value, dotted + "."))
        else:
            flat[dotted] = value
    return flat


def diff_from(base: dict[str, Any], current: dict[str, Any]) -> list[tuple[str, Any, Any]]:
    """``(dotted_field, old, new)`` for every leaf that differs; a missing side reads as None.

    Pass resolved dicts (see :func:`preset_values`) to compare values rather than spellings.
    """
    old, new = flatten(base), flatten(current)
    keys = list(new) + [key for key in old if key not in new]
    return [(key, old.get(key), new.get(key)) for key in keys if old.get(key) != new.get(key)]
