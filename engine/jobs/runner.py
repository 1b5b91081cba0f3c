"""What every long job of a run (evaluation, export) does around its work: ``run_job``.

A job is ``python -m engine KIND --job-dir RUN/<kind>s/NAME``, started by the supervisor with
SIGTERM/SIGINT blocked. ``run_job`` installs the stop handler, unblocks the signals, reads nothing
itself, and turns the work's end into the job's one terminal event: ``job_stopped`` when a stop was
asked for (what the job says about it comes from its own ``stopped`` callback), ``job_failed`` with
the cause, hint, located errors and the log's tail for any exception.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import transformers
import yaml
from pydantic import BaseModel, ValidationError

from engine.config import RunConfig, load_config
from engine.protocol import CONFIG_FILE, JOB_FAILED, JOB_FILE, JOB_STOPPED, EventWriter, read_log_tail
from engine.supervisor.failures import JOB, Failure, describe_failure

HANDLED_SIGNALS = (signal.SIGTERM, signal.SIGINT)
Settings = TypeVar("Settings", bound=BaseModel)


class JobError(Failure):
    """The job cannot run as asked; ``cause`` is one line, ``errors`` locate each problem."""


class Stopped(Exception):
    """A stop was asked for; raised where the job checks (between records, tensors or tokens)."""


@dataclass
class StopFlag:
    """Set by SIGTERM/SIGINT; checked by the job, and through ``event`` inside long loops."""

    event: threading.Event = field(default_factory=threading.Event)

    def request(self, *_: object) -> None:
        """Signal handler: remember the stop; the job answers at the next check."""
        self.event.set()

    def check(self) -> None:
        """Raise :class:`Stopped` when a stop was asked for."""
        if self.event.is_set():
            raise Stopped


def run_job(argv: list[str], kind: str, description: str,
            work: Callable[[Path, EventWriter, StopFlag], None],
            stopped: Callable[[Path], dict[str, Any]],
            failure: Callable[[BaseException], dict[str, Any]] | None = None) -> int:
    """``python -m engine KIND --job-dir DIR``: run ``work`` and write the job's terminal event on a stop or a failure.

    Args:
        work: the whole job; it writes ``job_started``, its progress and ``job_finished`` itself.
        stopped: the fields of ``job_stopped`` (besides ``killed``), from what the job has done so far.
        failure: ``cause``, ``hint`` and ``errors`` of an exception (default :func:`job_failure`).
    Returns:
        The process exit code: 0 when finished or stopped, 1 when failed.
    """
    parser = argparse.ArgumentParser(prog=f"python -m engine {kind}", description=description)
    parser.add_argument("--job-dir", required=True, type=Path)
    job_dir = parser.parse_args(argv).job_dir.resolve()
    flag = StopFlag()
    for sig in HANDLED_SIGNALS:
        signal.signal(sig, flag.request)
    # The supervisor starts its child with these blocked, so a stop sent while torch imported waited here.
    signal.pthread_sigmask(signal.SIG_UNBLOCK, HANDLED_SIGNALS)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(name)s %(message)s")
    transformers.utils.logging.disable_progress_bar()
    with EventWriter(job_dir) as events:
        try:
            work(job_dir, events, flag)
            return 0
        except Stopped:
            events.emit(JOB_STOPPED, **stopped(job_dir), killed=False)
            return 0
        except BaseException as exc:  # every failure must become an event
            traceback.print_exc()
            sys.stderr.flush()
            events.emit(JOB_FAILED, **(failure or job_failure)(exc), exit_code=1, signal=None,
                        log_tail=read_log_tail(job_dir, lines=30))
            return 1


def read_job_settings(job_dir: Path, model: type[Settings]) -> Settings:
    """The job's ``job.yaml``, validated against ``model``.

    Raises:
        JobError: the file is missing, not YAML, or asks for something unknown or inconsistent.
    """
    path = job_dir / JOB_FILE
    try:
        return model.model_validate(yaml.safe_load(path.read_text(encoding="utf-8")))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise JobError(f"cannot read {path}: {exc}") from exc
    except ValidationError as exc:
        errors = [f"{path} {'.'.join(str(p) for p in e['loc']) or '(top)'}: {e['msg']}" for e in exc.errors()]
        raise JobError("the job's settings are invalid", errors) from exc


def read_run_config(job_dir: Path) -> tuple[Path, RunConfig]:
    """The run folder of a job folder ``RUN/<kind>s/NAME`` and the run's resolved ``config.yaml``."""
    run_dir = job_dir.parent.parent
    if not (run_dir / CONFIG_FILE).is_file():
        raise JobError(f"{run_dir} is not a run folder (no {CONFIG_FILE}); a job lives in "
                       f"RUN/{job_dir.parent.name}/{job_dir.name}")
    return run_dir, load_config(run_dir / CONFIG_FILE)


def job_failure(exc: BaseException) -> dict[str, Any]:
    """``cause``, ``hint`` and ``errors`` for an exception that ended a job, in a job's words."""
    return describe_failure(exc, JOB)
