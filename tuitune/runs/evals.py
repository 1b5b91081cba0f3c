"""A run's evaluation jobs (``RUN/evals/NAME/``) as the app and ``tuitune eval`` read them. No Textual here.

Each job folder holds ``job.yaml``, its own ``events.jsonl`` (``job_started``, ``progress``, one
terminal event), ``metrics.json`` and ``predictions.jsonl`` (see ``engine/jobs/eval.py`` for their
fields). Reading never raises on a broken file: what cannot be read is said in ``problem`` or
skipped and counted, as for run folders.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.files import FileTooLarge, NotARegularFile, read_regular
from engine.protocol import JOB_FAILED, JOB_FINISHED, JOB_FOLDERS, JOB_STARTED, JOB_STOPPED, PROGRESS, TERMINAL_TYPES
from tuitune.runs.folder import engine_alive, read_meta
from tuitune.runs.tail import EventTail

EVALS_DIR = JOB_FOLDERS["eval"]
METRICS_FILE = "metrics.json"
PREDICTIONS_FILE = "predictions.jsonl"
MAX_METRICS_BYTES = 1 << 20
MAX_PREDICTIONS_BYTES = 256 << 20
"""Predictions read for browsing; a larger file is read up to here and the rest counted as cut."""
STATUS = {JOB_FINISHED: "finished", JOB_STOPPED: "stopped", JOB_FAILED: "failed"}
SIDES = ("base", "tuned")


@dataclass
class EvalJob:
    """One evaluation job as its folder tells it."""

    path: Path
    """The job folder, ``RUN/evals/NAME``."""
    started: dict[str, Any] | None = None
    """Its ``job_started`` event."""
    progress: dict[str, Any] | None = None
    """Its last ``progress`` event."""
    end: dict[str, Any] | None = None
    """Its terminal event, if it ended."""
    alive: bool = False
    """Whether a process of the job still holds its folder."""
    metrics: dict[str, Any] | None = None
    """``metrics.json``, once written."""
    problem: str | None = None
    """Why something of the folder could not be read."""

    @property
    def name(self) -> str:
        """The job's name: its folder's name."""
        return self.path.name

    @property
    def status(self) -> str:
        """running, finished, stopped, failed or lost (the process is gone without a terminal event)."""
        if self.end is not None:
            return STATUS.get(self.end["type"], "failed")
        return "running" if self.alive else "lost"

    @property
    def started_t(self) -> float:
        """When it started (from its events; the folder's time before the first one)."""
        t = (self.started or {}).get("t")
        if isinstance(t, (int, float)):
            return float(t)
        try:
            return self.path.stat().st_mtime
        except OSError:
            return 0.0


def read_job(job_dir: str | os.PathLike[str]) -> EvalJob:
    """Read one job folder: its events, whether it lives, its metrics."""
    job = EvalJob(Path(job_dir))
    tail = EventTail(job.path)
    for event in tail.read_all():
        kind = event["type"]
        if kind == JOB_STARTED:
            job.started, job.end = event, None
        elif kind == PROGRESS:
            job.progress = event
        elif kind in TERMINAL_TYPES:
            job.end = event
    job.alive = engine_alive(job.path)
    job.metrics, problem = read_metrics(job.path)
    job.problem = tail.error or problem
    return job


def list_jobs(run_dir: str | os.PathLike[str]) -> list[EvalJob]:
    """Every evaluation job of a run, newest first."""
    folder = Path(run_dir) / EVALS_DIR
    try:
        found = [p for p in folder.iterdir() if p.is_dir()]
    except OSError:
        return []
    return sorted((read_job(p) for p in found), key=lambda job: (job.started_t, job.name), reverse=True)


def read_metrics(job_dir: Path) -> tuple[dict[str, Any] | None, str | None]:
    """``metrics.json`` and, when it exists but cannot be used, why."""
    path = job_dir / METRICS_FILE
    try:
        data = json.loads(read_regular(path, MAX_METRICS_BYTES).decode("utf-8"))
    except FileNotFoundError:
        return None, None
    except (NotARegularFile, FileTooLarge) as exc:
        return None, str(exc)
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as exc:
        return None, f"{path}: {exc}"
    if not isinstance(data, dict):
        return None, f"{path}: not an object"
    return data, None


@dataclass
class Predictions:
    """The records of a ``predictions.jsonl``, with what could not be read."""

    records: list[dict[str, Any]] = field(default_factory=list)
    bad_lines: int = 0
    """Lines that were not a JSON object (a torn last line still being written is not counted)."""
    cut: bool = False
    """Whether the file was larger than MAX_PREDICTIONS_BYTES and only its start was read."""


def read_predictions(job_dir: str | os.PathLike[str], limit: int = MAX_PREDICTIONS_BYTES) -> Predictions:
    """The predictions written so far (complete lines only)."""
    path = Path(job_dir) / PREDICTIONS_FILE
    result = Predictions()
    try:
        if not path.is_file():  # a FIFO would block the reader for ever
            return result
        with open(path, "rb") as file:
            data = file.read(limit + 1)
    except OSError:
        return result
    result.cut = len(data) > limit
    for raw in data[:data.rfind(b"\n") + 1].splitlines():
        try:
            record = json.loads(raw)
        except (ValueError, RecursionError):
            record = None
        if isinstance(record, dict):
            result.records.append(record)
        elif raw.strip():
            result.bad_lines += 1
    return result


def describe_job_end(event: dict[str, Any]) -> str:
    """One line saying how a job ended."""
    kind = event.get("type")
    if kind == JOB_FINISHED:
        return f"finished: {event.get('records')} records"
    if kind == JOB_STOPPED:
        if event.get("killed"):
            return "killed on request"
        return (f"stopped during {event.get('phase') or 'start'} at {event.get('done') or 0} of "
                f"{event.get('total') or 0}")
    return f"failed: {event.get('cause')}"


def figure(value: Any, digits: int = 2) -> str:
    """A number for a table cell; ``-`` when it was not measured."""
    return f"{value:.{digits}f}" if isinstance(value, (int, float)) and not isinstance(value, bool) else "-"


COLUMNS = (("loss", "loss", 4), ("perplexity", "ppl", 2), ("bleu_4", "BLEU-4", 2), ("rouge_1", "ROUGE-1", 2),
           ("rouge_2", "ROUGE-2", 2), ("rouge_l", "ROUGE-L", 2))
"""The summary's columns: metrics.json key, header, decimals."""


def summary_rows(metrics: dict[str, Any]) -> list[tuple[str, ...]]:
    """The base and tuned rows of the summary table, each cell formatted."""
    rows = []
    for side in SIDES:
        values = metrics.get(side) if isinstance(metrics.get(side), dict) else {}
        rows.append((side, *(figure(values.get(key), digits) for key, _, digits in COLUMNS)))
    return rows


def summary_lines(metrics: dict[str, Any]) -> list[str]:
    """The summary as aligned text lines, for the terminal."""
    header = ("", *(title for _, title, _ in COLUMNS))
    rows = [header, *summary_rows(metrics)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    return ["  ".join(cell.rjust(width) if i else cell.ljust(width) for i, (cell, width) in enumerate(zip(row, widths)))
            for row in rows]


class EvalRefused(Exception):
    """Why an evaluation cannot start, one line each; ``code`` is ``tuitune eval``'s exit status for it."""

    def __init__(self, lines: list[str], code: int) -> None:
        super().__init__("\n".join(lines))
        self.lines = lines
        self.code = code


def start_eval(run_dir: Path, weights: Path, data: str, max_new_tokens: int = 128, limit: int | None = None,
               name: str | None = None) -> Path:
    """Start the evaluation job of ``weights`` (the run's adapter or one of its checkpoints) on ``data``, as
    ``tuitune eval`` and the app both do; its job folder.

    Raises:
        EvalRefused: a full fine-tune (code 1), data the evaluation would refuse, checked record by record as
            ``tuitune data check`` does, or a job that could not start (code 2).
    """
    from engine.data.checks import refusal_lines
    from tuitune.runs.launch import start_job

    if read_meta(run_dir).method == "full":
        raise EvalRefused([f"{run_dir.name} is a full fine-tune; evaluating one is not supported yet (it needs the "
                           "base and the tuned model loaded side by side)"], 1)
    data = str(Path(data).expanduser().resolve())
    if refused := refusal_lines([data], job="evaluation"):
        raise EvalRefused(refused, 2)
    settings = {"data": [data], "format": "auto", "adapter": str(weights.relative_to(run_dir)),
                "max_new_tokens": max_new_tokens, "limit": limit}
    try:
        return start_job(run_dir, "eval", settings, name)[0]
    except (OSError, RuntimeError, ValueError) as exc:
        raise EvalRefused([str(exc)], 2) from None
