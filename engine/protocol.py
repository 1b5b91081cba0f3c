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
    """The log of global rank ``rank``, relative to the run folder: ``engine.log`` for rank 0, else
    ``logs/rank-N.log``."""
    return LOG_FILE if rank == 0 else f"{LOGS_DIR}/rank-{rank}.log"

RUN_STARTED = "run_started"
PHASE = "phase"
LOG = "log"
STEP = "step"
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

Kind = str | dict[str, Any] | list[Any]
"""A field's type: ``int`` (a 64-bit integer), ``num`` (a number a float holds), ``finite`` (a number that is
not NaN or infinite: times), ``str``, ``bool``, an object's own field table (``{"*": kind}``: any keys, every
value of that kind), or a one-item list ``[kind]`` for an array of that kind. null is allowed everywhere
(it means "not known"); a field a table does not list is not checked."""
COMMON_FIELDS: dict[str, Kind] = {"v": "int", "seq": "int", "t": "finite", "type": "str"}
NUMBERS: dict[str, Kind] = {"*": "num"}
"""A map of named figures (TRL's metrics)."""
TRAINER_SUMMARY = frozenset({"train_runtime", "train_samples_per_second", "train_steps_per_second",
                             "train_tokens_per_second", "total_flos", "train_loss"})
"""The Trainer's speed and end-of-training figures (it adds them to its logs): not the stage's metrics,
so never under a ``log`` event's ``metrics`` (readers drop them from folders written before)."""
GPU_FIELDS: dict[str, Kind] = {"index": "int", "name": "str", "mem_used_bytes": "int", "mem_total_bytes": "int",
                               "util_pct": "num", "temp_c": "num"}
TERMINAL_FIELDS: dict[str, Kind] = {"step": "int", "train_loss": "num", "adapter_path": "str", "checkpoint_path": "str",
                                    "peak_memory_bytes": "int", "peak_memory_kind": "str", "killed": "bool",
                                    "node_rank": "int"}
FAILURE_FIELDS: dict[str, Kind] = {"cause": "str", "hint": "str", "errors": ["str"], "exit_code": "int",
                                   "signal": "str", "log_tail": ["str"], "rank": "int", "local_rank": "int",
                                   "log_path": "str"}
OUTPUT_FIELDS: dict[str, Kind] = {"name": "str", "path": "str", "bytes": "int"}
EVENT_FIELDS: dict[str, dict[str, Kind]] = {
    RUN_STARTED: {"run_name": "str", "stage": "str", "method": "str", "device": "str", "total_steps": "int",
                  "epochs": "num", "world_size": "int", "nnodes": "int", "node_rank": "int", "nproc": "int",
                  "gpus": ["int"], "resumed_from_step": "int", "pid": "int",
                  "model": {"name_or_path": "str", "resolved_path": "str", "architecture": "str", "dtype": "str",
                            "params_total": "int", "params_trainable": "int", "quant": "str"},
                  "data": {"train_records": "int", "eval_records": "int", "truncated": "int", "train_tokens": "int"}},
    PHASE: {"name": "str", "message": "str", "node_rank": "int"},
    LOG: {"step": "int", "total_steps": "int", "epoch": "num", "loss": "num", "lr": "num", "grad_norm": "num",
          "tokens_per_s": "num", "elapsed_s": "finite", "eta_s": "finite", "metrics": NUMBERS},
    STEP: {"step": "int", "total_steps": "int", "elapsed_s": "finite", "eta_s": "finite"},
    EVAL: {"step": "int", "epoch": "num", "eval_loss": "num", "metrics": NUMBERS},
    CHECKPOINT: {"step": "int", "path": "str"},
    SYSTEM: {"gpus": [GPU_FIELDS], "gpu_note": "str", "rss_bytes": "int", "cpu_pct": "num",
             "host_mem_used_bytes": "int", "host_mem_total_bytes": "int"},
    WARNING: {"message": "str", "code": "str", "node_rank": "int"},
    ALERT: {"kind": "str", "message": "str", "action": "str", "step": "int", "severity": "str", "stops": "bool"},
    SAMPLES: {"step": "int", "samples": [{"prompt": "str", "completion": "str", "reward": "num", "rewards": NUMBERS,
                                          "advantage": "num"}]},
    PAUSED: {},
    CONTINUED: {},
    RUN_FINISHED: TERMINAL_FIELDS,
    RUN_STOPPED: TERMINAL_FIELDS,
    RUN_FAILED: {**TERMINAL_FIELDS, **FAILURE_FIELDS},
    JOB_STARTED: {"kind": "str", "run_name": "str", "adapter": "str", "weights": "str", "device": "str", "pid": "int",
                  "repo_id": "str", "revision": "str", "commit": "str", "files": "int", "total_bytes": "int",
                  "download_bytes": "int",
                  "model": {"name_or_path": "str", "quant": "str", "dtype": "str", "architecture": "str",
                            "method": "str"},
                  "data": {"paths": ["str"], "format": "str", "records": "int", "evaluated": "int"},
                  "max_new_tokens": "int", "limit": "int", "destination": "str", "outputs": ["str"],
                  "needed_bytes": "int", "free_bytes": "int", "push": "str"},
    PROGRESS: {"phase": "str", "output": "str", "done": "int", "total": "int", "files_done": "int",
               "files_total": "int", "rate_bytes_per_s": "num", "eta_s": "finite"},
    JOB_FINISHED: {"metrics": {"base": NUMBERS, "tuned": NUMBERS}, "records": "int", "tokens": "int",
                   "total_bytes": "int", "download_bytes": "int",
                   "metrics_path": "str", "predictions_path": "str", "elapsed_s": "finite", "destination": "str",
                   "outputs": [OUTPUT_FIELDS],
                   "pushed": {"repo_id": "str", "url": "str", "commit": "str", "files": ["str"], "bytes": "int"}},
    JOB_STOPPED: {"phase": "str", "output": "str", "done": "int", "total": "int", "killed": "bool",
                  "metrics_path": "str", "predictions_path": "str", "outputs": [OUTPUT_FIELDS]},
    JOB_FAILED: FAILURE_FIELDS,
}
"""Every event type and the types of its fields (docs/run-folder.md describes them): the writer refuses a
field of the wrong type, the app's reader drops one (a file anyone can edit must not take it down)."""
EVENT_TYPES = frozenset(EVENT_FIELDS)
ALERT_KINDS = ("nan", "spike", "grad_norm", "stall", "no_signal", "gpu_memory", "gpu_temperature", "host_memory")
"""Every kind of ``alert`` the watchdog raises (engine.health.watchdog), as ``train.stop_on`` names them."""
TERMINAL_TYPES = frozenset({RUN_FINISHED, RUN_STOPPED, RUN_FAILED, JOB_FINISHED, JOB_STOPPED, JOB_FAILED})
"""Events that end an attempt (of training in the run folder, of a job in its own folder)."""
DOWNLOAD = "download"
"""The ``phase`` of a download's ``progress`` events: of a pull job, and of a run's ``downloading`` phase (one shape:
``done``/``total`` bytes, ``files_done``/``files_total``, ``rate_bytes_per_s``, ``eta_s``)."""
JOB_FOLDERS = {"eval": "evals", "export": "exports"}
"""Where each kind of job of a run keeps its folders: ``RUN/evals/NAME/``, ``RUN/exports/NAME/``."""


class EventFieldError(ValueError):
    """An event a writer was about to write has a field of the wrong type (a bug in the writer)."""


def checked_fields(event: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """``event`` without its fields of the wrong type (objects and arrays cleaned inside), and where each was:
    ``log.step``, ``system.gpus[0].index``. Common fields are checked for every event; the rest by its type."""
    out, bad = _checked_object(event, COMMON_FIELDS, "")
    kind = out.get("type")
    if isinstance(kind, str) and kind in EVENT_FIELDS:
        out, more = _checked_object(out, EVENT_FIELDS[kind], kind + ".")
        bad += more
    return out, bad


def _checked_object(obj: dict[str, Any], fields: dict[str, Kind], where: str) -> tuple[dict[str, Any], list[str]]:
    out, bad = dict(obj), []
    for key in list(out) if "*" in fields else [key for key in fields if key in out]:
        value, wrong = _checked(out[key], fields.get(key, fields.get("*")), f"{where}{key}")
        bad += wrong
        if value is _MISSING:
            del out[key]
        else:
            out[key] = value
    return out, bad


def _checked(value: Any, kind: Kind, where: str) -> tuple[Any, list[str]]:
    """``value`` if it is of ``kind`` (cleaned inside), else _MISSING; and where it or its parts were wrong."""
    if value is None:
        return value, []
    if isinstance(kind, dict):
        return _checked_object(value, kind, where + ".") if isinstance(value, dict) else (_MISSING, [where])
    if isinstance(kind, list):
        if not isinstance(value, list):
            return _MISSING, [where]
        items = [_checked(item, kind[0], f"{where}[{n}]") if item is not None else (_MISSING, [f"{where}[{n}]"])
                 for n, item in enumerate(value)]
        return [v for v, _ in items if v is not _MISSING], [w for _, wrong in items for w in wrong]
    return (value, []) if is_kind(value, kind) else (_MISSING, [where])


def is_kind(value: Any, kind: str) -> bool:
    """Whether ``value`` is a JSON string, boolean, int (a 64-bit one) or number (one a float can hold; finite if
    asked). Booleans are neither ints nor numbers here, though Python counts them as ints."""
    if kind == "str":
        return isinstance(value, str)
    if kind == "bool":
        return isinstance(value, bool)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    if kind == "int":
        return isinstance(value, int) and -(2**63) <= value < 2**63
    try:
        number = float(value)
    except OverflowError:  # a JSON integer too large for a float
        return False
    return kind == "num" or math.isfinite(number)


_MISSING = object()


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
        """Write one event of ``type`` with ``fields`` and return it as written.

        Raises:
            ValueError: an unknown type; :class:`EventFieldError`, a field of the wrong type (nothing written).
        """
        if type not in EVENT_TYPES:
            raise ValueError(f"unknown event type {type!r}")
        if os.fstat(self._file.fileno()).st_size != self._end:
            self._seq = max(self._seq, _tail_seq(self.path))
        self._seq += 1
        event = _finite({"v": SCHEMA_VERSION, "seq": self._seq, "t": round(time.time(), 3), "type": type, **fields})
        line = json.dumps(event, default=_jsonable, allow_nan=False)
        _, wrong = checked_fields(json.loads(line))  # what a reader will see: the JSON, not the Python values
        if wrong:
            self._seq -= 1
            raise EventFieldError(f"{type} event: wrong type for {', '.join(wrong)} (see engine.protocol.EVENT_FIELDS)")
        self._file.write(line + "\n")
        self._file.flush()
        self._end = os.fstat(self._file.fileno()).st_size
        return event

    def close(self) -> None:
        """Close the file; further ``emit`` calls fail."""
        self._file.close()

    def __enter__(self) -> EventWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _tail_seq(path: Path, window: int = 65536) -> int:
    """The highest ``seq`` among the complete lines at the end of ``path``: its last ``window`` bytes, or more
    when they hold no whole event. Sequence numbers only grow, so the end has the highest, and a history of
    hundreds of megabytes is never parsed to continue it."""
    with open(path, "rb") as file:
        size = file.seek(0, os.SEEK_END)
        while True:
            start = max(0, size - window)
            file.seek(start)
            lines = file.read(size - start).split(b"\n")[1 if start else 0:-1]  # cut first line; empty or torn last
            seqs = []
            for line in lines:
                try:
                    seq = json.loads(line).get("seq")
                except (ValueError, AttributeError, RecursionError):
                    continue
                if isinstance(seq, int):
                    seqs.append(seq)
            if seqs or start == 0:
                return max(seqs, default=0)
            window *= 4


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
    """The highest ``seq`` in an events file, 0 when it is missing, empty or not a file (read from its end)."""
    try:
        return _tail_seq(Path(path)) if stat.S_ISREG(os.stat(path).st_mode) else 0
    except OSError:
        return 0


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
