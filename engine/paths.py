"""Where tuitune keeps things on disk (XDG base directories). Standard library only."""

from __future__ import annotations

import os
import re
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


def settings_file() -> Path:
    """The user's settings file, ``$XDG_CONFIG_HOME/tuitune/settings.yaml`` (tuitune.settings reads it; the engine
    reads its ``notify`` section, engine.notify)."""
    return config_dir() / "settings.yaml"


SETTINGS_LIMIT = 64 * 1024
"""A settings file is a few lines; a larger one (or a FIFO, a device) is not read."""


def user_presets_dir() -> Path:
    """Presets the user saved; shipped presets live in the package and are read-only."""
    return config_dir() / "presets"


def runs_dir(given: str | os.PathLike[str] | None = None, configured: str | os.PathLike[str] | None = None) -> Path:
    """The parent of run folders, by one rule for every command and the app.

    ``--runs-dir`` (``given``) over ``$TUITUNE_RUNS_DIR`` over ``runs_dir`` in the settings file
    (``configured``) over ``$XDG_DATA_HOME/tuitune/runs``. Returned absolute, ``~`` expanded.
    """
    return choose_runs_dir(given, configured)[0]


def choose_runs_dir(given: str | os.PathLike[str] | None = None, configured: str | os.PathLike[str] | None = None,
                    configured_in: str = "the settings file") -> tuple[Path, str]:
    """:func:`runs_dir` and what chose it, for a message to name: ``--runs-dir``, ``$TUITUNE_RUNS_DIR``,
    ``runs_dir in <configured_in>`` or ``the default runs folder``."""
    env = os.environ.get("TUITUNE_RUNS_DIR")
    choices = ((given, "--runs-dir"), (env, "$TUITUNE_RUNS_DIR"), (configured, f"runs_dir in {configured_in}"))
    for choice, origin in choices:
        if choice:
            return Path(choice).expanduser().resolve(), origin
    return (_xdg("XDG_DATA_HOME", ".local/share") / APP_NAME / "runs").resolve(), "the default runs folder"


def pull_dir(repo_id: str, revision: str | None = None) -> Path:
    """The folder of the pull job of ``repo_id`` (ORG/NAME) at ``revision``: one per repo and revision, so a second
    pull of the same model finds the first (``$XDG_DATA_HOME/tuitune/pulls/ORG--NAME@REV``)."""
    repo, rev = (re.sub(r"[^\w.-]+", "-", part) for part in (repo_id.replace("/", "--"), revision or "main"))
    return (_xdg("XDG_DATA_HOME", ".local/share") / APP_NAME / "pulls" / f"{repo}@{rev}").resolve()


SYSTEM_FOLDERS = ("/", "/bin", "/boot", "/dev", "/etc", "/home", "/lib", "/lib32", "/lib64", "/media", "/mnt", "/opt",
                  "/proc", "/root", "/run", "/sbin", "/srv", "/sys", "/tmp", "/usr", "/var")
"""Folders of the system itself: never a run folder."""
SYSTEM_TREES = ("/bin", "/boot", "/dev", "/etc", "/lib", "/lib32", "/lib64", "/proc", "/sbin", "/sys", "/usr")
"""Folders whose whole tree is the system's own files: no run folder inside them either."""


def run_dir_problem(path: str | os.PathLike[str]) -> str | None:
    """Why ``path`` cannot be a new run's folder, or None.

    Refused: a control character in it (a newline would split every line that names the run), a system
    folder or one inside the system's own files (``/etc``, ``/usr/lib/x``), something that is not a folder,
    and a place this user cannot write. A folder that already holds files is refused when the run starts.
    """
    text = os.fspath(path)
    if any(ord(char) < 32 or ord(char) == 127 for char in text):
        return f"{text!r} holds a control character: a run folder's path must print on one line"
    folder = Path(text).expanduser().resolve()
    systems = {Path(name).resolve() for name in SYSTEM_FOLDERS}
    trees = {Path(name).resolve() for name in SYSTEM_TREES}
    if folder in systems or any(tree in folder.parents for tree in trees):
        return f"{folder} is a system folder; a run needs a folder of its own"
    if os.path.lexists(folder) and not os.path.isdir(folder):
        return f"{folder} exists and is not a folder"
    existing = next(parent for parent in (folder, *folder.parents) if os.path.isdir(parent))
    if not os.access(existing, os.W_OK | os.X_OK):
        made = "" if existing == folder else f", so {folder} cannot be made"
        return f"{existing} is not writable by this user{made}"
    return None


def demo_model_dir() -> Path:
    """The embedded demo model, converted once from its GGUF into a plain transformers folder."""
    return cache_dir() / "models" / "smollm2-135m-instruct"


def shipped_presets_dir() -> Path:
    """The presets shipped with tuitune: the repository's ``presets/``, installed as ``engine.shipped_presets``."""
    try:
        return Path(str(files("engine.shipped_presets")))
    except ModuleNotFoundError:  # running from a checkout that was never installed
        return Path(__file__).resolve().parent.parent / "presets"
