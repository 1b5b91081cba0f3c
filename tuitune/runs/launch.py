"""Start, resume, stop and probe training runs. No Textual and no ML stack here.

A run is a detached ``python -m engine launch`` supervisor (engine/supervisor/launch.py) in its own
session, with stdin from /dev/null and its output appended to ``RUN/engine.log``: it
survives the app, the SSH session and the terminal. Everything else goes through the run
folder: its lock (engine.locks) says whether an attempt lives, ``pids.json`` says who to
signal, ``events.jsonl`` says what happened.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import engine
from engine.files import write_text_atomic
from engine.locks import LOCK_FILE, LOCKED, is_locked
from engine.protocol import (
    CONFIG_FILE,
    EVENTS_FILE,
    JOB_FILE,
    JOB_FOLDERS,
    LOG_FILE,
    PIDS_FILE,
    TERMINAL_TYPES,
    read_events,
)
from engine.stages import DEFAULT_STAGE
from tuitune.runs.state import Event, RunState, describe_end, fold
from tuitune.runs.tail import EventTail

if TYPE_CHECKING:  # pydantic costs about 0.15 s to import, and liveness checks need none of it
    from engine.config import RunConfig

SPAWN_WAIT_S = 30.0
"""How long a new supervisor may take to hold its folder (it imports the standard library only)."""
_children: list[subprocess.Popen[bytes]] = []
"""Supervisors we started: polled now and then so finished ones do not linger as zombies."""


def _reap() -> None:
    _children[:] = [child for child in _children if child.poll() is None]


def default_run_name(config: RunConfig, now: float | None = None) -> str:
    """A readable name saying what and when: ``smollm2-135m-instruct-lora-nov25-1541``
    (``…-dpo-lora-…`` for a stage other than the default). The list sorts by start time, not by name."""
    model = Path(config.model.name_or_path.rstrip("/")).name or "model"
    when = time.localtime(now)
    month = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")[when.tm_mon - 1]
    kind = config.adapter.method if config.stage == DEFAULT_STAGE else f"{config.stage}-{config.adapter.method}"
    return f"{model}-{kind}-{month}{when.tm_mday:02d}-{time.strftime('%H%M', when)}"


def new_run_dir(runs_dir: str | os.PathLike[str], name: str) -> Path:
    """Create and return a fresh folder for a run called ``name`` (``name-2``, ``-3``… if taken)."""
    root = Path(runs_dir)
    root.mkdir(parents=True, exist_ok=True)
    safe = re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-.") or "run"
    for n in range(1, 10_000):
        candidate = root / (safe if n == 1 else f"{safe}-{n}")
        try:
            candidate.mkdir()
        except FileExistsError:
            continue
        return candidate
    raise FileExistsError(f"no free run folder name for {safe!r} in {root}")


def _spawn(folder: Path, *launch_args: str) -> int:
    """Start a supervisor for ``folder`` detached; return its pid once it holds the folder's lock.

    The lock, not a check made before starting, decides between two attempts started at once:
    the one that does not get it exits with ``LOCKED`` and this raises.

    Raises:
        RuntimeError: another attempt holds the folder, or the supervisor died at once.
    """
    _reap()
    env = dict(os.environ)
    # Make `python -m engine` importable even when tuitune runs from a source checkout.
    package_root = str(Path(engine.__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH")) if p)
    command = [sys.executable, "-m", "engine", "launch", *launch_args]
    with open(folder / LOG_FILE, "ab") as log:
        child = subprocess.Popen(command, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                 start_new_session=True, close_fds=True)
    _children.append(child)
    deadline = time.monotonic() + SPAWN_WAIT_S
    while time.monotonic() < deadline:
        code = child.poll()
        if code == LOCKED:
            raise RuntimeError(f"{folder} is still running (another attempt holds its lock)")
        if code is not None:
            raise RuntimeError(_refusal(folder) or f"the engine stopped at once with {code}; see {folder / LOG_FILE}")
        if read_pids(folder).get("supervisor") == child.pid and is_locked(folder):
            return child.pid
        time.sleep(0.02)
    raise RuntimeError(f"the engine did not start within {SPAWN_WAIT_S:.0f} s; see {folder / LOG_FILE}")


def _refusal(folder: Path) -> str | None:
    """The cause a supervisor recorded when it refused to start the child (a job's destination held elsewhere)."""
    ends = [event for event in read_events(folder) if event["type"] in TERMINAL_TYPES]
    return str(ends[-1]["cause"]) if ends and ends[-1].get("cause") else None


def start_run(run_dir: str | os.PathLike[str], config: RunConfig) -> int:
    """Write ``config.yaml`` into ``run_dir`` and start training there; returns the supervisor's pid.

    ``train.gpus`` is written as the GPU indices it means on this machine (``all`` and a count resolved
    through NVML) with ``distributed.nproc`` one process per GPU, so the run folder says what ran where.

    Raises:
        FileExistsError: ``run_dir`` already holds a run (use ``resume_run``) or other files,
            which the run's checkpoints and adapter could overwrite.
        engine.machine.gpus.DeviceError: a GPU the config names is not on this machine.
    """
    run_dir = Path(run_dir).resolve()
    if (run_dir / CONFIG_FILE).exists():
        raise FileExistsError(f"{run_dir} already holds a run; resume it or choose another folder")
    if run_dir.is_dir() and any(run_dir.iterdir()):
        raise FileExistsError(f"{run_dir} is not empty; a run needs a folder of its own (a new or empty one)")
    from engine.config import write_config
    from engine.machine.gpus import list_gpus, resolve_devices

    config = resolve_devices(config, *list_gpus())
    run_dir.mkdir(parents=True, exist_ok=True)
    write_config(config, run_dir / CONFIG_FILE)
    return _spawn(run_dir, "--run-dir", str(run_dir))


def job_name() -> str:
    """The name a job's folder gets when none is given: the time stamp of now (``20261207-013546``)."""
    return time.strftime("%Y%m%d-%H%M%S")


def start_job(run_dir: str | os.PathLike[str], kind: str, settings: dict[str, Any], name: str | None = None
              ) -> tuple[Path, int]:
    """Start a long job of a run (``eval``, ``export``) in a new ``RUN/<kind>s/NAME/`` folder.

    ``settings`` go into the folder's ``job.yaml`` for the job to read. Returns the job folder and
    its supervisor's pid once it holds the folder's lock.
    """
    import yaml

    parent = Path(run_dir).resolve() / JOB_FOLDERS[kind]
    job_dir = new_run_dir(parent, name or job_name())
    write_text_atomic(job_dir / JOB_FILE, yaml.safe_dump(settings, sort_keys=False, allow_unicode=True))
    return job_dir, _spawn(job_dir, "--job", kind, "--job-dir", str(job_dir))


def start_pull(repo_id: str, revision: str | None = None) -> tuple[Path, int]:
    """Start the pull job of ``repo_id`` at ``revision`` in its folder (:func:`engine.paths.pull_dir`, one per
    repo and revision, reused by a pull started again); returns the folder and the byte offset of its events
    where this pull's begin.

    Raises:
        RuntimeError: a pull of the same model and revision is running (its folder is locked).
    """
    import yaml

    from engine.paths import pull_dir

    folder = pull_dir(repo_id, revision)
    folder.mkdir(parents=True, exist_ok=True)
    if is_alive(folder):
        raise RuntimeError(f"{repo_id} is already being pulled (in {folder}); wait for it, or stop it with "
                           f"tuitune stop {folder}")
    write_text_atomic(folder / JOB_FILE, yaml.safe_dump({"repo_id": repo_id, "revision": revision}, sort_keys=False))
    events = folder / EVENTS_FILE
    events.touch()  # a job's folder from the start, for tuitune stop, before the job writes its first event
    offset = events.stat().st_size
    _spawn(folder, "--job", "pull", "--job-dir", str(folder))
    return folder, offset


def resume_run(run_dir: str | os.PathLike[str]) -> int:
    """Continue ``run_dir`` from its latest checkpoint; returns the new supervisor's pid.

    Raises:
        FileNotFoundError: there is no ``config.yaml`` in ``run_dir``.
        RuntimeError: the run is still alive.
    """
    run_dir = Path(run_dir).resolve()
    if not (run_dir / CONFIG_FILE).is_file():
        raise FileNotFoundError(f"{run_dir / CONFIG_FILE} not found: nothing to resume")
    if is_alive(run_dir):
        raise RuntimeError(f"{run_dir} is still running")
    return _spawn(run_dir, "--run-dir", str(run_dir), "--resume")


def read_pids(run_dir: str | os.PathLike[str], strict: bool = False) -> dict[str, Any]:
    """``pids.json`` as a dict (empty when missing or not JSON, and when unreadable unless ``strict``).

    Raises:
        OSError: with ``strict``, the file is there but cannot be read (``PATH: cannot read: why``).
    """
    path = Path(run_dir) / PIDS_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (FileNotFoundError, ValueError):
        return {}
    except OSError as exc:
        if strict:
            raise OSError(f"{path}: cannot read: {exc.strerror or exc}") from None
        return {}
    return data if isinstance(data, dict) else {}


def _is_our_process(pid: Any, run_dir: Path, role: str) -> bool:
    """Whether ``pid`` is alive (not a zombie) and is the engine ``role`` of ``run_dir``.

    Pids get reused after a reboot, so the command line must name the run folder too.
    Without /proc (macOS) only existence can be checked.
    """
    if not isinstance(pid, int) or pid <= 0:
        return False
    proc = Path(f"/proc/{pid}")
    if not Path("/proc/self").exists():
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    try:
        state = (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]
        argv = (proc / "cmdline").read_bytes().split(b"\0")
    except (OSError, IndexError):
        return False
    words = [a.decode("utf-8", "replace") for a in argv]
    return state != "Z" and role in words and str(run_dir) in words


def is_alive(run_dir: str | os.PathLike[str]) -> bool:
    """Whether an attempt of this run (or job) still lives: its folder's lock is held."""
    return is_locked(run_dir)


@dataclass(frozen=True)
class Attempt:
    """A run's latest attempt as the commands that signal it see it (``tuitune stop``, ``pause``, ``continue``):
    whether it lives from its folder's lock alone, the rest from the tail of its events."""

    run_dir: Path
    """The run folder."""
    live: bool
    """Whether a process of the attempt holds the folder's lock (engine.locks): the one test of running."""
    end: Event | None
    """The attempt's terminal event once recorded (a live attempt with one is finishing), else None."""
    paused: bool
    """Whether its trainer is paused: a ``paused`` event with no ``continued`` (nor end) after it."""
    ever_started: bool
    """Whether any attempt left a trace (an event, pids.json)."""
    offset: int
    """Where the complete events read end: what the attempt records next starts here."""

    def not_running(self) -> str:
        """The one line every command says of a run that is not running, with how its latest attempt ended."""
        if self.end is not None and self.live:
            how = (f"it ended: {describe_end(self.end, self.run_dir)}; some of its processes are still "
                   f"there, see {self.run_dir / PIDS_FILE}")
        elif self.end is not None:
            how = f"it ended: {describe_end(self.end, self.run_dir)}"
        elif self.ever_started:
            how = f"its processes are gone and its end was not recorded; see {self.run_dir / LOG_FILE}"
        else:
            how = "it never started"
        return f"{self.run_dir} is not running ({how})"


def look(run_dir: str | os.PathLike[str]) -> Attempt:
    """What the run's latest attempt is doing now; reads the lock, pids.json and the end of events.jsonl.

    Raises:
        OSError: the lock, pids.json or events.jsonl cannot be read (a permission, a FIFO or a folder in
            its place), saying which: whether the run lives, and what it did, cannot be told.
    """
    run_dir = Path(run_dir)
    try:
        live = is_locked(run_dir)
    except OSError as exc:
        raise OSError(f"{run_dir / LOCK_FILE}: cannot read: {exc.strerror or exc}") from None
    pids = read_pids(run_dir, strict=True)
    tail = EventTail(run_dir)
    state = fold(RunState(), tail.read_last())
    if tail.error:
        raise OSError(tail.error)
    end, started = state.terminal, pids.get("started")
    if live and end is not None and not (isinstance(started, (int, float)) and end.get("t", 0) >= started):
        end = None  # the end of the attempt before this one: a resume still loading, before its run_started
    return Attempt(run_dir, live, end, state.paused and end is None, state.events_seen > 0 or bool(pids),
                   tail.offset)


def wait_until_gone(run_dir: str | os.PathLike[str], timeout: float = 60.0) -> bool:
    """Wait until no process of the run's attempt is left (its lock is free); False on timeout."""
    deadline = time.monotonic() + timeout
    while is_alive(run_dir):
        _reap()
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)
    _reap()
    return True


def stop_run(run_dir: str | os.PathLike[str], kill: bool = False) -> bool:
    """Ask a run to stop: SIGTERM to its process group (checkpoint, adapter, run_stopped).

    With ``kill``, the supervisor is asked (SIGUSR2) to kill the trainer at once, without saving,
    and records it as a stop on request (``killed: true``). Only processes whose command lines
    name this run folder are signalled, and the group only when its leader is the run's
    supervisor (pids.json may be stale or edited). A trainer whose supervisor is gone is
    signalled directly. Returns whether a signal was sent.
    """
    run_dir = Path(run_dir).resolve()
    pids = read_pids(run_dir)
    supervisor, trainer = pids.get("supervisor"), pids.get("trainer")
    try:
        if _is_our_process(supervisor, run_dir, "launch"):
            if kill:
                os.kill(supervisor, signal.SIGUSR2)
            elif os.getpgid(supervisor) == supervisor:  # it leads its own session's group, and only ours
                os.killpg(supervisor, signal.SIGTERM)
            else:
                os.kill(supervisor, signal.SIGTERM)
            return True
        workers = _workers(pids, run_dir)
        if workers:  # the supervisor is gone: its torchrun workers are told (or killed) one by one
            for pid in [*workers, *([trainer] if kill and _is_our_process(trainer, run_dir, "train") else [])]:
                _send(pid, signal.SIGKILL if kill else signal.SIGINT)
            return True
        if _is_our_process(trainer, run_dir, "train"):
            os.kill(trainer, signal.SIGKILL if kill else signal.SIGTERM)
            return True
    except ProcessLookupError:
        pass
    return False


def pause_run(run_dir: str | os.PathLike[str]) -> bool:
    """Ask the run's supervisor to pause its trainer (SIGTSTP; it records ``paused``).

    Returns whether the signal was sent (False when no supervisor of this run is alive).
    """
    return _signal_supervisor(run_dir, signal.SIGTSTP)


def continue_run(run_dir: str | os.PathLike[str]) -> bool:
    """Ask the run's supervisor to let a paused trainer go on (SIGCONT; it records ``continued``)."""
    return _signal_supervisor(run_dir, signal.SIGCONT)


def _signal_supervisor(run_dir: str | os.PathLike[str], sig: signal.Signals) -> bool:
    run_dir = Path(run_dir).resolve()
    supervisor = read_pids(run_dir).get("supervisor")
    if not _is_our_process(supervisor, run_dir, "launch"):
        return False
    try:
        os.kill(supervisor, sig)
    except ProcessLookupError:
        return False
    return True


def request_save(run_dir: str | os.PathLike[str]) -> bool:
    """Ask the trainer for a checkpoint at the end of the current step (SIGUSR1).

    Returns whether the signal was sent (False when no trainer of this run is alive).
    """
    run_dir = Path(run_dir).resolve()
    pids = read_pids(run_dir)
    workers = _workers(pids, run_dir)
    if workers:  # under torchrun every worker is asked; the ranks agree on the step
        for pid in workers:
            _send(pid, signal.SIGUSR1)
        return True
    trainer = pids.get("trainer")
    if not _is_our_process(trainer, run_dir, "train") or "workers" in pids:
        return False
    os.kill(trainer, signal.SIGUSR1)
    return True


def _workers(pids: dict[str, Any], run_dir: Path) -> list[int]:
    """torchrun's workers that pids.json lists and that are still this run's trainers."""
    listed = pids.get("workers") if isinstance(pids.get("workers"), list) else []
    return [w["pid"] for w in listed if isinstance(w, dict) and _is_our_process(w.get("pid"), run_dir, "train")]


def _send(pid: int, sig: signal.Signals) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass
