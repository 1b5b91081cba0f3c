"""PathSuggester: completes a typed folder path inside an Input (accept with → or End)."""

from __future__ import annotations

import os
from pathlib import Path

from textual.suggester import Suggester


def complete_path(value: str) -> str | None:
    """The first folder whose name extends the last part of ``value``, with a trailing /.

    Only values that look like paths (starting with /, ~ or .) are completed, so hub ids
    typed in the same box get no suggestion. Hidden folders appear only once a dot is typed.
    """
    if not value.startswith(("/", "~", ".")):
        return None
    head, _, prefix = value.rpartition("/")
    folder = Path(os.path.expanduser(head or "/")) if "/" in value else Path(".")
    try:
        names = sorted(e.name for e in os.scandir(folder) if e.is_dir() and e.name.startswith(prefix))
    except OSError:
        return None
    names = [n for n in names if prefix.startswith(".") or not n.startswith(".")]
    if not names or (names[0] == prefix and len(names) == 1):
        return None
    name = names[0] if names[0] != prefix else names[1] if len(names) > 1 else names[0]
    return f"{head}/{name}/" if "/" in value else f"{name}/"


class PathSuggester(Suggester):
    """Suggests folder names while a path is typed; reads the folder each time (no cache)."""

    def __init__(self) -> None:
        super().__init__(use_cache=False, case_sensitive=True)

    async def get_suggestion(self, value: str) -> str | None:
        """A completion of ``value``, or None."""
        return complete_path(value)
