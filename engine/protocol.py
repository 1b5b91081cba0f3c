"""The run folder's event stream: schema, writer and reader. Standard library only.

``events.jsonl`` holds one JSON object per line, appended and flushed one at a time by the
engine (the trainer and its supervisor) and only read by everything else. Every event carries
``v`` (schema version), ``seq`` (1, 2, 3 … across the whole life of the run, resumes included),
``t`` (Unix time) and ``type``. Fields may be added; renaming one bumps ``SCHEMA_VERSION``.
See ``docs/run-folder.md`` for every type and field.
"""

from __future__ import annotations

import json
import math
import os
import stat
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SCHEMA_VERSION = 1

EVENTS_FILE = "events.jsonl"
CONFIG_FILE = "config.yaml"
LOG_FILE = "engine.log"
PIDS_FILE = "pids.json"
JOB_FILE = "job.yaml"
"""What a job (evaluation, export) was asked to do, written into its folder before it starts."""
CHECKPOINTS_DIR = "checkpoints"
ADAPTER_DIR = "adapter"
LOGS_DIR = "logs"
"""Output of every trainer process but global rank 0 (whose output is engine.log), one file per rank."""
NODE_FILE = "node.json"
"""Which node of a several-machine run this folder belongs to (written by its supervisor)."""
PEER_LOST = 3
"""Exit status of a trainer rank whose collective failed because another rank went away: the supervisor
does not name such a rank as the cause of a failure."""


def rank_log(rank: int) -> str:
    """The log of global rank ``rank``, relative to the run folder: ``engine.log`` for rank 0, else ``logs/rank-N.log``."""
    return LOG_FILE if rank == 0 else f"{LOGS_DIR}/rank-{rank}.log"

RUN_STARTED = "run_started"
PHASE = "phase"
LOG = "log"
EVAL = "eval"
CHECKPOINT = "checkpoint"
SYSTEM = "system"
WARNING = "warning"
RUN_FINISHED = "run_finished"
RUN_STOPPED = "run_stopped"
RUN_FAILED = "run_failed"
JOB_STARTED = "job_started"
PROGRESS = "progress"
JOB_FINISHED = "job_finished"
JOB_STOPPED = "job_stopped"
JOB_FAILED = "job_failed"
ALERT = "alert"
PAUSED = "paused"
CONTINUED = "continued"
SAMPLES = "samples"

EVENT_TYPES = frozenset(
    {RUN_STARTED, PHASE, LOG, EVAL, CHECKPOINT, SYSTEM, WARNING, RUN_FINISHED, RUN_STOPPED, RUN_FAILED,
     JOB_STARTED, PROGRESS, JOB_FINISHED, JOB_STOPPED, JOB_FAILED, ALERT, PAUSED, CONTINUED, SAMPLES}
)
TERMINAL_TYPES = frozenset({RUN_FINISHED, RUN_STOPPED, RUN_FAILED, JOB_FINISHED, JOB_STOPPED, JOB_FAILED})
"""Events that end an attempt (of training in the run folder, of a job in its own folder)."""
JOB_FOLDERS = {"eval": "evals", "export": "exports"}
"""Where each kind of job of a run keeps its folders: ``RUN/evals/NAME/``, ``RUN/exports/NAME/``."""


class EventWriter:
    """Appends events to a run's ``events.jsonl``, continuing the sequence numbers already there.

    One line is written with a single ``write`` on a file opened in append mode and flushed
    at once, so a reader never sees two events interleaved and at worst sees a torn last line.
    Two writers may share a file (the trainer, and its supervisor writing ``paused`` or an
    ``alert``): a writer that finds the file grown since its own last line reads the sequence
    number on from there.
    """

    def __init__(self, run_dir: str | os.PathLike[str]) -> None:
        self.path = Path(run_dir) / EVENTS_FILE
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._seq = last_seq(self.path)
        self._file = open(self.path, "a", encoding="utf-8")
        if _ends_torn(self.path):
            # A writer died mid-line: end that fragment so our first event is a line of its own.
            self._file.write("\n")
            self._file.flush()
        self._end = os.fstat(self._file.fileno()).st_size
        """The file's size after our last line: larger later means another writer wrote."""

    def emit(self, type: str, **fields: Any) -> dict[str, Any]:
        """Write one event of ``type`` with ``fields`` and return it as written."""
        if type not in EVENT_TYPES:
            raise ValueError(f"unknown event type {type!r}")
        if os.fstat(self._file.fileno()).st_size != self._end:
            self._seq = max(self._seq, _tail_seq(self.path))
        self._seq += 1
        event = {"v": SCHEMA_VERSION, "seq": self._seq, "t": round(time.time(), 3), "type": type, **fields}
        event = _finite(event)
        self._file.write(json.dumps(event, default=_jsonable, allow_nan=False) + "\n")
        self._file.flush()
        self._end = os.fstat(self._file.fileno()).st_size
        return event

    def close(self) -> None:
        """Close the file; further ``emit`` calls fail."""
        self._file.close()

    def __enter__(self) -> "EventWriter":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _tail_seq(path: Path, window: int = 65536) -> int:
    """The highest ``seq`` among the complete lines in the last ``window`` bytes of ``path``."""
    with open(path, "rb") as file:
        file.seek(0, os.SEEK_END)
        file.seek(max(0, file.tell() - window))
        lines = file.read().split(b"\n")[1:-1]  # the first may be cut; the last is empty or torn
    seqs = []
    for line in lines:
        try:
            seq = json.loads(line).get("seq")
        except (ValueError, AttributeError):
            continue
        if isinstance(seq, int):
            seqs.append(seq)
    return max(seqs, default=0)


def _ends_torn(path: Path) -> bool:
    """Whether the file is non-empty and its last byte is not a newline."""
    with open(path, "rb") as file:
        file.seek(0, os.SEEK_END)
        if file.tell() == 0:
            return False
        file.seek(-1, os.SEEK_END)
        return file.read(1) != b"\n"


def _finite(value: Any) -> Any:
    """Replace NaN and infinities (a diverged loss, say) with null: JSON has no such numbers."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(item) for item in value]
    return value


def _jsonable(value: Any) -> Any:
    """Turn the odd non-JSON value (a Path, a numpy or torch scalar) into plain JSON."""
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if hasattr(value, "item"):
        return value.item()
    return str(value)


@dataclass
class ReadResult:
    """Events parsed from a byte range of ``events.jsonl`` and where the next read starts."""

    events: list[dict[str, Any]]
    offset: int
    """Byte offset just past the last complete line consumed."""
    bad_lines: list[str]
    """Complete lines that were not events (not JSON, not an object, no string ``type``): kept to
    report, never fatal."""
    error: str | None = None
    """Why the file could not be read at all (a folder, a FIFO, no permission), or None."""


def read_events_from(path: str | os.PathLike[str], offset: int = 0, max_bytes: int | None = None) -> ReadResult:
    """Read complete event lines of ``path`` starting at byte ``offset``.

    A last line without its ``\\n`` is still being written: it is left for the next call, and
    ``offset`` stops before it. A missing file reads as no events; one that is not a regular file
    (a FIFO would block the reader for ever) or cannot be read reads as no events and an ``error``.
    """
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):
            return ReadResult([], offset, [], f"{path}: not a regular file")
        with open(path, "rb") as file:
            file.seek(offset)
            data = file.read() if max_bytes is None else file.read(max_bytes)
    except FileNotFoundError:
        return ReadResult([], offset, [])
    except OSError as exc:
        return ReadResult([], offset, [], f"{path}: cannot read: {exc.strerror or exc}")
    end = data.rfind(b"\n") + 1
    events: list[dict[str, Any]] = []
    bad: list[str] = []
    for raw in data[:end].splitlines():
        if not raw.strip():
            continue
        try:
            event = json.loads(raw)
        except (ValueError, RecursionError):
            event = None
        if isinstance(event, dict) and isinstance(event.get("type"), str):
            events.append(event)
        else:
            bad.append(raw.decode("utf-8", "replace")[:500])
    return ReadResult(events, offset + end, bad)


def read_events(run_dir: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Every complete event of a run folder, in order."""
    return read_events_from(Path(run_dir) / EVENTS_FILE).events


def last_seq(path: str | os.PathLike[str]) -> int:
    """The highest ``seq`` in an events file, 0 when it is missing or empty."""
    events = read_events_from(path).events
    return max((e["seq"] for e in events if isinstance(e.get("seq"), int)), default=0)


def terminal_event(events: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The last finished/stopped/failed event after the last ``run_started``, if any.

    A resumed run starts again after an earlier terminal event, so only events after the
    latest ``run_started`` count.
    """
    for event in reversed(events):
        if event["type"] in TERMINAL_TYPES:
            return event
        if event["type"] == RUN_STARTED:
            return None
    return None


def read_log_tail(run_dir: str | os.PathLike[str], lines: int = 40, max_bytes: int = 16384,
                  name: str = LOG_FILE) -> list[str]:
    """The last ``lines`` lines of the run's ``engine.log`` (or another log ``name`` in the folder; reads at
    most ``max_bytes`` from the end).

    Carriage-return progress redraws are collapsed to their final state.
    """
    path = Path(run_dir) / name
    try:
        with open(path, "rb") as file:
            file.seek(0, os.SEEK_END)
            size = file.tell()
            file.seek(max(0, size - max_bytes))
            data = file.read()
    except OSError:
        return []
    text = data.decode("utf-8", "replace")
    if size > max_bytes:
        text = text.split("\n", 1)[-1]
    out = [line.rstrip("\r").rsplit("\r", 1)[-1] for line in text.split("\n")]
    while out and not out[-1].strip():
        out.pop()
    return out[-lines:]
