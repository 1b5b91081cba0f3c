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

While a trainer runs, the supervisor also watches its events (:mod:`engine.health.watchdog`) for what only an
outside watcher can see: a stall (no step for far longer than usual; the trainer may hang), for which it writes the
``alert`` itself. The alerts found in the trainer's own events (a loss that is not a number or spikes, exploding
gradients, answers all alike, GPU memory or temperature, host memory) the trainer writes, right after the event
they come from. A stall whose kind ``train.stop_on`` names stops the run as ``tuitune stop`` would (checkpoint and
adapter saved); the trainer answers the other kinds itself.

A training run's end and each alert (the trainer's, as read from the events, and its own) are announced where the
settings file's ``notify`` section says (a webhook, a command; :mod:`engine.notify`), by a detached sender this
starts and never waits for: a webhook that hangs holds up neither the run nor the queue that waits for its lock to go.
The child starts with SIGTERM/SIGINT/SIGUSR1 blocked; the trainer (engine.recipes.runner)
unblocks them once its handlers are installed, so a stop sent while torch imports is not lost.

Several processes (GPUs, ``distributed.nproc``, machines): when the run's config asks for more than
one trainer process, the child is torchrun's elastic agent (``python -m engine torchrun …
-m engine train``, see :func:`train_command`) and the workers are its children, each in a session
of its own, so a signal to the process group never reaches them. The supervisor therefore delivers
every request to each worker itself (it finds them among its descendants and lists them in
pids.json): a stop is SIGINT to every worker (the ranks agree on it at the step end, save and
finish); SIGTERM is left to the agent, which sends it to tear the workers down when one of them
died, and they then go at once. A kill is SIGKILL to the agent and every worker. The supervisor is
the children's subreaper, so a worker orphaned by a dead agent is still its own to end, and at the
end of an attempt it kills whatever of the tree is left: no process of a run outlives it. When a
worker dies, the agent ends the others and prints which rank failed first; the supervisor reads
that and records ``run_failed`` naming the rank, its exit code and the tail of its log
(``logs/rank-N.log``; rank 0's output is engine.log).
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.checkpoints import latest_checkpoint
from engine.files import write_text_atomic
from engine.health.watchdog import STALL, STALL_FLOOR_S, Alert, Watchdog
from engine.locks import LOCKED, FolderLock, held_elsewhere
from engine.machine.allocator import preload_env
from engine.machine.place import LOOPBACK_RENDEZVOUS
from engine.notify.announce import announce, run_facts
from engine.protocol import (
    ALERT,
    CONTINUED,
    EVENTS_FILE,
    JOB_FAILED,
    JOB_FILE,
    JOB_STOPPED,
    LOG,
    LOG_FILE,
    NODE_FILE,
    PAUSED,
    PEER_LOST,
    PIDS_FILE,
    RUN_FAILED,
    RUN_STOPPED,
    TERMINAL_TYPES,
    EventWriter,
    rank_log,
    read_events_from,
    read_log_tail,
)
from engine.supervisor.failures import ONEDNN_ISA, SIGNAL_HINTS, describe_exit, signal_name

CHILD_BLOCKED = (signal.SIGTERM, signal.SIGINT, signal.SIGUSR1)
PR_SET_PDEATHSIG = 1
PR_SET_CHILD_SUBREAPER = 36
_prctl = getattr(ctypes.CDLL(None, use_errno=True), "prctl", None) if sys.platform.startswith("linux") else None
WATCH_S = 1.0
"""Seconds between the supervisor's looks at the run's new events (and for a stall)."""
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
    holds: str | None = None
    """The job.yaml key naming the folder the job writes its outputs into (its own folder when the key is
    null). The supervisor locks that folder itself (:class:`engine.locks.FolderLock`, ``lock_file=None``)
    before the child starts and hands the lock to it, so two jobs never write one folder at once: a second
    one is refused before it starts."""


JOBS = {"train": Job("train", "--run-dir", RUN_STOPPED, RUN_FAILED),
        "export": Job("export", "--job-dir", JOB_STOPPED, JOB_FAILED, holds="to")}
"""The kinds of long job that differ from the rest: training, which runs in the run folder itself and ends
with run events, and export, which holds its destination. Every other kind (evaluation: ``python -m engine
KIND``) is supervised alike by :func:`job`: it lives in ``RUN/<kind>s/NAME/`` and ends with
``job_finished``/``job_stopped``/``job_failed`` (see docs/run-folder.md)."""


@dataclass(frozen=True)
class Processes:
    """How many trainer processes a run has, where, and on which GPUs (from its config)."""

    nproc: int
    """Trainer processes on this machine."""
    nnodes: int = 1
    node_rank: int = 0
    master: str | None = None
    """``ADDR:PORT`` of node 0 when ``nnodes`` > 1."""
    gpus: tuple[int, ...] | None = None
    """GPU indices this machine's processes use (CUDA_VISIBLE_DEVICES), or None for what is visible."""

    @property
    def world_size(self) -> int:
        """Processes over every node."""
        return self.nproc * self.nnodes

    @property
    def distributed(self) -> bool:
        """Whether the run goes through torchrun."""
        return self.world_size > 1 or self.nnodes > 1


SHUTDOWN_S = 10
"""Seconds torchrun's agent gives workers to end after SIGTERM before SIGKILL (they end at once)."""


def visible_gpus() -> int:
    """NVIDIA GPUs this process may use, without NVML (the supervisor imports no GPU library):
    ``CUDA_VISIBLE_DEVICES`` when set, else the driver's list in /proc (0 without a driver)."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return len([part for part in visible.split(",") if part.strip() and part.strip() != "-1"])
    try:
        return len(os.listdir("/proc/driver/nvidia/gpus"))
    except OSError:
        return 0


def processes(config: Any) -> Processes:
    """The processes of a run from its config: ``train.gpus`` (a list, a count or all) and ``distributed``.

    The app and ``tuitune train`` write ``train.gpus`` as the list of indices they checked against
    NVML; a hand-written ``all`` counts what is visible here.
    """
    dist, setting = config.distributed, config.train.gpus
    if isinstance(setting, list):
        gpus: tuple[int, ...] | None = tuple(setting)
    elif isinstance(setting, int):
        gpus = tuple(range(setting))
    else:
        gpus = None
    found = len(gpus) if gpus is not None else visible_gpus()
    return Processes(nproc=dist.nproc or max(1, found), nnodes=dist.nnodes, node_rank=dist.node_rank,
                     master=dist.master, gpus=gpus)


def train_command(folder: Path, resume: bool, plan: Processes) -> tuple[list[str], dict[str, str]]:
    """The trainer's command line and the environment it adds, for one process or torchrun's agent.

    One node: the loopback rendezvous of :mod:`engine.recipes.torchrun` on a free port of 127.0.0.1 (two
    runs never collide), and the workers' gloo or NCCL traffic on the loopback interface: nothing of
    the run listens beyond loopback. Several: torchrun's static rendezvous at ``master`` with this
    node's rank, so global rank 0 (events, checkpoints, adapter) is always on node 0. No restarts: a
    failed rank ends the run. On CPU, tcmalloc is preloaded where the machine has it.
    """
    train = ["-m", "engine", "train", "--run-dir", str(folder), *(["--resume"] if resume else [])]
    # Indices as nvidia-smi and NVML number the cards (CUDA's own default order is fastest first).
    env = {"CUDA_DEVICE_ORDER": "PCI_BUS_ID",
           "CUDA_VISIBLE_DEVICES": ",".join(map(str, plan.gpus))} if plan.gpus else {}
    if not plan.gpus and visible_gpus() == 0:
        env |= preload_env()  # a CPU run: tcmalloc, when the machine has it (engine.machine.allocator)
    if not plan.distributed:
        return [sys.executable, *train], env
    if plan.nnodes == 1:
        where = ["--nnodes", "1", "--rdzv-backend", LOOPBACK_RENDEZVOUS, "--rdzv-endpoint", "127.0.0.1:0"]
        env |= {"GLOO_SOCKET_IFNAME": "lo", "NCCL_SOCKET_IFNAME": "lo"}
    else:
        where = ["--nnodes", str(plan.nnodes), "--node-rank", str(plan.node_rank),
                 "--master-addr", (plan.master or "").rpartition(":")[0],
                 "--master-port", (plan.master or "").rpartition(":")[2]]
    return [sys.executable, "-m", "engine", "torchrun", *where, "--nproc-per-node", str(plan.nproc),
            "--max-restarts", "0", "--monitor-interval", "0.5", "--shutdown-timeout", str(SHUTDOWN_S), *train], env


def job(kind: str) -> Job:
    """The job of ``kind``; a kind not in ``JOBS`` is supervised like one, ending in job events."""
    return JOBS.get(kind) or Job(kind, "--job-dir", JOB_STOPPED, JOB_FAILED)


def log(message: str) -> None:
    """A line in engine.log from the supervisor."""
    print(f"[supervisor {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def child_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The child's environment: ours plus unbuffered output, the oneDNN ISA cap, ``extra``, and our pid
    (a torchrun worker watches it: it cannot be told of our death as a direct child is)."""
    env = dict(os.environ)
    env.setdefault("ONEDNN_MAX_CPU_ISA", ONEDNN_ISA)
    env["PYTHONUNBUFFERED"] = "1"
    env["TUITUNE_SUPERVISOR_PID"] = str(os.getpid())
    env.update(extra or {})
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
        held: Locks of other folders the job writes into (``Job.holds``), held; handed to the child too.
    """

    def __init__(self, folder: Path, command: list[str], job: Job, lock: FolderLock,
                 plan: Processes | None = None, env: dict[str, str] | None = None,
                 held: tuple[FolderLock, ...] = ()) -> None:
        self.folder = folder
        self.command = command
        self.job = job
        self.lock = lock
        self.held = held
        self.plan = plan or Processes(nproc=1)
        """The run's processes: more than one means the child is torchrun's agent."""
        self.extra_env = env or {}
        self.child: subprocess.Popen[bytes] | None = None
        self.workers: dict[int, int] = {}
        """torchrun's workers on this machine: pid → global rank."""
        self._told_to_stop: set[int] = set()
        self._no_workers_since: float | None = None
        self.ended_before_workers = False
        self.ended_after_end = False
        """Processes still there after the run's end was written were ended (a rank left waiting on a peer)."""
        """A stop came before torchrun had started any worker (a rendezvous still waiting): the agent was ended."""
        self._log_offset = 0
        self.stop_requested = False
        self.kill_requested = False
        self.paused = False
        self.sitter: subprocess.Popen[bytes] | None = None
        """While paused: the process that continues the trainer should this supervisor die (see on_pause)."""
        self._writer_lock = threading.RLock()
        self.stop_on: frozenset[str] = frozenset()
        """Alert kinds that stop the run (``train.stop_on``)."""
        self.stall_after_s = STALL_FLOOR_S
        """Least seconds without a step before a stall alert (``train.stall_after_s``)."""
        self.notifiers: list[subprocess.Popen[bytes]] = []
        """Senders of notifications (engine.notify.announce): not of the run's tree, never ended with it."""
        self._events_offset = 0
        """Where this attempt's events start in events.jsonl."""
        self.dog = Watchdog()
        """The attempt's watchdog, fed its events in order, asked for a stall."""
        self._watched = 0
        """Where the events the watchdog has not read yet start in events.jsonl."""
        self._watch_lock = threading.Lock()
        self.ended_at: float | None = None
        """When (monotonic) the watchdog read the attempt's terminal event."""

    def _running(self) -> bool:
        return self.child is not None and self.child.poll() is None

    def on_sigterm(self, *_: object) -> None:
        """Forward a stop to the child, or skip starting it when it is not running yet; a paused
        trainer is continued first, or it would never hear the stop."""
        self.stop_requested = True
        if self.paused:
            self.on_continue()
        if self._running():
            if self.plan.distributed:
                self.stop_workers()
            else:
                self.child.send_signal(signal.SIGTERM)

    def find_workers(self) -> dict[int, int]:
        """torchrun's workers among our descendants, pid → global rank (read from each one's environment)."""
        import psutil

        found: dict[int, int] = {}
        agent = self.child.pid if self.child is not None else None
        try:
            descendants = psutil.Process().children(recursive=True)
        except psutil.Error:
            return self.workers
        for proc in descendants:
            try:
                words = proc.cmdline()
                if proc.pid == agent or "train" not in words or proc.status() == psutil.STATUS_ZOMBIE:
                    continue
                found[proc.pid] = int(proc.environ().get("RANK", "-1"))
            except (psutil.Error, ValueError):
                continue
        return found

    def refresh_workers(self) -> dict[int, int]:
        """Look for the workers again; pids.json lists them whenever they change."""
        found = self.find_workers()
        if found != self.workers:
            self.workers = found
            self.write_pids()
        return found

    def stop_workers(self) -> None:
        """Ask every worker to stop (SIGINT: the ranks agree on the step, save and finish). Called again
        while the run lives, so a worker that was not started yet is told too; a rendezvous still
        waiting for its peers, with no worker at all after a few seconds, is ended."""
        workers = self.refresh_workers()
        for pid in workers.keys() - self._told_to_stop:
            try:
                os.kill(pid, signal.SIGINT)
            except ProcessLookupError:
                continue
            self._told_to_stop.add(pid)
        now = time.monotonic()
        if workers:
            self._no_workers_since = None
        elif self._no_workers_since is None:
            self._no_workers_since = now
        elif now - self._no_workers_since > NO_WORKERS_S and self._running():
            log("stopped before any worker started: ending torchrun's agent")
            self.ended_before_workers = True
            self.kill_tree()

    def tree(self) -> list[Any]:
        """Every process below us (psutil), but the notification senders and what they started."""
        import psutil

        try:
            below = psutil.Process().children(recursive=True)
        except psutil.Error:
            return []
        senders = {sender.pid for sender in self.notifiers}
        if not senders:
            return below

        def sent(proc: Any) -> bool:
            try:
                return proc.pid in senders or any(parent.pid in senders for parent in proc.parents())
            except psutil.Error:
                return False

        return [proc for proc in below if not sent(proc)]

    def kill_tree(self) -> None:
        """SIGKILL to every process below us: the child, torchrun's workers, anything orphaned to us."""
        import psutil

        for proc in self.tree():
            try:
                proc.kill()
            except psutil.Error:
                pass

    def end_tree(self) -> None:
        """After the child: kill and reap whatever of its tree is left, so nothing outlives the attempt."""
        import psutil

        left = self.tree()
        if left:
            log(f"ending {len(left)} process(es) left behind: {', '.join(str(p.pid) for p in left)}")
        for proc in left:
            try:
                proc.kill()
            except psutil.Error:
                pass
        psutil.wait_procs(left, timeout=10)

    def _tree(self) -> list[int]:
        """The child and its workers (pause and continue reach them all)."""
        if self.plan.distributed:
            self.refresh_workers()
        return [self.child.pid, *self.workers] if self.child is not None else []

    def on_pause(self, *_: object) -> None:
        """SIGTSTP (``tuitune pause``): stop the trainer where it is and record it.

        A sitter process waits for the end of the pause: should this supervisor die meanwhile (killed
        outright), it continues the trainer, which then hears the SIGTERM its parent's death sent it, saves
        and ends as a stop, instead of staying stopped for good with the folder locked.
        """
        if self.job.verb != "train" or self.paused or self.stop_requested or not self._running():
            return
        tree = self._tree()
        for pid in tree:
            _send(pid, signal.SIGSTOP)
        self.sitter = subprocess.Popen([sys.executable, "-c", SITTER, *map(str, reversed(tree))],
                                       stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, start_new_session=True)
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
            for pid in reversed(self._tree()):
                _send(pid, signal.SIGCONT)
        if self.sitter is not None:  # the pause is over: the sitter continues them again (no matter) and ends
            self.sitter.stdin.close()
            self.sitter.wait(timeout=10)
            self.sitter = None
        log("continued the trainer")

    def note(self, type: str, **fields: Any) -> dict[str, Any]:
        """Append one event while the child may be writing too (the writer reads the sequence on); returns it."""
        with self._writer_lock, EventWriter(self.folder) as writer:
            return writer.emit(type, **fields)

    def watch(self) -> None:
        """Read the attempt's events until the child ends: announce the trainer's alerts, write a stall's."""
        while self._running():
            self.look()
            if self.plan.distributed and self.ended_at is not None and time.monotonic() - self.ended_at > END_GRACE_S:
                # The run's end is written (adapter saved): a rank still waiting in a collective for a peer
                # that has left would wait for the process group's timeout (30 minutes).
                log(f"the run ended {END_GRACE_S:.0f} s ago and some of its processes are still there: ending them")
                self.ended_after_end = True
                self.kill_tree()
                return
            stalled = self.dog.stalled(time.time())
            if stalled is not None:
                self.alert(stalled)
            if self.plan.distributed:
                self.stop_workers() if self.stop_requested and not self.kill_requested else self.refresh_workers()
            time.sleep(WATCH_S)

    def look(self) -> None:
        """Feed the events written since the last look to the watchdog, and announce the trainer's alerts among them
        (each once: the watcher thread and the end of the attempt both look)."""
        with self._watch_lock:
            result = read_events_from(self.folder / EVENTS_FILE, self._watched)
            self._watched = result.offset
            for event in result.events:
                if event.get("type") in TERMINAL_TYPES:
                    self.ended_at = time.monotonic()
                self.dog.feed(event)  # for its history of steps; the alerts in the events are the trainer's
                if event.get("type") == ALERT and event.get("kind") != STALL:  # a stall is ours, heard when written
                    self.heard(event)

    def alert(self, alert: Alert) -> None:
        """Record an alert only this watcher sees (a stall); stop the run (saving) when ``train.stop_on`` names
        its kind."""
        stops = alert.kind in self.stop_on and not self.stop_requested
        event = self.note(ALERT, **alert.fields(), stops=stops)
        self.heard(event)
        if stops:
            self.on_sigterm()

    def heard(self, event: dict[str, Any]) -> None:
        """Log and announce an ``alert`` event."""
        log(f"alert {event.get('kind')}: {event.get('message')}"
            + (" (train.stop_on: stopping, saving first)" if event.get("stops") else ""))
        self.announce(event)

    def on_kill_request(self, *_: object) -> None:
        """SIGUSR2 (``tuitune stop --kill``): kill the child at once, and record it as a kill on request."""
        self.kill_requested = self.stop_requested = True
        if self.child is not None and self.child.poll() is None:
            self.kill_tree()

    def announce(self, event: dict[str, Any]) -> None:
        """Send word of a training run's ``event`` (its end, an alert) where the settings file's ``notify`` says, from a
        detached sender (engine.notify): whatever becomes of it, the run and this supervisor go on."""
        if self.job.verb != "train":
            return
        try:
            attempt = read_events_from(self.folder / EVENTS_FILE, self._events_offset).events
            sender = announce(run_facts(self.folder, event, attempt), self.folder / LOG_FILE)
        except Exception as exc:  # a notification must never fail the run; the log says why it was not sent
            log(f"notification of {event.get('type')} not sent: {exc}")
            return
        if sender is not None:
            self.notifiers = [done for done in self.notifiers if done.poll() is None] + [sender]  # reaps ended ones
            log(f"notifying {event.get('type')} (sender pid {sender.pid})")

    def announce_end(self) -> None:
        """Send word of the attempt's terminal event, once it is written (nothing when none was)."""
        events = read_events_from(self.folder / EVENTS_FILE, self._events_offset).events
        ends = [event for event in events if event.get("type") in TERMINAL_TYPES]
        if ends:
            self.announce(ends[-1])

    def write_pids(self) -> None:
        """Record who is who (the child is null until it starts)."""
        pids: dict[str, Any] = {
            "supervisor": os.getpid(), "trainer": self.child.pid if self.child else None,
            "pgid": os.getpgid(0), "host": socket.gethostname(), "started": round(time.time(), 3),
        }
        if self.plan.distributed:  # the trainer is torchrun's agent; the workers train
            pids.update(workers=[{"pid": pid, "rank": rank} for pid, rank in sorted(self.workers.items())],
                        node_rank=self.plan.node_rank, world_size=self.plan.world_size)
        write_text_atomic(self.folder / PIDS_FILE, json.dumps(pids))

    def write_node(self) -> None:
        """``node.json``: which node of the run this folder is, and how many processes it holds."""
        plan = self.plan
        write_text_atomic(self.folder / NODE_FILE, json.dumps({
            "node_rank": plan.node_rank, "nnodes": plan.nnodes, "nproc": plan.nproc, "world_size": plan.world_size,
            "master": plan.master, "gpus": list(plan.gpus) if plan.gpus is not None else None,
            "host": socket.gethostname(), "writes_events": plan.node_rank == 0}, indent=1))

    def run(self) -> int:
        """Start the child, wait for it and record a missing terminal event; returns its exit code."""
        events_path = self.folder / EVENTS_FILE
        offset = self._events_offset = events_path.stat().st_size if events_path.exists() else 0
        self.write_pids()
        if self.stop_requested:
            return self.record(self.job.stopped, **self._nothing_saved())
        if self.plan.distributed:
            self.write_node()
        log(f"starting {self.job.verb}: {shlex.join(self.command)}")
        log_path = self.folder / LOG_FILE
        self._log_offset = log_path.stat().st_size if log_path.exists() else 0
        # The child holds the same open lock file: the folder stays locked while it lives, even
        # should this supervisor be killed first.
        self.child = subprocess.Popen(self.command, env=child_env(self.extra_env), stdin=subprocess.DEVNULL,
                                      preexec_fn=_child_setup(os.getpid()),
                                      pass_fds=(self.lock.fd, *(lock.fd for lock in self.held)))
        self.write_pids()
        if self.stop_requested:
            self.on_sigterm()
        if self.job.verb == "train":
            self.dog, self._watched = Watchdog(self.stall_after_s), offset
            threading.Thread(target=self.watch, name="watchdog", daemon=True).start()
        returncode = self.child.wait()
        log(f"{self.job.verb} exited with {describe_exit(returncode)}")
        if self.job.verb == "train":
            self.look()  # the alerts of the trainer's last second, announced before its end
        self.end_tree()
        ends = [e for e in read_events_from(events_path, offset).events if e["type"] in TERMINAL_TYPES]
        if ends:
            # Processes ended after the run's end was written: the end is what counts, not how they went.
            return (0 if ends[-1]["type"] != self.job.failed else 1) if self.ended_after_end else returncode
        return self.record_exit(returncode)

    def record_exit(self, returncode: int) -> int:
        """Append the terminal event the child could not write."""
        sig = signal_name(-returncode) if returncode < 0 else None
        exit_code = 128 - returncode if returncode < 0 else returncode  # shell convention for signals
        if self.ended_before_workers:
            return self.record(self.job.stopped, **self._nothing_saved())
        if sig == "SIGKILL" and self.kill_requested:
            return self.record(self.job.stopped, **self._killed())
        failed = self.failed_rank() if self.plan.distributed else None
        if self.stop_requested and self.plan.distributed and (failed is None or failed[2] in PEER_LOST_OR_ENDED):
            # A rank that took the stop while still loading left; its peers could only fail to meet it.
            return self.record(self.job.stopped, **self._nothing_saved())
        if failed is not None:
            return self.record_rank_failure(*failed)
        if sig == "SIGTERM" and self.stop_requested:
            # Stopped before its handlers were installed: nothing was saved, but it was asked to end.
            return self.record(self.job.stopped, **self._nothing_saved())
        what = "the trainer" if self.job.verb == "train" else f"the {self.job.verb} job"
        cause = f"{what} was killed by {sig}" if sig else f"{what} exited with code {returncode} without finishing"
        self.record(self.job.failed, cause=cause, exit_code=exit_code, signal=sig, hint=SIGNAL_HINTS.get(sig or ""),
                    log_tail=read_log_tail(self.folder, lines=30), errors=[])
        return returncode if returncode > 0 else exit_code

    def failed_rank(self) -> tuple[int, int, int, str] | None:
        """The first rank that failed, as torchrun's agent printed it into engine.log: (rank, local rank,
        exit code as Popen gives it, host), or None when the agent said nothing of one."""
        try:
            with open(self.folder / LOG_FILE, "rb") as file:
                file.seek(self._log_offset)
                text = file.read().decode("utf-8", "replace")[-65536:]
        except OSError:
            return None
        summary = text[text.rfind("Failures:"):] if "Failures:" in text else text
        failures = [(int(m["rank"]), int(m["local"]), int(m["code"]), m["host"].strip())
                    for m in FAILURE.finditer(summary)]
        if not failures:
            return None
        # The root cause comes last in the report; a rank that only lost its peer (PEER_LOST) or was
        # ended by the agent's teardown (SIGTERM) is not the cause while another failed otherwise.
        failures.insert(0, failures.pop())
        caused = [f for f in failures if f[2] not in PEER_LOST_OR_ENDED]
        return (caused or failures)[0]

    def record_rank_failure(self, rank: int, local_rank: int, returncode: int, host: str) -> int:
        """``run_failed`` naming the rank that failed first, its exit code and the tail of its own log."""
        sig = signal_name(-returncode) if returncode < 0 else None
        exit_code = 128 - returncode if returncode < 0 else returncode
        how = f"was killed by {sig}" if sig else f"exited with code {returncode}"
        where = f"node {self.plan.node_rank}" if self.plan.nnodes > 1 else host
        log_name = rank_log(rank)
        tail = read_log_tail(self.folder, lines=30, name=log_name) or read_log_tail(self.folder, lines=30)
        self.record(self.job.failed, cause=f"rank {rank} of {self.plan.world_size} (local rank {local_rank} on "
                    f"{where}) {how}; torchrun ended the others", exit_code=exit_code, signal=sig,
                    hint=SIGNAL_HINTS.get(sig or ""), log_tail=tail, errors=[], rank=rank, local_rank=local_rank,
                    log_path=log_name if (self.folder / log_name).exists() else LOG_FILE)
        return exit_code or 1

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


END_GRACE_S = 30.0
"""Seconds the processes of a several-process run may outlive its terminal event before they are ended."""
NO_WORKERS_S = 5.0
"""Seconds a stop waits for torchrun to start its workers before it ends the agent instead."""
FAILURE = re.compile(r"host\s*:\s*(?P<host>[^\n]*)\n\s*rank\s*:\s*(?P<rank>\d+)\s*\(local_rank:\s*"
                     r"(?P<local>\d+)\)\s*\n\s*exitcode\s*:\s*(?P<code>-?\d+)")
"""One failed worker in the report torchrun's agent prints when workers fail (the root cause last)."""
PEER_LOST_OR_ENDED = (0, PEER_LOST, -signal.SIGTERM)
"""Worker exits that do not make a rank the cause of a failure: done, lost its peer, ended by the agent."""


SITTER = ("import os, signal, sys\n"
          "sys.stdin.buffer.read()\n"  # until the supervisor ends the pause, or dies and its end of the pipe closes
          "for pid in map(int, sys.argv[1:]):\n"
          "    try:\n"
          "        os.kill(pid, signal.SIGCONT)\n"
          "    except ProcessLookupError:\n"
          "        pass\n")
"""What a pause's sitter runs (``python -c``): wait for the end of the pipe, then continue the given processes."""


def _send(pid: int, sig: signal.Signals) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def watch_settings(run_dir: Path) -> tuple[frozenset[str], float]:
    """``train.stop_on`` and ``train.stall_after_s`` of the run's config; the defaults when it cannot
    be read (the trainer reports a broken config itself)."""
    from engine.config import ConfigError, load_config

    try:
        train = load_config(run_dir / "config.yaml").train
    except (ConfigError, OSError):
        return frozenset(), STALL_FLOOR_S
    return frozenset(train.stop_on), train.stall_after_s


def run_processes(run_dir: Path) -> Processes:
    """The run's processes from its config; one when it cannot be read (the trainer reports a broken config)."""
    from engine.config import ConfigError, load_config

    try:
        return processes(load_config(run_dir / "config.yaml"))
    except (ConfigError, OSError):
        return Processes(nproc=1)


def hold_destination(folder: Path, kind: Job) -> tuple[tuple[FolderLock, ...], str | None]:
    """The lock of the folder the job writes into (``Job.holds``), taken; or why the job must not start.

    The folder is made when it does not exist yet. A job.yaml that cannot be read holds nothing: the job
    itself reports it.
    """
    if kind.holds is None:
        return (), None
    import yaml

    try:
        settings = yaml.safe_load((folder / JOB_FILE).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return (), None
    named = settings.get(kind.holds) if isinstance(settings, dict) else None
    destination = Path(named) if isinstance(named, str) and named else folder
    lock = FolderLock(destination, lock_file=None)
    try:
        destination.mkdir(parents=True, exist_ok=True)
        if lock.acquire():
            return (lock,), None
    except OSError as exc:
        return (), f"{destination} cannot be used: {exc.strerror or exc}; choose another destination"
    return (), held_elsewhere(destination, kind.verb)


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
    plan, env = Processes(nproc=1), {}
    if args.child_command:
        command = shlex.split(args.child_command)
    elif kind.verb == "train":
        plan = run_processes(folder)
        command, env = train_command(folder, args.resume, plan)
    else:
        command = [sys.executable, "-m", "engine", kind.verb, kind.folder_flag, str(folder),
                   *(["--resume"] if args.resume else [])]
    lock = FolderLock(folder)
    if not lock.acquire():
        log(f"{folder} is locked by another attempt that is still running; this one does not start")
        return LOCKED
    held, refusal = hold_destination(folder, kind)
    if refusal is not None:
        log(refusal)
        return Supervisor(folder, command, kind, lock).record(kind.failed, cause=refusal, errors=[])
    if _prctl is not None:  # orphans of the tree (torchrun workers of a dead agent) come to us, to be ended
        _prctl(PR_SET_CHILD_SUBREAPER, 1)
    supervisor = Supervisor(folder, command, kind, lock, plan, env, held)
    if kind.verb == "train":
        supervisor.stop_on, supervisor.stall_after_s = watch_settings(folder)
    for sig in (signal.SIGINT, signal.SIGUSR1, signal.SIGHUP):
        signal.signal(sig, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, supervisor.on_sigterm)
    signal.signal(signal.SIGUSR2, supervisor.on_kill_request)
    signal.signal(signal.SIGTSTP, supervisor.on_pause)
    signal.signal(signal.SIGCONT, supervisor.on_continue)
    code = supervisor.run()
    supervisor.announce_end()
    return code
