"""Where tuitune keeps things on disk (XDG base directories). Standard library only."""

from __future__ import annotations

import os
from importlib.resources import files
from pathlib import Path

APP_NAME = "tuitune"
DEMO_MODEL = "smollm2-135m-instruct"
"""The embedded demo model's alias, accepted wherever a model is named (see engine.models.demo)."""


def _xdg(variable: str, fallback: str) -> Path:
    value = os.environ.get(variable)
    return Path(value) if value else Path.home() / fallback


def cache_dir() -> Path:
    """Converted models and other things that can be rebuilt: ``$XDG_CACHE_HOME/tuitune``."""
    return _xdg("XDG_CACHE_HOME", ".cache") / APP_NAME


def config_dir() -> Path:
    """User settings and presets: ``$XDG_CONFIG_HOME/tuitune``."""
    return _xdg("XDG_CONFIG_HOME", ".config") / APP_NAME


def user_presets_dir() -> Path:
    """Presets the user saved; shipped presets live in the package and are read-only."""
    return config_dir() / "presets"


def runs_dir(given: str | os.PathLike[str] | None = None, configured: str | os.PathLike[str] | None = None) -> Path:
    """The parent of run folders, by one rule for every command and the app.

    ``--runs-dir`` (``given``) over ``$TUITUNE_RUNS_DIR`` over ``runs_dir`` in the settings file
    (``configured``) over ``$XDG_DATA_HOME/tuitune/runs``. Returned absolute, ``~`` expanded.
    """
    env = os.environ.get("TUITUNE_RUNS_DIR")
    for choice in (given, env, configured):
        if choice:
            return Path(choice).expanduser().resolve()
    return (_xdg("XDG_DATA_HOME", ".local/share") / APP_NAME / "runs").resolve()


def demo_model_dir() -> Path:
    """The embedded demo model, converted once from its GGUF into a plain transformers folder."""
    return cache_dir() / "models" / "smollm2-135m-instruct"


def shipped_presets_dir() -> Path:
    """The presets shipped with tuitune: the repository's ``presets/``, installed as ``engine.shipped_presets``."""
    try:
        return Path(str(files("engine.shipped_presets")))
    except ModuleNotFoundError:  # running from a checkout that was never installed
        return Path(__file__).resolve().parent.parent / "presets"
