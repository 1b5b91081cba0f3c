"""User settings: ``$XDG_CONFIG_HOME/tuitune/settings.yaml``, read leniently, all optional.

```yaml
runs_dir: ~/runs            # where run folders go (--runs-dir and $TUITUNE_RUNS_DIR win over it)
model: smollm2-135m-instruct  # the new-run flow's starting model
data: [builtin:identity]     # …its starting data
preset: default              # …its starting preset (unset: default on GPUs, cpu-first-try on CPU)
notify:                      # word when a run ends (engine.notify.settings; README: Word when it is done)
  webhook: https://ntfy.sh/my-topic
```
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import yaml

from engine.files import read_regular
from engine.notify.settings import NotifySettings, parse_notify
from engine.paths import SETTINGS_LIMIT, settings_file


@dataclass
class Settings:
    """What the app starts with; a missing or broken file gives the demo defaults."""

    runs_dir: Path | None = None
    """Parent folder of run folders as the file sets it (None: not set); the folder used is
    ``engine.paths.runs_dir(--runs-dir, this)``."""
    model: str | None = None
    """Model the new-run flow starts from (None: the demo model)."""
    data: list[str] | None = None
    """Data the new-run flow starts from (None: the shipped sample)."""
    preset: str | None = None
    """Preset the new-run flow starts from (None: default with an NVIDIA GPU, else cpu-first-try)."""
    llamafactory_dirs: list[Path] = field(default_factory=list)
    """Folders whose LLaMA-Factory output folders (``saves/…``) the runs list shows too, read-only."""
    notify: NotifySettings = field(default_factory=NotifySettings)
    """Where word of a run's end goes, and what the app sends its terminal (read by the engine too)."""
    problem: str | None = None
    """Why the settings file was not used, if it was not (shown once as a warning)."""


def has_nvidia_gpu() -> bool:
    """Whether an NVIDIA driver is loaded (a cheap file check; the engine does the real probing)."""
    return Path("/proc/driver/nvidia/version").exists()


def default_preset(settings: Settings) -> str:
    """The preset a run starts from when none is named: the settings file's, else the machine's
    (``default`` with an NVIDIA GPU, ``cpu-first-try`` without, which trains the demo in minutes)."""
    return settings.preset or ("default" if has_nvidia_gpu() else "cpu-first-try")


def settings_path() -> Path:
    """Where the settings file lives."""
    return settings_file()


def load_settings(path: Path | None = None) -> Settings:
    """Read the settings file; unknown keys and bad values are reported in ``problem``, not raised."""
    path = path or settings_path()
    try:
        data = yaml.safe_load(read_regular(path, SETTINGS_LIMIT).decode("utf-8")) or {}
    except FileNotFoundError:
        return Settings()
    except (OSError, UnicodeDecodeError, yaml.YAMLError, RecursionError) as exc:
        return Settings(problem=f"{path}: {exc}")
    if not isinstance(data, dict):
        return Settings(problem=f"{path}: expected a mapping")
    settings, problems = Settings(), []
    for key, value in data.items():
        if key == "runs_dir" and isinstance(value, str):
            settings.runs_dir = Path(value).expanduser()
        elif key in ("model", "preset") and isinstance(value, str):
            setattr(settings, key, value)
        elif key == "data" and isinstance(value, (str, list)):
            settings.data = [value] if isinstance(value, str) else [str(v) for v in value]
        elif key == "llamafactory_dirs" and isinstance(value, (str, list)):
            folders = [value] if isinstance(value, str) else value
            settings.llamafactory_dirs = [Path(str(v)).expanduser() for v in folders]
        elif key == "notify":
            settings.notify, wrong = parse_notify(value, f"{path}: notify")
            problems += wrong
        else:
            problems.append(f"{path}: {key}: unknown key or wrong type")
    settings.problem = "; ".join(problems) or None
    return settings
