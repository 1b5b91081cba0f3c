"""How a process of a run ended badly, in words: one description for the trainer, the jobs and the supervisor.

A trainer (engine.recipes.runner) or a job (engine.jobs.runner) that fails writes ``run_failed`` or
``job_failed`` itself, with the ``cause``, ``hint`` and located ``errors`` of :func:`describe_failure`.
A process that dies without a word (a signal, the OOM killer) is described by its supervisor
(engine.supervisor.launch) with :func:`describe_exit` and the hint of :data:`SIGNAL_HINTS`. The
same failure reads the same whichever process met it; only the advice differs between training and a
job (:data:`TRAINING`, :data:`JOB`), since a run resumes from its checkpoint and a job starts again.
No ML stack here: the out-of-memory error is recognised through torch only when torch is loaded.
"""

from __future__ import annotations

import errno
import signal
import sys
from dataclasses import dataclass
from typing import Any

ONEDNN_ISA = "AVX512_CORE_BF16"
"""oneDNN ISA cap set for a child when the user has not set one: without it, a bf16 matmul on some
CPUs (those advertising AMX/AVX512-FP16 paths oneDNN mis-dispatches) dies with SIGILL instead of running."""
SIGNAL_HINTS = {
    "SIGILL": f"illegal CPU instruction, usually a bf16 matmul on a CPU without support: set "
              f"ONEDNN_MAX_CPU_ISA={ONEDNN_ISA} (or lower) or use train.precision fp32",
    "SIGKILL": "killed with SIGKILL: most likely out of memory (the kernel's OOM killer; see `dmesg`) "
               "or killed by hand (tuitune stop --kill)",
    "SIGSEGV": "the trainer crashed (segmentation fault), often in a native kernel (CUDA, bitsandbytes)",
    "SIGBUS": "bus error: often /dev/shm or the disk ran out of space",
    "SIGTERM": "terminated by SIGTERM before it could save",
}
"""What to do about a process that died of a signal, by the signal's name."""


class Failure(Exception):
    """A failure the process can describe itself: ``cause`` is one line, ``errors`` locate each problem."""

    def __init__(self, cause: str, errors: list[str] | None = None, hint: str | None = None) -> None:
        super().__init__(cause)
        self.cause, self.errors, self.hint = cause, errors or [], hint


class DiskFull(OSError):
    """A save that would not fit on the disk; the message says where, how much is free and needed."""


@dataclass(frozen=True)
class Advice:
    """How one kind of process words a failure's cause and what to do next."""

    config: str
    """The cause when the run's config is invalid."""
    data: str
    """The cause when the data has problems."""
    data_hint: str | None
    model_hint: str
    disk_hint: str
    memory_hint: str


TRAINING = Advice(
    config="the run config is invalid", data="the training data has problems", data_hint=None,
    model_hint="check model.name_or_path: a local folder with config.json, a hub id (needs network) or an alias",
    disk_hint="free some space (or move the runs folder with --runs-dir), then resume: the last complete "
              "checkpoint is kept",
    memory_hint="lower train.batch_size or data.cutoff_len, turn on gradient_checkpointing, or use quant.mode 4bit")
"""The trainer's words: a run resumes from its last complete checkpoint."""
JOB = Advice(
    config="the run's config.yaml is invalid", data="the data has problems", data_hint="run `tuitune data check` on it",
    model_hint="check the run's model.name_or_path: the model it trained on must still be readable here",
    disk_hint="free some space and start the job again",
    memory_hint="run the job on a larger GPU, or ask it for less")
"""A job's words (evaluation, export): a job starts again from the beginning."""


def describe_failure(exc: BaseException, advice: Advice) -> dict[str, Any]:
    """``cause``, ``hint`` and ``errors`` for an exception that ended a process, by its type."""
    # Imported here: the supervisor, which starts in a blink, reads only the signal hints.
    from engine.config import ConfigError
    from engine.data.problems import DataError
    from engine.models.info import ModelError

    if isinstance(exc, Failure):
        return {"cause": exc.cause, "hint": exc.hint, "errors": list(exc.errors)}
    if isinstance(exc, ConfigError):
        return {"cause": advice.config, "hint": None, "errors": list(exc.problems)}
    if isinstance(exc, DataError):
        return {"cause": advice.data, "hint": advice.data_hint, "errors": [str(p) for p in exc.problems]}
    if isinstance(exc, ModelError):
        return {"cause": first_line(exc), "hint": advice.model_hint, "errors": []}
    if isinstance(exc, FileExistsError):
        return {"cause": str(exc), "hint": None, "errors": []}
    if isinstance(exc, DiskFull):
        return {"cause": str(exc), "hint": advice.disk_hint, "errors": []}
    if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
        return {"cause": f"no space left on the disk: {exc}", "hint": advice.disk_hint, "errors": []}
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(exc, torch.OutOfMemoryError):
        return {"cause": "out of GPU memory", "hint": advice.memory_hint, "errors": []}
    return {"cause": f"{type(exc).__name__}: {first_line(exc)}", "hint": None, "errors": []}


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message (its type's name when it has none)."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def signal_name(number: int) -> str:
    """``SIGKILL`` for 9 (``signal 99`` for a number no signal has)."""
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def describe_exit(returncode: int) -> str:
    """``code 1`` or ``signal SIGKILL`` for a Popen return code."""
    return f"signal {signal_name(-returncode)}" if returncode < 0 else f"code {returncode}"
