"""PathSuggester: completes a path typed in an Input (accept with → or End), off the event loop.

One suggester for every path box: the Data screen's (data files and folders) and the Models
screen's (model folders only, and only for what looks like a path, so hub ids get none).
"""

from __future__ import annotations

import asyncio
import os

from textual.suggester import Suggester

DATA_SUFFIXES = (".json", ".jsonl", ".ndjson")
"""Files the Data screen opens (folders are offered too: datasets folders, or to go deeper)."""


class PathSuggester(Suggester):
    """Suggests the first folder (or file with one of ``suffixes``) whose name extends what is typed.

    Folders get a trailing ``/``; hidden entries appear only once a dot is typed. The folder is
    read in a thread each time (no cache: folders change), never on the event loop.

    Args:
        suffixes: File name endings to offer besides folders (none: folders only).
        paths_only: Complete only values that start like a path (``/``, ``~`` or ``.``), so
            hub ids typed in the same box get no suggestion.
    """

    def __init__(self, suffixes: tuple[str, ...] = (), paths_only: bool = False) -> None:
        super().__init__(use_cache=False, case_sensitive=True)
        self.suffixes = suffixes
        self.paths_only = paths_only

    async def get_suggestion(self, value: str) -> str | None:
        """A completion of ``value``, or None."""
        return await asyncio.to_thread(self.complete, value)

    def complete(self, value: str) -> str | None:
        """A completion of ``value``, or None (blocking: reads a folder)."""
        if not value or value.startswith("builtin:") or (self.paths_only and not value.startswith(("/", "~", "."))):
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
            if is_dir or (self.suffixes and entry.name.endswith(self.suffixes)):
                return f"{head}{slash}{entry.name}{'/' if is_dir else ''}"
        return None
