"""Models the user chose recently: ``$XDG_CONFIG_HOME/tuitune/recent_models.json``, newest first.

The file is a JSON list of ``{"name_or_path": …, "used": UNIX_TIME}``. A missing or broken file
reads as an empty list (it is only a convenience); writes replace it atomically.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from engine.config import write_text_atomic
from engine.paths import config_dir

FILE_NAME = "recent_models.json"
LIMIT = 10


def recent_models_path() -> Path:
    """Where the list lives."""
    return config_dir() / FILE_NAME


def load_recent() -> list[str]:
    """Recently used models, newest first; [] when the file is missing or unreadable."""
    try:
        entries = json.loads(recent_models_path().read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    if not isinstance(entries, list):
        return []
    names = [e.get("name_or_path") for e in entries if isinstance(e, dict)]
    return [name for name in names if isinstance(name, str) and name]


def add_recent(name_or_path: str, now: float | None = None) -> list[str]:
    """Put ``name_or_path`` first (once), keep the newest ``LIMIT``, save; returns the new list."""
    names = [name_or_path] + [n for n in load_recent() if n != name_or_path]
    names = names[:LIMIT]
    stamp = round(time.time() if now is None else now, 3)
    entries = [{"name_or_path": name, "used": stamp if name == name_or_path else None} for name in names]
    previous = _stamps()
    for entry in entries[1:]:
        entry["used"] = previous.get(entry["name_or_path"])
    write_text_atomic(recent_models_path(), json.dumps(entries, indent=1) + "\n")
    return names


def _stamps() -> dict[str, float | None]:
    try:
        entries = json.loads(recent_models_path().read_text(encoding="utf-8"))
        return {e["name_or_path"]: e.get("used") for e in entries if isinstance(e, dict) and "name_or_path" in e}
    except (OSError, ValueError, TypeError):
        return {}
