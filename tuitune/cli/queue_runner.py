"""The queue's runner: ``python -m tuitune.cli.queue_runner RUNS_DIR``, started detached by ``tuitune queue add``
and ``tuitune queue resume`` (tuitune.runs.queue.start_runner).

It holds ``RUNS/.queue/runner.lock`` for its life (one runner per runs folder) and starts the queued runs in
order, each when the devices it asks for are free: no live run of this runs folder on them (on a CPU, no live
run at all: one at a time) and, on a GPU, little memory in use by anyone. Each run is checked again as ``tuitune
train`` checks it (tuitune.cli.train.preflight); one that no longer passes is skipped, its reason recorded in
the queue's ``done``, and the queue goes on. A run that fails does not stop the queue: the runner only starts
runs, their supervisors do the rest. When the queue is empty and the runs it started have ended, it sends
``queue_empty`` (engine.notify) and exits; a paused queue makes it exit before the next start.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import yaml

from engine.files import write_text_atomic
from engine.locks import FolderLock, is_locked
from engine.protocol import CONFIG_FILE
from tuitune.runs.folder import list_run_dirs
from tuitune.runs.queue import (
    EDIT_LOCK,
    QUEUE_LOG,
    RUNNER_FILE,
    RUNNER_LOCK,
    QueuedRun,
    QueueError,
    editing,
    queue_dir,
    read_queue,
)

POLL_S = 1.0
"""How often the runner looks again while it waits (for devices, for its runs to end)."""
GPU_BUSY_FRACTION = 0.1
"""A GPU with more than this share of its memory in use is busy (another user's job, a server)."""


def log(message: str) -> None:
    """One line in queue.log."""
    print(f"[queue {time.strftime('%H:%M:%S')}] {message}", flush=True)


def run_devices(config: dict[str, Any], gpu_count: int) -> set[str]:
    """What a run trains on, as ``{"gpu0", "gpu1"}`` or ``{"cpu"}``, from its config's ``train.gpus``."""
    if gpu_count == 0:
        return {"cpu"}
    gpus = (config.get("train") or {}).get("gpus", "all")
    if isinstance(gpus, list):
        return {f"gpu{i}" for i in gpus if isinstance(i, int)}
    count = gpus if isinstance(gpus, int) else gpu_count
    return {f"gpu{i}" for i in range(min(count, gpu_count))}


def busy_reason(runs_dir: Path, run: QueuedRun) -> str | None:
    """Why ``run`` cannot start yet (a device it asks for is busy), or None when it can."""
    from engine.machine.gpus import list_gpus

    gpus, _ = list_gpus()
    wanted = run_devices(run.config, len(gpus))
    for folder in list_run_dirs(runs_dir):
        if not is_locked(folder):
            continue
        try:
            config = yaml.safe_load((folder / CONFIG_FILE).read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError):
            config = {}
        shared = wanted & run_devices(config if isinstance(config, dict) else {}, len(gpus))
        if shared:
            return f"{folder.name} is running on {', '.join(sorted(shared))}"
    for gpu in gpus:
        used = gpu.total_bytes - gpu.free_bytes
        if f"gpu{gpu.index}" in wanted and used > GPU_BUSY_FRACTION * gpu.total_bytes:
            return f"GPU {gpu.index} has {used / 2**30:.1f} GiB of memory in use by others"
    return None


def start_next(runs_dir: Path, run: QueuedRun) -> Path | None:
    """Start the first queued run (checked again first); take it out of the queue, recording how it left.
    Returns its run folder, or None when it was skipped."""
    from tuitune.runs.launch import new_run_dir

    with editing(runs_dir) as queue:
        entry = queue.find(run.name)
        if entry is None:  # removed meanwhile
            return None
        if entry.run_dir is None:
            entry.run_dir = str(new_run_dir(runs_dir, entry.name))
        run = entry
    run_dir = Path(str(run.run_dir))
    reason = None if (run_dir / CONFIG_FILE).exists() else _start(run_dir, run)
    with editing(runs_dir) as queue:
        entry = queue.find(run.name)
        if entry is not None:
            queue.runs.remove(entry)
        queue.done.append({"name": run.name, "outcome": "skipped" if reason else "started", "run_dir": str(run_dir),
                           "reason": reason, "t": time.time()})
    if reason:
        log(f"skipped {run.name}: {reason}")
        try:
            run_dir.rmdir()  # the folder chosen for it, still empty
        except OSError:
            pass
        return None
    log(f"started {run.name}: {run_dir}")
    return run_dir


def _start(run_dir: Path, run: QueuedRun) -> str | None:
    """Check and start ``run`` in ``run_dir``; why it was not started, or None."""
    from pydantic import ValidationError

    from engine.config import ConfigError, RunConfig
    from tuitune.cli.train import Refused, preflight
    from tuitune.runs.launch import start_run

    try:
        config = RunConfig.model_validate(run.config)
        preflight(config, force=run.force)
        start_run(run_dir, config)
    except ValidationError as exc:
        return "its config is no longer valid: " + "; ".join(
            f"{'.'.join(map(str, err['loc']))}: {err['msg']}" for err in exc.errors())
    except Refused as exc:
        return " ".join(exc.lines)
    except (ConfigError, OSError, RuntimeError, ValueError) as exc:
        return str(exc)
    return None


def wait_for(runs: list[Path]) -> None:
    """Wait until every run in ``runs`` has ended (its folder's lock is free)."""
    while any(is_locked(run) for run in runs):
        time.sleep(POLL_S)


def finish(runs_dir: Path, lock: FolderLock) -> bool:
    """Let go of the runner lock if the queue is (still) empty or paused, under the edit lock so that a ``queue
    add`` made meanwhile either is seen here or finds no runner and starts one. Returns whether it let go."""
    folder = queue_dir(runs_dir)
    edit = FolderLock(folder, EDIT_LOCK)
    edit.acquire(wait_s=30.0)
    try:
        queue = read_queue(runs_dir)
        if queue.runs and not queue.paused:
            return False
        lock.release()
        return True
    finally:
        edit.release()


def work(runs_dir: Path, lock: FolderLock) -> None:
    """Start the queued runs until the queue is empty (and its runs ended) or paused."""
    from engine.notify.announce import announce, queue_empty_facts

    began, started, left = time.time(), [], 0
    waiting_on: str | None = None
    while True:
        queue = read_queue(runs_dir)
        if queue.paused or not queue.runs:
            if queue.paused:
                log("the queue is paused: no further run starts (tuitune queue resume)")
            else:  # word that the box can be given back waits for every run the queue started
                wait_for([Path(d["run_dir"]) for d in queue.done if d.get("outcome") == "started"])
            if finish(runs_dir, lock):
                break
            continue
        run = queue.runs[0]
        began_before = run.run_dir is not None and (Path(run.run_dir) / CONFIG_FILE).exists()  # a killed runner's
        reason = None if began_before else busy_reason(runs_dir, run)
        if reason:
            if reason != waiting_on:
                log(f"{run.name} waits: {reason}")
            waiting_on = reason
            time.sleep(POLL_S)
            continue
        waiting_on = None
        run_dir = start_next(runs_dir, run)
        left += 1
        started += [run_dir] if run_dir else []
    if left and not queue.paused:
        log(f"the queue is empty: {len(started)} run(s) started, {left - len(started)} skipped")
        facts = queue_empty_facts(runs_dir, len(started), time.time() - began)
        sender = announce(facts, queue_dir(runs_dir) / QUEUE_LOG)
        if sender is not None:
            log(f"notifying queue_empty (sender pid {sender.pid})")


def main(argv: list[str]) -> int:
    """Work the queue of the runs folder ``argv[0]``; exits 0 at once when another runner holds it."""
    runs_dir = Path(argv[0]).resolve()
    folder = queue_dir(runs_dir)
    folder.mkdir(parents=True, exist_ok=True)
    lock = FolderLock(folder, RUNNER_LOCK)
    if not lock.acquire():
        log("another runner works this queue")
        return 0
    write_text_atomic(folder / RUNNER_FILE, json.dumps({"pid": os.getpid(), "started": time.time()}))
    log(f"runner {os.getpid()} works the queue of {runs_dir}")
    try:
        work(runs_dir, lock)
    except QueueError as exc:  # queue.json replaced by something that is not a queue: say so, start nothing
        log(f"runner stopped: {exc}")
        return 1
    finally:
        lock.release()
    log("runner done")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
