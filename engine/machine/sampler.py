"""The system sampler: a daemon thread that emits a ``system`` event every few seconds.

GPU figures come from NVML (:class:`engine.machine.gpus.GpuProbe`), process figures from
psutil over the whole trainer process tree (dataloader workers included), host memory from
:mod:`engine.machine.host`. Under torchrun the tree is the agent's, so the figures cover every
worker of this machine, and the GPUs are the run's own (``CUDA_VISIBLE_DEVICES``, which the
supervisor sets in NVML's order), not every card of the machine. None of them needs torch, so the
sampler never touches the training thread's CUDA context.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from typing import Any

import psutil

from engine.machine.gpus import GpuProbe
from engine.machine.host import host_memory_used

Emit = Callable[..., Any]


class ProcessTree:
    """RSS and CPU of a process and its descendants.

    psutil's first ``cpu_percent()`` of a new ``Process`` is always 0.0, so the objects are
    kept between samples and only new children are added.
    """

    def __init__(self, pid: int | None = None) -> None:
        self.root = psutil.Process(pid or os.getpid())
        self._procs: dict[int, psutil.Process] = {self.root.pid: self.root}
        self.root.cpu_percent()

    def sample(self) -> tuple[int, float]:
        """``(rss_bytes, cpu_pct)`` summed over the tree (cpu_pct may exceed 100 on many cores)."""
        try:
            for child in self.root.children(recursive=True):
                if child.pid not in self._procs:
                    self._procs[child.pid] = child
                    child.cpu_percent()
        except psutil.Error:
            pass
        rss, cpu = 0, 0.0
        for pid, proc in list(self._procs.items()):
            try:
                with proc.oneshot():
                    rss += proc.memory_info().rss
                    cpu += proc.cpu_percent()
            except psutil.Error:
                del self._procs[pid]
        return rss, round(cpu, 1)


def system_sample(gpus: GpuProbe, tree: ProcessTree, only: frozenset[int] | None = None) -> dict[str, Any]:
    """The fields of one ``system`` event; ``only``: the GPU indices of the run (None: every GPU)."""
    rss, cpu = tree.sample()
    used, total = host_memory_used()
    cards = [gpu for gpu in gpus.sample() if only is None or gpu["index"] in only]
    return {"gpus": cards, "gpu_note": gpus.note, "rss_bytes": rss, "cpu_pct": cpu,
            "host_mem_used_bytes": used, "host_mem_total_bytes": total}


def run_gpus() -> frozenset[int] | None:
    """The GPU indices the run may use (``CUDA_VISIBLE_DEVICES`` as indices), None when every one."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is None or not all(part.strip().isdigit() for part in visible.split(",") if part.strip()):
        return None
    return frozenset(int(part) for part in visible.split(",") if part.strip())


def trainer_root() -> int:
    """The process whose tree is the run's on this machine: torchrun's agent for a worker, else us."""
    return os.getppid() if "TORCHELASTIC_RUN_ID" in os.environ else os.getpid()


class SystemSampler:
    """A daemon thread emitting ``system`` events every ``interval`` seconds until stopped.

    Args:
        emit: ``emit(type, **fields)``, called from this thread: it must be thread-safe
            (``engine.recipes.attempt.Events.emit`` is).
        interval: Seconds between samples.
        first_after: Seconds before the first sample: long enough for a CPU share to mean something, short
            enough that the system panel fills while the model is still loading.
    """

    def __init__(self, emit: Emit, interval: float = 5.0, first_after: float = 1.0) -> None:
        self._emit = emit
        self._interval = interval
        self._first_after = first_after
        self._stop = threading.Event()
        self._gpus = GpuProbe()
        self._tree = ProcessTree(trainer_root())
        self._only = run_gpus()
        self._thread = threading.Thread(target=self._run, name="system-sampler", daemon=True)

    def start(self) -> SystemSampler:
        """Start sampling; the first event comes after ``first_after`` seconds, then one every interval."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop the thread and wait for it (at most one sample's time)."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)
        self._gpus.close()

    def _run(self) -> None:
        wait = self._first_after
        while not self._stop.wait(wait):
            wait = self._interval
            try:
                self._emit("system", **system_sample(self._gpus, self._tree, self._only))
            except Exception:  # a failed sample must never take the run down
                continue
