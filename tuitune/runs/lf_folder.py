"""A LLaMA-Factory output folder read as a tuitune run: its files turned into our events. No Textual.

LLaMA-Factory's ``LogCallback`` (src/llamafactory/train/callbacks.py) appends one JSON object per
``on_log`` to ``OUTPUT_DIR/trainer_log.jsonl``, written with ``json.dumps(logs)`` and keys with a
None value left out::

    {"current_steps": 10, "total_steps": 60, "loss": 1.8214, "lr": 9.5e-05, "epoch": 0.5,
     "percentage": 16.67, "elapsed_time": "0:00:41", "remaining_time": "0:03:25",
     "throughput": 1843.2, "total_tokens": 75520}

An evaluation's line has ``eval_loss`` and no ``loss``; the line after the last step (the
Trainer's summary) has neither. ``elapsed_time`` and ``remaining_time`` are ``str(timedelta)``
(``1 day, 2:03:04``), counted from the attempt's start; ``throughput`` is tokens a second since
that start. The Trainer's ``checkpoint-N/`` folders (``trainer_state.json`` in each, written with
the rest of the checkpoint), the root's ``trainer_state.json``, ``train_results.json`` and
``all_results.json`` (written when training ends) and, under the WebUI, ``running_log.txt`` (its
log, ``[INFO|2026-11-29 10:12:03] file.py:123 >> message``) complete the picture.

:class:`LFTail` follows such a folder like :class:`tuitune.runs.tail.EventTail` follows ours: it
remembers a byte offset into ``trainer_log.jsonl`` and holds back a last line that has no ``\\n``
yet, and it turns what it reads into events of our schema (docs/run-folder.md): ``run_started``
(with ``total_steps``) before the first line and again when the steps go back (a resume), ``log``,
``eval``, ``checkpoint`` for each complete ``checkpoint-N/`` and ``run_finished`` once the results
files are there. Times (``t``) are the attempt's start plus ``elapsed_time``; the start is taken
from the file's modification time when the attempt is first seen, less its elapsed time.

Nothing here ever writes into the folder: every file is opened for reading only.
"""

from __future__ import annotations

import json
import math
import os
import re
import stat
import time
from pathlib import Path
from typing import Any

from engine import protocol as p

Event = dict[str, Any]

TRAINER_LOG = "trainer_log.jsonl"
RUNNING_LOG = "running_log.txt"
TRAINER_STATE = "trainer_state.json"
RESULT_FILES = ("train_results.json", "all_results.json")
"""Written by LLaMA-Factory's workflow once training has ended (``trainer.save_metrics``)."""
CHUNK_BYTES = 1 << 20
MAX_JSON_BYTES = 16 << 20
"""Largest trainer_state.json or results file read (a long run's state is a few MiB)."""
KEPT_BAD_LINES = 100
_DURATION = re.compile(r"^(?:(\d+) days?, )?(\d+):(\d{2}):(\d{2})(?:\.\d+)?$")


def is_lf_folder(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is a LLaMA-Factory output folder: it has a ``trainer_log.jsonl`` that is a
    regular file, and no ``events.jsonl`` (a tuitune run folder)."""
    folder = Path(path)
    try:
        return stat.S_ISREG(os.stat(folder / TRAINER_LOG).st_mode) and not (folder / p.EVENTS_FILE).exists()
    except OSError:
        return False


def parse_duration(text: Any) -> float | None:
    """Seconds of a ``str(timedelta)`` such as ``0:01:23`` or ``2 days, 3:04:05``; None when not one."""
    match = _DURATION.match(text) if isinstance(text, str) else None
    if match is None:
        return None
    days, hours, minutes, seconds = (int(g or 0) for g in match.groups())
    return float(((days * 24 + hours) * 60 + minutes) * 60 + seconds)


class LFTail:
    """Reads new lines of a LLaMA-Factory folder's ``trainer_log.jsonl`` as events of our schema.

    Args:
        folder: The LLaMA-Factory output folder (``output_dir``).
    """

    def __init__(self, folder: str | os.PathLike[str]) -> None:
        self.folder = Path(folder)
        self.path = self.folder / TRAINER_LOG
        self.offset = 0
        """Byte offset just past the last complete line read."""
        self.bad_lines: list[str] = []
        """Complete lines that were not LLaMA-Factory log objects (the first KEPT_BAD_LINES)."""
        self.error: str | None = None
        """Why trainer_log.jsonl cannot be read at all, as of the last read."""
        self.finished = False
        """Whether run_finished was emitted (the results files appeared)."""
        self._seq = 0
        self._step = -1
        self._loss_step = -1
        self._start_t: float | None = None
        self._last_t: float | None = None
        self._elapsed: float | None = None
        self._tokens: tuple[float, float] | None = None
        self._checkpoints: set[int] = set()
        self._attempt_open = False

    # -- reading --------------------------------------------------------------------------------
    def read(self, max_bytes: int | None = CHUNK_BYTES) -> list[Event]:
        """The events of the lines appended since the last read, then of new checkpoints and the end."""
        data = self._read_bytes(max_bytes)
        end = data.rfind(b"\n") + 1
        lines = [line for line in data[:end].splitlines() if line.strip()]
        self.offset += end
        parsed = [self._parse(line) for line in lines]
        parsed = [line for line in parsed if line is not None]
        events: list[Event] = []
        grad_norms = self._grad_norms() if parsed else {}
        for i, line in enumerate(parsed):
            events.extend(self._line_events(line, parsed[i:], grad_norms))
        events.extend(self._checkpoint_events())
        events.extend(self._end_events())
        return events

    def read_all(self) -> list[Event]:
        """Every event not read yet."""
        events: list[Event] = []
        while batch := self.read():
            events.extend(batch)
        return events

    def _read_bytes(self, max_bytes: int | None) -> bytes:
        try:
            if not stat.S_ISREG(os.stat(self.path).st_mode):
                self.error = f"{self.path}: not a regular file"
                return b""
            with open(self.path, "rb") as file:
                file.seek(self.offset)
                data = file.read() if max_bytes is None else file.read(max_bytes)
                if max_bytes is not None and len(data) == max_bytes and b"\n" not in data:
                    data += file.read()  # one line longer than the chunk: read it whole rather than stall
        except FileNotFoundError:
            self.error = None
            return b""
        except OSError as exc:
            self.error = f"{self.path}: cannot read: {exc.strerror or exc}"
            return b""
        self.error = None
        return data

    def _parse(self, raw: bytes) -> dict[str, Any] | None:
        try:
            value = json.loads(raw)
        except (ValueError, RecursionError):
            value = None
        if isinstance(value, dict) and _is_int(value.get("current_steps")):
            return value
        if len(self.bad_lines) < KEPT_BAD_LINES:
            self.bad_lines.append(raw.decode("utf-8", "replace")[:500])
        return None

    # -- one line -------------------------------------------------------------------------------
    def _line_events(self, line: dict[str, Any], rest: list[dict[str, Any]],
                     grad_norms: dict[int, float]) -> list[Event]:
        step = line["current_steps"]
        total = line.get("total_steps") if _is_int(line.get("total_steps")) else None
        elapsed = parse_duration(line.get("elapsed_time"))
        events: list[Event] = []
        has_loss = _is_num(line.get("loss"))
        # The steps go back (or a step's loss comes twice) when training resumed from a checkpoint.
        if not self._attempt_open or step < self._step or (has_loss and step <= self._loss_step):
            events.append(self._started(step, total, elapsed, rest))
            self._attempt_open, self._loss_step = True, -1
        t = self._time(elapsed)
        if has_loss:
            self._loss_step = step
            events.append(self._log(line, step, total, elapsed, t, grad_norms.get(step)))
        if _is_num(line.get("eval_loss")):
            events.append(self._event(p.EVAL, t, step=step, epoch=_num(line.get("epoch")),
                                      eval_loss=line["eval_loss"]))
        self._step = step
        return events

    def _started(self, step: int, total: int | None, elapsed: float | None, rest: list[dict[str, Any]]) -> Event:
        """run_started for a new attempt: the first one, or a resume (the steps went back)."""
        resumed = None
        if self._attempt_open:  # the steps went back: a resume from the newest checkpoint before this line
            resumed = max((n for n in self._checkpoint_steps() if n < step), default=0)
        self._start_t = self._attempt_start(elapsed, rest)
        self._tokens = None
        adapter = self._adapter_config()
        method = "dora" if adapter.get("use_dora") else "lora" if adapter else None
        return self._event(p.RUN_STARTED, self._start_t, run_name=self.folder.name,
                           model={"name_or_path": adapter.get("base_model_name_or_path")}, method=method,
                           total_steps=total, resumed_from_step=resumed, device=None, source="llamafactory")

    def _log(self, line: dict[str, Any], step: int, total: int | None, elapsed: float | None, t: float | None,
             grad_norm: float | None) -> Event:
        fields: dict[str, Any] = {"step": step, "total_steps": total, "epoch": _num(line.get("epoch")),
                                  "loss": line["loss"], "lr": _num(line.get("lr")), "grad_norm": grad_norm,
                                  "tokens_per_s": self._tokens_per_s(line, elapsed), "elapsed_s": elapsed,
                                  "eta_s": parse_duration(line.get("remaining_time"))}
        metrics = {name: line[key] for key, name in (("accuracy", "rewards/accuracies"), ("reward", "reward"))
                   if _is_num(line.get(key))}
        if metrics:
            fields["metrics"] = metrics
        return self._event(p.LOG, t, **fields)

    def _tokens_per_s(self, line: dict[str, Any], elapsed: float | None) -> float | None:
        """Tokens a second since the previous log (ours), from total_tokens; LLaMA-Factory's throughput
        (an average since the start) when the totals cannot be compared."""
        tokens = line.get("total_tokens")
        rate = None
        if _is_num(tokens) and elapsed is not None:
            if self._tokens is not None and elapsed > self._tokens[1] and tokens >= self._tokens[0]:
                rate = (tokens - self._tokens[0]) / (elapsed - self._tokens[1])
            self._tokens = (float(tokens), elapsed)
        if rate is None and _is_num(line.get("throughput")):
            rate = float(line["throughput"])
        return round(rate, 2) if rate is not None else None

    # -- times ----------------------------------------------------------------------------------
    def _attempt_start(self, elapsed: float | None, rest: list[dict[str, Any]]) -> float | None:
        """The attempt's start: the log file's modification time less the elapsed time of the attempt's
        newest line read (``rest`` starts at the attempt's first line; a drop in steps ends the attempt)."""
        try:
            mtime = os.stat(self.path).st_mtime
        except OSError:
            return None
        newest, previous = elapsed, rest[0]["current_steps"] if rest else 0
        for line in rest:
            if line["current_steps"] < previous:
                break  # a later resume: its elapsed times restart
            previous = line["current_steps"]
            newest = parse_duration(line.get("elapsed_time")) or newest
        return round(mtime - (newest or 0.0), 3)

    def _time(self, elapsed: float | None) -> float | None:
        if self._start_t is None:
            return self._last_t
        t = round(self._start_t + (elapsed or 0.0), 3)
        self._last_t = max(t, self._last_t or t)
        return self._last_t

    # -- files beside the log -------------------------------------------------------------------
    def _checkpoint_steps(self) -> list[int]:
        """Steps of the checkpoint-N folders whose trainer_state.json is written (the checkpoint is whole)."""
        steps = []
        try:
            entries = list(os.scandir(self.folder))
        except OSError:
            return []
        for entry in entries:
            match = re.fullmatch(r"checkpoint-(\d+)", entry.name)
            if match and entry.is_dir() and (Path(entry.path) / TRAINER_STATE).is_file():
                steps.append(int(match.group(1)))
        return sorted(steps)

    def _checkpoint_events(self) -> list[Event]:
        events = []
        for step in self._checkpoint_steps():
            if step not in self._checkpoints:
                self._checkpoints.add(step)
                events.append(self._event(p.CHECKPOINT, self._last_t, step=step, path=f"checkpoint-{step}"))
        return events

    def _end_events(self) -> list[Event]:
        if self.finished or not self._attempt_open:
            return []
        results = next((r for r in (self._json(self.folder / name) for name in RESULT_FILES) if r), None)
        if results is None:
            return []
        self.finished = True
        adapter = "." if (self.folder / "adapter_config.json").is_file() else None
        return [self._event(p.RUN_FINISHED, self._last_t, step=self._step, train_loss=_num(results.get("train_loss")),
                            adapter_path=adapter, peak_memory_bytes=None, peak_memory_kind=None)]

    def _grad_norms(self) -> dict[int, float]:
        """Gradient norms by step from the newest trainer_state.json (trainer_log.jsonl has none)."""
        states = [self.folder / TRAINER_STATE] + [self.folder / f"checkpoint-{n}" / TRAINER_STATE
                                                  for n in reversed(self._checkpoint_steps())]
        for path in states:
            state = self._json(path)
            history = state.get("log_history") if state else None
            if isinstance(history, list):
                return {e["step"]: float(e["grad_norm"]) for e in history
                        if isinstance(e, dict) and _is_int(e.get("step")) and _is_num(e.get("grad_norm"))}
        return {}

    def _adapter_config(self) -> dict[str, Any]:
        """adapter_config.json of the folder or of its newest checkpoint ({} when there is none yet)."""
        for folder in [self.folder] + [self.folder / f"checkpoint-{n}" for n in reversed(self._checkpoint_steps())]:
            config = self._json(folder / "adapter_config.json")
            if config:
                return config
        return {}

    @staticmethod
    def _json(path: Path) -> dict[str, Any] | None:
        """A small JSON object file, or None when it is missing, not a regular file, too large or not JSON."""
        try:
            info = os.stat(path)
            if not stat.S_ISREG(info.st_mode) or info.st_size > MAX_JSON_BYTES:
                return None
            with open(path, "rb") as file:
                value = json.loads(file.read(MAX_JSON_BYTES + 1))
        except (OSError, ValueError, RecursionError):
            return None
        return value if isinstance(value, dict) else None

    def _event(self, type: str, t: float | None, **fields: Any) -> Event:
        self._seq += 1
        return {"v": p.SCHEMA_VERSION, "seq": self._seq, "t": t, "type": type,
                **{k: v for k, v in fields.items() if v is not None or k in ("resumed_from_step",)}}


def lf_events(folder: str | os.PathLike[str]) -> list[Event]:
    """Every event of a LLaMA-Factory output folder's history, as :class:`LFTail` gives them."""
    return LFTail(folder).read_all()


def log_file(folder: str | os.PathLike[str]) -> Path | None:
    """The folder's log for the log tail: ``running_log.txt`` (LLaMA-Factory's WebUI writes it), or None."""
    path = Path(folder) / RUNNING_LOG
    return path if path.is_file() else None


QUIET_S = 300.0
"""A folder whose logs have not changed for this long is taken as no longer training."""
FIND_DEPTH = 4
"""How deep output folders are looked for under a configured folder (``saves/MODEL/lora/sft``)."""


def find_lf_folders(root: str | os.PathLike[str], depth: int = FIND_DEPTH) -> list[Path]:
    """LLaMA-Factory output folders at most ``depth`` levels under ``root`` (checkpoints not entered)."""
    found: list[Path] = []
    level = [Path(root)]
    for _ in range(depth + 1):
        below: list[Path] = []
        for folder in level:
            if is_lf_folder(folder):
                found.append(folder)
                continue
            try:
                below += [child for child in folder.iterdir() if child.is_dir() and not child.name.startswith(
                    ("checkpoint-", "."))]
            except OSError:
                continue
        level = below
    return sorted(found)


def still_writing(folder: str | os.PathLike[str], quiet_s: float = QUIET_S) -> bool:
    """Whether the run wrote its logs within ``quiet_s`` seconds: the only sign of life it leaves."""
    last = last_activity(folder)
    return last is not None and time.time() - last < quiet_s


def last_activity(folder: str | os.PathLike[str]) -> float | None:
    """The newest modification time of the files a training LLaMA-Factory run writes to, or None.

    LLaMA-Factory leaves no lock or pid file, so whether it still trains can only be guessed
    from how recently it wrote; a reader decides how old is too old for its own use.
    """
    times = []
    for name in (TRAINER_LOG, RUNNING_LOG):
        try:
            times.append(os.stat(Path(folder) / name).st_mtime)
        except OSError:
            continue
    return max(times, default=None)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_num(value: Any) -> bool:
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:  # a JSON integer too large for a float
        return False


def _num(value: Any) -> float | None:
    return float(value) if _is_num(value) else None
