"""App-wide messages: posted by one part of the app and handled by another.

Screens built by different people talk through these (the models screen posts
``ModelChosen``; the new-run flow takes it), so their fields are a contract. Every
message bubbles up to the app, which forwards choices to the new-run screen.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from textual.message import Message


@dataclass
class ModelChosen(Message):
    """The user picked a base model for a new run ("use for new run")."""

    name_or_path: str
    """Built-in alias, local model folder or hub id."""


@dataclass
class DataChosen(Message):
    """The user picked training data for a new run."""

    paths: list[str]
    """Data files or folders (or ``builtin:identity``)."""
    format: str = "auto"
    """Record layout: auto, alpaca, sharegpt or openai."""


@dataclass
class PresetChosen(Message):
    """The user picked a preset for a new run."""

    name: str
    """Preset name (shipped or user) or a path to a preset YAML file."""


@dataclass
class RunEventsRead(Message):
    """A batch of events read from a run folder's ``events.jsonl`` by the tailer.

    Every batch carries new events, so batches are never merged or dropped.
    """

    run_dir: Path
    """The run folder the events came from."""
    events: list[dict[str, Any]] = field(default_factory=list)
    """Complete events, in file order."""
    alive: bool | None = None
    """Whether the run's supervisor was alive at read time (None: not checked)."""

    def can_replace(self, message: Message) -> bool:
        """Never: each batch holds events the receiver has not seen yet."""
        return False


@dataclass
class EngineExited(Message):
    """A run's engine process is gone (seen by the tailer: no live supervisor)."""

    run_dir: Path
    """The run folder whose supervisor is no longer alive."""


@dataclass
class RunStarted(Message):
    """The app launched a new run; the dashboard for it should open."""

    run_dir: Path
    """The new run folder."""


@dataclass
class LogLinesRead(Message):
    """The latest lines of a run's ``engine.log`` (a tail, replacing the previous one)."""

    run_dir: Path
    """The run folder the log belongs to."""
    lines: list[str] = field(default_factory=list)
    """The last lines of the log, oldest first."""

    def can_replace(self, message: Message) -> bool:
        """A newer tail of the same log makes an unprocessed older one useless."""
        return isinstance(message, LogLinesRead) and message.run_dir == self.run_dir
