"""The supervisor of every long job of a run. No ML stack: it starts in a blink and never holds GPU memory.

``python -m engine launch --run-dir RUN [--resume]`` supervises a training attempt of RUN;
``python -m engine launch --job KIND --job-dir RUN/<kind>s/NAME`` supervises another long job
of the run (evaluation, export; see ``JOBS``) in a folder of its own, with its own
``events.jsonl`` and ``engine.log``.

The app (or a ``tuitune`` command) starts this in a new session with stdout/stderr appended to
the folder's engine.log, so it outlives the terminal. It first takes the folder's lock
(:mod:`engine.locks`): a second attempt in the same folder exits at once with ``LOCKED``. It
records its pid and its child's in pids.json, runs the job (``python -m engine VERB``) as its
child, hands it the lock, and waits. A child that dies without writing a terminal event
(SIGKILL from the OOM killer, SIGILL from a bf16 matmul, a segfault in a CUDA kernel,
``os._exit``) cannot say so itself; the supervisor then appends the job's failure event with
the exit code, signal name, a hint and the last lines of engine.log.

Signals: the supervisor ignores SIGINT, SIGUSR1 and SIGHUP and forwards SIGTERM to its child
(``tuitune stop`` signals the whole process group, so the child usually hears it directly too).
SIGUSR2 asks it to kill the child at once (``tuitune stop --kill``), which it then records as a
stop on request (``killed: true``), not a failure. SIGTSTP pauses a trainer (``tuitune pause``:
SIGSTOP to it, the model stays loaded and the compute is free) and SIGCONT continues it
(``tuitune continue``); the supervisor writes the ``paused`` and ``continued`` events, since the
trainer cannot while it is stopped. A stop of a paused run continues it first, so it can save.

While a trainer runs, the supervisor also watches its events (:mod:`engine.watchdog`) and writes
``alert`` events: a loss that is not a number or spikes, exploding gradients, a stall, GPU
memory or temperature, host memory. An alert whose kind ``train.stop_on`` names stops the run
as ``tuitune stop`` would (checkpoint and adapter saved).
The child starts with SIGTERM/SIGINT/SIGUSR1 blocked; the trainer (engine.recipes.runner)
unblocks them once its handlers are installed, so a stop sent while torch imports is not lost.

Several GPUs are not a matter of swapping the child's command: under torchrun a signal to the
process group never reaches the workers (they run in sessions of their own), so stop, save-now
and kill need their own delivery; that is the multi-GPU issue's work, not a one-line change.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from engine.checkpoints import latest_checkpoint
from engine.files import write_text_atomic
from engine.locks import FolderLock
from engine.protocol import (ALERT, CONTINUED, EVENTS_FILE, JOB_FAILED, JOB_STOPPED, LOG, PAUSED, PIDS_FILE, RUN_FAILED,
                             RUN_STOPPED, TERMINAL_TYPES)
from engine.protocol import EventWriter, read_events_from, read_log_tail
from engine.watchdog import STALL_FLOOR_S, Alert, Watchdog

CHILD_BLOCKED = (signal.SIGTERM, signal.SIGINT, signal.SIGUSR1)
PR_SET_PDEATHSIG = 1
_prctl = getattr(ctypes.CDLL(None, use_errno=True), "prctl", None) if sys.platform.startswith("linux") else None
WATCH_S = 1.0
"""Seconds between the supervisor's looks at the run's new events (and for a stall)."""
LOCKED = 75
"""Exit status of a supervisor that found its folder locked by another attempt (EX_TEMPFAIL)."""
ONEDNN_ISA = "AVX512_CORE_BF16"
"""oneDNN ISA cap set for the child when the user has not set one: without it, a bf16
matmul on some CPUs (those advertising AMX/AVX512-FP16 paths oneDNN mis-dispatches) dies
with SIGILL instead of running."""

HINTS = {
    "SIGILL": f"illegal CPU instruction, usually a bf16 matmul on a CPU without support: set "
              f"ONEDNN_MAX_CPU_ISA={ONEDNN_ISA} (or lower) or use train.precision fp32",
    "SIGKILL": "killed with SIGKILL: most likely out of memory (the kernel's OOM killer; see `dmesg`) "
               "or killed by hand (tuitune stop --kill)",
    "SIGSEGV": "the trainer crashed (segmentation fault), often in a native kernel (CUDA, bitsandbytes)",
    "SIGBUS": "bus error: often /dev/shm or the disk ran out of space",
    "SIGTERM": "terminated by SIGTERM before it could save",
}


@dataclass(frozen=True)
class Job:
    """A kind of long job the supervisor can run: its command and the events that end it."""

    verb: str
    """``python -m engine VERB`` runs it."""
    folder_flag: str
    """The child's flag naming its folder."""
    stopped: str
    """Event type for a stop that came before the child could answer it."""
    failed: str
    """Event type the supervisor writes when the child dies without a terminal event."""


JOBS = {"train": Job("train", "--run-dir", RUN_STOPPED, RUN_FAILED)}
"""Every kind of long job, by name. Training runs in the run folder itself; a new kind
(evaluation, export) adds its verb here, lives in ``RUN/<kind>s/NAME/`` and ends with
``job_finished``/``job_stopped``/``job_failed`` (see docs/run-folder.md)."""


def job(kind: str) -> Job:
    """The job of ``kind``; a kind not in ``JOBS`` is supervised like one, ending in job events."""
    return JOBS.get(kind) or Job(kind, "--job-dir", JOB_STOPPED, JOB_FAILED)


def log(message: str) -> None:
    """A line in engine.log from the supervisor."""
    print(f"[supervisor {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def child_env() -> dict[str, str]:
    """The child's environment: ours plus unbuffered output and the oneDNN ISA cap."""
    env = dict(os.environ)
    env.setdefault("ONEDNN_MAX_CPU_ISA", ONEDNN_ISA)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def _child_setup(parent: int) -> Callable[[], None]:
    """What runs in the child between fork and exec.

    The signal mask survives exec (and so would our SIG_IGNs, hence the reset). On Linux the
    child also asks for SIGTERM when its parent dies: a supervisor killed outright must not leave
    a trainer training on its own, so the orphan stops and saves as if ``tuitune stop`` had asked.
    """
    def setup() -> None:
        for sig in (signal.SIGINT, signal.SIGUSR1, signal.SIGUSR2, signal.SIGHUP, signal.SIGTERM):
            signal.signal(sig, signal.SIG_DFL)
        signal.pthread_sigmask(signal.SIG_BLOCK, CHILD_BLOCKED)
        die_with_parent(parent)

    return setup


def die_with_parent(parent: int | None = None) -> None:
    """In a child between fork and exec (Linux only): be sent SIGTERM when the parent dies.

    With ``parent`` (the pid the child was forked from), a parent that died before the request
    was in place is caught too.
    """
    if _prctl is not None:
        _prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
        if parent is not None and os.getppid() != parent:
            os.kill(os.getpid(), signal.SIGTERM)


class Supervisor:
    """Runs one job in its folder and makes sure its end is recorded.

    Args:
        folder: The run folder (training) or the job's own folder.
        command: The child's command line.
        job: What kind of job it is (which events end it).
        lock: The folder's lock, held; its file is handed to the child.
    """

    def __init__(self, folder: Path, command: list[str], job: Job, lock: FolderLock) -> None:
        self.folder = folder
        self.command = command
        self.job = job
        self.lock = lock
        self.child: subprocess.Popen[bytes] | None = None
        self.stop_requested = False
        self.kill_requested = False
        self.paused = False
        self._writer_lock = threading.RLock()
        self.stop_on: frozenset[str] = frozenset()
        """Alert kinds that stop the run (``train.stop_on``)."""
        self.stall_after_s = STALL_FLOOR_S
        """Least seconds without a step before a stall alert (``train.stall_after_s``)."""

    def _running(self) -> bool:
        return self.child is not None and self.child.poll() is None

    def on_sigterm(self, *_: object) -> None:
        """Forward a stop to the child, or skip starting it when it is not running yet; a paused
        trainer is continued first, or it would never hear the stop."""
        self.stop_requested = True
        if self.paused:
            self.on_continue()
        if self._running():
            self.child.send_signal(signal.SIGTERM)

    def on_pause(self, *_: object) -> None:
        """SIGTSTP (``tuitune pause``): stop the trainer where it is and record it."""
        if self.job.verb != "train" or self.paused or self.stop_requested or not self._running():
            return
        os.kill(self.child.pid, signal.SIGSTOP)
        self.paused = True
        self.note(PAUSED)
        log("paused the trainer (SIGSTOP): the model stays loaded, the compute is free")

    def on_continue(self, *_: object) -> None:
        """SIGCONT (``tuitune continue``): let a paused trainer go on, and record it."""
        if not self.paused:
            return
        self.note(CONTINUED)
        self.paused = False
        if self._running():
            os.kill(self.child.pid, signal.SIGCONT)
        log("continued the trainer")

    def note(self, type: str, **fields: Any) -> None:
        """Append one event while the child may be writing too (the writer reads the sequence on)."""
        with self._writer_lock, EventWriter(self.folder) as writer:
            writer.emit(type, **fields)

    def watch(self, offset: int) -> None:
        """Feed the attempt's events to the watchdog until the child ends; write its alerts."""
        dog, path = Watchdog(self.stall_after_s), self.folder / EVENTS_FILE
        while self._running():
            result = read_events_from(path, offset)
            offset = result.offset
            for event in result.events:
                for alert in dog.feed(event):
                    self.alert(alert)
            stalled = dog.stalled(time.time())
            if stalled is not None:
                self.alert(stalled)
            time.sleep(WATCH_S)

    def alert(self, alert: Alert) -> None:
        """Record ``alert``; stop the run (saving) when ``train.stop_on`` names its kind."""
        stops = alert.kind in self.stop_on and not self.stop_requested
        self.note(ALERT, **alert.fields(), stops=stops)
        log(f"alert {alert.kind}: {alert.message}" + (" (train.stop_on: stopping, saving first)" if stops else ""))
        if stops:
            self.on_sigterm()

    def on_kill_request(self, *_: object) -> None:
        """SIGUSR2 (``tuitune stop --kill``): kill the child at once, and record it as a kill on request."""
        self.kill_requested = self.stop_requested = True
        if self.child is not None and self.child.poll() is None:
            self.child.kill()

    def write_pids(self) -> None:
        """Record who is who (the child is null until it starts)."""
        write_text_atomic(self.folder / PIDS_FILE, json.dumps({
            "supervisor": os.getpid(), "trainer": self.child.pid if self.child else None,
            "pgid": os.getpgid(0), "host": socket.gethostname(), "started": round(time.time(), 3),
        }))

    def run(self) -> int:
        """Start the child, wait for it and record a missing terminal event; returns its exit code."""
        events_path = self.folder / EVENTS_FILE
        offset = events_path.stat().st_size if events_path.exists() else 0
        self.write_pids()
        if self.stop_requested:
            return self.record(self.job.stopped, **self._nothing_saved())
        log(f"starting {self.job.verb}: {shlex.join(self.command)}")
        # The child holds the same open lock file: the folder stays locked while it lives, even
        # should this supervisor be killed first.
        self.child = subprocess.Popen(self.command, env=child_env(), stdin=subprocess.DEVNULL,
                                      preexec_fn=_child_setup(os.getpid()), pass_fds=(self.lock.fd,))
        self.write_pids()
        if self.stop_requested:
            self.child.send_signal(signal.SIGTERM)
        if self.job.verb == "train":
            threading.Thread(target=self.watch, args=(offset,), name="watchdog", daemon=True).start()
        returncode = self.child.wait()
        log(f"{self.job.verb} exited with {describe_exit(returncode)}")
        if any(e["type"] in TERMINAL_TYPES for e in read_events_from(events_path, offset).events):
            return returncode
        return self.record_exit(returncode)

    def record_exit(self, returncode: int) -> int:
        """Append the terminal event the child could not write."""
        sig = _signal_name(-returncode) if returncode < 0 else None
        exit_code = 128 - returncode if returncode < 0 else returncode  # shell convention for signals
        if sig == "SIGKILL" and self.kill_requested:
            return self.record(self.job.stopped, **self._killed())
        if sig == "SIGTERM" and self.stop_requested:
            # Stopped before its handlers were installed: nothing was saved, but it was asked to end.
            return self.record(self.job.stopped, **self._nothing_saved())
        what = "the trainer" if self.job.verb == "train" else f"the {self.job.verb} job"
        cause = f"{what} was killed by {sig}" if sig else f"{what} exited with code {returncode} without finishing"
        self.record(self.job.failed, cause=cause, exit_code=exit_code, signal=sig, hint=HINTS.get(sig or ""),
                    log_tail=read_log_tail(self.folder, lines=30), errors=[])
        return returncode if returncode > 0 else exit_code

    def record(self, type: str, **fields: Any) -> int:
        """Append one event (the child is gone, so the sequence numbers are ours)."""
        with EventWriter(self.folder) as writer:
            writer.emit(type, **fields)
        return 0 if type == self.job.stopped else 1

    def _killed(self) -> dict[str, Any]:
        """A kill on request saved nothing; what a resume would start from is named."""
        fields: dict[str, Any] = {"killed": True}
        if self.job.verb == "train":
            events = read_events_from(self.folder / EVENTS_FILE).events
            steps = [e["step"] for e in events if e.get("type") == LOG and isinstance(e.get("step"), int)]
            checkpoint = latest_checkpoint(self.folder)
            fields.update(self._nothing_saved(), step=steps[-1] if steps else None,
                          checkpoint_path=str(checkpoint.relative_to(self.folder)) if checkpoint else None)
        return fields

    def _nothing_saved(self) -> dict[str, Any]:
        if self.job.verb == "train":
            return {"step": None, "checkpoint_path": None, "adapter_path": None, "peak_memory_bytes": None,
                    "peak_memory_kind": None}
        return {}


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def describe_exit(returncode: int) -> str:
    """``code 1`` or ``signal SIGKILL`` for a Popen return code."""
    return f"signal {_signal_name(-returncode)}" if returncode < 0 else f"code {returncode}"


def watch_settings(run_dir: Path) -> tuple[frozenset[str], float]:
    """``train.stop_on`` and ``train.stall_after_s`` of the run's config; the defaults when it cannot
    be read (the trainer reports a broken config itself)."""
    from engine.config import ConfigError, load_config

    try:
        train = load_config(run_dir / "config.yaml").train
    except (ConfigError, OSError):
        return frozenset(), STALL_FLOOR_S
    return frozenset(train.stop_on), train.stall_after_s


def main(argv: list[str]) -> int:
    """``python -m engine launch --run-dir RUN [--resume]`` or ``--job KIND --job-dir DIR``."""
    parser = argparse.ArgumentParser(prog="python -m engine launch", description="Supervise one long job of a run.")
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--run-dir", type=Path, help="train this run folder")
    where.add_argument("--job-dir", type=Path, help="run the --job in this job folder")
    parser.add_argument("--job", default="train", help="the kind of job (default: train)")
    parser.add_argument("--resume", action="store_true", help="continue training from the latest checkpoint")
    # Tests inject a child that dies in a chosen way (SIGILL...) instead of the real one.
    parser.add_argument("--child-command", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if (args.job == "train") != (args.run_dir is not None):
        parser.error("training takes --run-dir; another --job takes --job-dir")
    kind = job(args.job)
    folder = (args.run_dir or args.job_dir).resolve()
    command = shlex.split(args.child_command) if args.child_command else [
        sys.executable, "-m", "engine", kind.verb, kind.folder_flag, str(folder), *(["--resume"] if args.resume else [])]
    lock = FolderLock(folder)
    if not lock.acquire():
        log(f"{folder} is locked by another attempt that is still running; this one does not start")
        return LOCKED
    supervisor = Supervisor(folder, command, kind, lock)
    if kind.verb == "train":
        supervisor.stop_on, supervisor.stall_after_s = watch_settings(folder)
    for sig in (signal.SIGINT, signal.SIGUSR1, signal.SIGHUP):
        signal.signal(sig, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, supervisor.on_sigterm)
    signal.signal(signal.SIGUSR2, supervisor.on_kill_request)
    signal.signal(signal.SIGTSTP, supervisor.on_pause)
    signal.signal(signal.SIGCONT, supervisor.on_continue)
    return supervisor.run()
