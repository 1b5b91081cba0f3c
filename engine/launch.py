"""The supervisor: ``python -m engine launch --run-dir RUN [--resume]``. Standard library only.

The app (or ``tuitune train``) starts this in a new session with stdout/stderr appended to
RUN/engine.log, so it outlives the terminal. It records its pid and the trainer's in
RUN/pids.json, runs ``python -m engine train`` as its child and waits. A trainer that dies
without writing a terminal event (SIGKILL from the OOM killer, SIGILL from a bf16 matmul,
a segfault in a CUDA kernel, ``os._exit``) cannot say so itself; the supervisor then appends
``run_failed`` with the exit code, signal name, a hint and the last lines of engine.log.

Signals: the supervisor ignores SIGINT, SIGUSR1 and SIGHUP and forwards SIGTERM to the
trainer (``tuitune stop`` signals the whole process group, so the trainer usually hears it
directly too). The child starts with SIGTERM/SIGINT/SIGUSR1 blocked; ``engine.recipes.sft`` unblocks
them once its handlers are installed, so a stop sent while torch imports is not lost.

Multi-GPU: the trainer command is ``TRAINER_COMMAND``. Swap it for a launcher such as
``[sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "gpu", "-m", "engine", "train"]``
(torchrun) or ``["accelerate", "launch", "-m", "engine", "train"]``; ``engine.recipes.sft`` then
runs once per GPU, events are written by rank 0 only, and this supervisor is unchanged.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from engine.files import write_text_atomic
from engine.protocol import EVENTS_FILE, PIDS_FILE, RUN_FAILED, RUN_STOPPED, TERMINAL_TYPES
from engine.protocol import EventWriter, read_events_from, read_log_tail

TRAINER_COMMAND = [sys.executable, "-m", "engine", "train"]
"""How the trainer is started; see the module docstring for torchrun/accelerate."""
CHILD_BLOCKED = (signal.SIGTERM, signal.SIGINT, signal.SIGUSR1)
ONEDNN_ISA = "AVX512_CORE_BF16"
"""oneDNN ISA cap set for the trainer when the user has not set one: without it, a bf16
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


def log(message: str) -> None:
    """A line in engine.log from the supervisor."""
    print(f"[supervisor {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def child_env() -> dict[str, str]:
    """The trainer's environment: ours plus unbuffered output and the oneDNN ISA cap."""
    env = dict(os.environ)
    env.setdefault("ONEDNN_MAX_CPU_ISA", ONEDNN_ISA)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def _block_signals() -> None:
    """Runs in the child between fork and exec: the mask survives exec, and so would our SIG_IGNs."""
    for sig in (signal.SIGINT, signal.SIGUSR1, signal.SIGHUP, signal.SIGTERM):
        signal.signal(sig, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_BLOCK, CHILD_BLOCKED)


class Supervisor:
    """Runs one trainer for a run folder and makes sure its end is recorded."""

    def __init__(self, run_dir: Path, command: list[str]) -> None:
        self.run_dir = run_dir
        self.command = command
        self.child: subprocess.Popen[bytes] | None = None
        self.stop_requested = False

    def on_sigterm(self, *_: object) -> None:
        """Forward a stop to the trainer, or skip starting it when it is not running yet."""
        self.stop_requested = True
        if self.child is not None and self.child.poll() is None:
            self.child.send_signal(signal.SIGTERM)

    def write_pids(self) -> None:
        """Record who is who (the trainer is null until it starts)."""
        write_text_atomic(self.run_dir / PIDS_FILE, json.dumps({
            "supervisor": os.getpid(), "trainer": self.child.pid if self.child else None,
            "pgid": os.getpgid(0), "host": socket.gethostname(), "started": round(time.time(), 3),
        }))

    def run(self) -> int:
        """Start the trainer, wait for it and record a missing terminal event; returns its exit code."""
        events_path = self.run_dir / EVENTS_FILE
        offset = events_path.stat().st_size if events_path.exists() else 0
        self.write_pids()
        if self.stop_requested:
            return self.record(RUN_STOPPED, step=None, checkpoint_path=None, adapter_path=None,
                               peak_memory_bytes=None, peak_memory_kind=None)
        log(f"starting trainer: {shlex.join(self.command)}")
        self.child = subprocess.Popen(self.command, env=child_env(), stdin=subprocess.DEVNULL,
                                      preexec_fn=_block_signals)
        self.write_pids()
        if self.stop_requested:
            self.child.send_signal(signal.SIGTERM)
        returncode = self.child.wait()
        log(f"trainer exited with {describe_exit(returncode)}")
        if any(e["type"] in TERMINAL_TYPES for e in read_events_from(events_path, offset).events):
            return returncode
        return self.record_exit(returncode)

    def record_exit(self, returncode: int) -> int:
        """Append the terminal event the trainer could not write."""
        sig = _signal_name(-returncode) if returncode < 0 else None
        exit_code = 128 - returncode if returncode < 0 else returncode  # shell convention for signals
        if sig == "SIGTERM" and self.stop_requested:
            # Stopped before its handlers were installed: nothing was saved, but it was asked to end.
            return self.record(RUN_STOPPED, step=None, checkpoint_path=None, adapter_path=None,
                               peak_memory_bytes=None, peak_memory_kind=None)
        cause = f"the trainer was killed by {sig}" if sig else f"the trainer exited with code {returncode} without finishing"
        self.record(RUN_FAILED, cause=cause, exit_code=exit_code, signal=sig, hint=HINTS.get(sig or ""),
                    log_tail=read_log_tail(self.run_dir, lines=30), errors=[])
        return returncode if returncode > 0 else exit_code

    def record(self, type: str, **fields: Any) -> int:
        """Append one event (the trainer is gone, so the sequence numbers are ours)."""
        with EventWriter(self.run_dir) as writer:
            writer.emit(type, **fields)
        return 0 if type == RUN_STOPPED else 1


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def describe_exit(returncode: int) -> str:
    """``code 1`` or ``signal SIGKILL`` for a Popen return code."""
    return f"signal {_signal_name(-returncode)}" if returncode < 0 else f"code {returncode}"


def main(argv: list[str]) -> int:
    """``python -m engine launch --run-dir RUN [--resume]``."""
    parser = argparse.ArgumentParser(prog="python -m engine launch", description="Supervise one training run.")
    parser.add_argument("--run-dir", required=True, type=Path)
    parser.add_argument("--resume", action="store_true")
    # Tests inject a child that dies in a chosen way (SIGILL...) instead of the real trainer.
    parser.add_argument("--child-command", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    run_dir = args.run_dir.resolve()
    command = shlex.split(args.child_command) if args.child_command else [
        *TRAINER_COMMAND, "--run-dir", str(run_dir), *(["--resume"] if args.resume else [])]
    supervisor = Supervisor(run_dir, command)
    for sig in (signal.SIGINT, signal.SIGUSR1, signal.SIGHUP):
        signal.signal(sig, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, supervisor.on_sigterm)
    return supervisor.run()
