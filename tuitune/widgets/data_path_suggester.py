"""DataPathSuggester: completes data file and folder paths in an Input (accept with → or End)."""

from __future__ import annotations

import asyncio
import os

from textual.suggester import Suggester

DATA_SUFFIXES = (".json", ".jsonl", ".ndjson")


def complete_data_path(value: str) -> str | None:
    """The first folder or JSON/JSONL file whose name extends the last part of ``value``.

    Folders get a trailing ``/``; hidden entries appear only once a dot is typed.
    """
    if not value or value.startswith("builtin:"):
        return None
    head, slash, prefix = value.rpartition("/")
    folder = os.path.expanduser(head or "/") if slash else "."
    try:
        entries = sorted(os.scandir(folder), key=lambda e: e.name)
    except OSError:
        return None
    for entry in entries:
        if not entry.name.startswith(prefix) or entry.name == prefix:
            continue
        if entry.name.startswith(".") and not prefix.startswith("."):
            continue
        is_dir = entry.is_dir()
        if is_dir or entry.name.endswith(DATA_SUFFIXES):
            return f"{head}{slash}{entry.name}{'/' if is_dir else ''}"
    return None


class DataPathSuggester(Suggester):
    """Suggests data files and folders while a path is typed (reads the folder off the event loop)."""

    def __init__(self) -> None:
        super().__init__(use_cache=False, case_sensitive=True)

    async def get_suggestion(self, value: str) -> str | None:
        """A completion of ``value``, or None."""
        return await asyncio.to_thread(complete_data_path, value)
