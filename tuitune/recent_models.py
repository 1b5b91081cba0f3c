"""Models the user chose recently: ``$XDG_CONFIG_HOME/tuitune/recent_models.json``, newest first.

The file is a JSON list of ``{"name_or_path": …, "used": UNIX_TIME}``. A missing or broken file
reads as an empty list (it is only a convenience); writes replace it atomically.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from engine.files import write_text_atomic
from engine.paths import config_dir

FILE_NAME = "recent_models.json"
LIMIT = 10


def recent_models_path() -> Path:
    """Where the list lives."""
    return config_dir() / FILE_NAME


def load_recent() -> list[str]:
    """Recently used models, newest first; [] when the file is missing or unreadable."""
    return [entry["name_or_path"] for entry in _entries()]


def add_recent(name_or_path: str, now: float | None = None) -> list[str]:
    """Put ``name_or_path`` first (once), keep the newest ``LIMIT``, save; returns the new list."""
    stamp = round(time.time() if now is None else now, 3)
    entries = [{"name_or_path": name_or_path, "used": stamp}]
    entries += [e for e in _entries() if e["name_or_path"] != name_or_path]
    entries = entries[:LIMIT]
    write_text_atomic(recent_models_path(), json.dumps(entries, indent=1) + "\n")
    return [entry["name_or_path"] for entry in entries]


def _entries() -> list[dict]:
    """The file's well-formed entries, in file order."""
    try:
        data = json.loads(recent_models_path().read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    if not isinstance(data, list):
        return []
    return [{"name_or_path": e["name_or_path"], "used": e.get("used")} for e in data
            if isinstance(e, dict) and isinstance(e.get("name_or_path"), str) and e["name_or_path"]]
