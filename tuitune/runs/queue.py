"""The queue of a runs folder: runs that start one after another, unattended. No Textual and no ML stack here.

The queue lives in ``RUNS/.queue/`` (a hidden folder: the runs list never takes it for a run):

* ``queue.json``: ``{"v": 1, "paused": false, "runs": [...], "done": [...]}``. Each of ``runs`` (in the order
  they start) is ``{"name", "config", "added", "force", "run_dir"}``: the run's resolved config as ``tuitune
  train`` with the same flags would write it, and ``run_dir`` null until its turn comes (then the folder chosen
  for it, set before the run is started, so a runner killed in between starts it there, never twice). ``done``
  keeps the last :data:`DONE_KEPT` runs that left the queue: ``{"name", "outcome": "started"|"skipped",
  "run_dir", "reason", "t"}``.
* ``edit.lock``: held (``flock``) by whoever reads and rewrites ``queue.json``, so two ``queue add`` at once lose
  nothing; the file is always replaced atomically.
* ``runner.lock``: held for its whole life by the queue's runner (tuitune.cli.queue_runner), one per runs folder;
  ``runner.json`` says its pid and when it started, ``queue.log`` is what it said.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from engine.files import read_regular, write_text_atomic
from engine.locks import FolderLock, is_locked

QUEUE_DIR = ".queue"
"""The queue's folder in the runs folder."""
QUEUE_FILE = "queue.json"
"""The queue itself."""
EDIT_LOCK = "edit.lock"
"""Held while ``queue.json`` is read and rewritten."""
RUNNER_LOCK = "runner.lock"
"""Held by the runner for its whole life."""
RUNNER_FILE = "runner.json"
"""The runner's pid and start time."""
QUEUE_LOG = "queue.log"
"""What the runner (and the notifications it sends) said."""
QUEUE_VERSION = 1
"""``v`` of queue.json: a change that old readers would misread bumps it."""
DONE_KEPT = 50
"""How many runs that left the queue ``done`` remembers."""
EDIT_WAIT_S = 10.0
"""How long an edit waits for another to finish."""
QUEUE_LIMIT = 16 * 1024 * 1024
"""A queue is a few KiB a run; a larger file is not read."""


@dataclass
class QueuedRun:
    """One run waiting its turn."""

    name: str
    """The name its run folder gets (``-2``… when taken by then)."""
    config: dict[str, Any]
    """Its resolved config (engine.config.RunConfig as JSON)."""
    added: float = field(default_factory=time.time)
    """When it was queued."""
    force: bool = False
    """Started even when the memory estimate says it will not fit (``--force``)."""
    run_dir: str | None = None
    """The folder chosen for it when its turn came (None until then)."""


@dataclass
class Queue:
    """The whole queue file."""

    paused: bool = False
    """Whether the runner starts no further run."""
    runs: list[QueuedRun] = field(default_factory=list)
    """The runs waiting, first to start first."""
    done: list[dict[str, Any]] = field(default_factory=list)
    """The latest runs that left the queue, started or skipped (with why), oldest first."""

    def find(self, name: str) -> QueuedRun | None:
        """The queued run called ``name``, or None."""
        return next((run for run in self.runs if run.name == name), None)

    def to_json(self) -> str:
        """The file's text."""
        return json.dumps({"v": QUEUE_VERSION, "paused": self.paused, "runs": [asdict(run) for run in self.runs],
                           "done": self.done[-DONE_KEPT:]}, indent=1) + "\n"


class QueueError(ValueError):
    """The queue cannot be read or changed as asked; the message is one line saying what and where."""


def queue_dir(runs_dir: str | os.PathLike[str]) -> Path:
    """The queue's folder in ``runs_dir``."""
    return Path(runs_dir) / QUEUE_DIR


def read_queue(runs_dir: str | os.PathLike[str]) -> Queue:
    """The queue of ``runs_dir`` (empty when it has none).

    Raises:
        QueueError: queue.json cannot be read or is not a queue, naming it.
    """
    path = queue_dir(runs_dir) / QUEUE_FILE
    try:
        data = json.loads(read_regular(path, QUEUE_LIMIT).decode("utf-8"))
    except FileNotFoundError:
        return Queue()
    except (OSError, ValueError) as exc:
        raise QueueError(f"{path}: cannot read the queue: {getattr(exc, 'strerror', None) or exc}") from None
    try:
        if data.get("v") != QUEUE_VERSION:
            raise ValueError(f"version {data.get('v')!r}, this tuitune reads {QUEUE_VERSION}")
        runs = [QueuedRun(**run) for run in data.get("runs", [])]
        return Queue(bool(data.get("paused")), runs, list(data.get("done", [])))
    except (AttributeError, TypeError, ValueError) as exc:
        raise QueueError(f"{path}: not a tuitune queue: {exc}") from None


@contextmanager
def editing(runs_dir: str | os.PathLike[str]) -> Iterator[Queue]:
    """The queue of ``runs_dir`` to change in place, under its edit lock; written back atomically when the block
    ends without an error.

    Raises:
        QueueError: another edit held the lock for :data:`EDIT_WAIT_S`, or the queue cannot be read.
    """
    folder = queue_dir(runs_dir)
    folder.mkdir(parents=True, exist_ok=True)
    lock = FolderLock(folder, EDIT_LOCK)
    if not lock.acquire(wait_s=EDIT_WAIT_S):
        raise QueueError(f"{folder / EDIT_LOCK}: another command kept the queue for {EDIT_WAIT_S:.0f} s; try again")
    try:
        queue = read_queue(runs_dir)
        yield queue
        write_text_atomic(folder / QUEUE_FILE, queue.to_json())
    finally:
        lock.release()


def add_runs(runs_dir: str | os.PathLike[str], runs: list[QueuedRun]) -> None:
    """Put ``runs`` at the end of the queue, all or none.

    Raises:
        QueueError: a name is queued already (names say which run ``queue rm`` removes).
    """
    with editing(runs_dir) as queue:
        taken = [run.name for run in runs if queue.find(run.name)]
        if taken:
            raise QueueError(f"the queue already holds {', '.join(taken)}; choose another --name")
        queue.runs.extend(runs)


def remove_run(runs_dir: str | os.PathLike[str], name: str) -> QueuedRun:
    """Take the run called ``name`` out of the queue; returns it.

    Raises:
        QueueError: no queued run has that name, saying which do.
    """
    with editing(runs_dir) as queue:
        run = _named(queue, name)
        queue.runs.remove(run)
    return run


def move_run(runs_dir: str | os.PathLike[str], name: str, by: int) -> int:
    """Move the run called ``name`` ``by`` places (negative: sooner), within the queue; returns its new index."""
    with editing(runs_dir) as queue:
        run = _named(queue, name)
        index = queue.runs.index(run)
        to = max(0, min(len(queue.runs) - 1, index + by))
        queue.runs.insert(to, queue.runs.pop(index))
    return to


def set_paused(runs_dir: str | os.PathLike[str], paused: bool) -> None:
    """Pause the queue (the runner starts no further run) or let it go on."""
    with editing(runs_dir) as queue:
        queue.paused = paused


def _named(queue: Queue, name: str) -> QueuedRun:
    run = queue.find(name)
    left = next((done for done in reversed(queue.done) if done.get("name") == name), None)
    if run is None and left is not None:
        how = f"it started: {left.get('run_dir')}" if left.get("outcome") == "started" else "it was skipped"
        raise QueueError(f"{name} is no longer queued ({how})")
    if run is None:
        queued = ", ".join(r.name for r in queue.runs) or "nothing"
        raise QueueError(f"no queued run is called {name!r} (queued: {queued})")
    return run


def runner_alive(runs_dir: str | os.PathLike[str]) -> bool:
    """Whether a runner works the queue of ``runs_dir`` now (it holds the runner lock)."""
    return is_locked(queue_dir(runs_dir), RUNNER_LOCK)


def start_runner(runs_dir: str | os.PathLike[str]) -> subprocess.Popen[bytes] | None:
    """Start the queue's runner detached (own session, stdin from /dev/null, output appended to queue.log), unless
    one is alive or the queue is paused; returns it, or None when none was started.

    A runner that finds another holding the lock exits at once, so two starts at once leave one runner.
    """
    if runner_alive(runs_dir) or read_queue(runs_dir).paused:
        return None
    folder = queue_dir(runs_dir)
    folder.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    package_root = str(Path(__file__).resolve().parents[2])  # `python -m tuitune…` from a source checkout too
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH")) if p)
    command = [sys.executable, "-m", "tuitune.cli.queue_runner", str(Path(runs_dir).resolve())]
    with open(folder / QUEUE_LOG, "ab") as log:
        return subprocess.Popen(command, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                start_new_session=True, close_fds=True)


def runner_pid(runs_dir: str | os.PathLike[str]) -> int | None:
    """The pid of the live runner, or None."""
    if not runner_alive(runs_dir):
        return None
    try:
        pid = json.loads((queue_dir(runs_dir) / RUNNER_FILE).read_text(encoding="utf-8")).get("pid")
    except (OSError, ValueError, AttributeError):
        return None
    return pid if isinstance(pid, int) else None
