"""The system sampler: a daemon thread that emits a ``system`` event every few seconds.

GPU figures come from NVML (the ``nvidia-ml-py`` package, module ``pynvml``), process figures
from psutil over the whole trainer process tree (dataloader workers included). Neither needs
torch, so the sampler never touches the training thread's CUDA context.
"""

from __future__ import annotations

import os
import threading
from typing import Any, Callable

import psutil

Emit = Callable[..., Any]


class GpuProbe:
    """Reads memory, utilisation and temperature of every NVIDIA GPU through NVML.

    Attributes:
        note: Why there are no GPU figures ("" when NVML works), e.g. "no NVIDIA driver".
    """

    def __init__(self) -> None:
        self.note = ""
        self._handles: list[Any] = []
        try:
            import pynvml
        except ImportError:
            self.note = "nvidia-ml-py is not installed"
            return
        self._nvml = pynvml
        try:
            pynvml.nvmlInit()
            self._handles = [pynvml.nvmlDeviceGetHandleByIndex(i) for i in range(pynvml.nvmlDeviceGetCount())]
        except pynvml.NVMLError as exc:
            self.note = _nvml_reason(pynvml, exc)
            return
        if not self._handles:
            self.note = "NVML found no GPU"

    def sample(self) -> list[dict[str, Any]]:
        """One record per GPU; fields NVML cannot read on this card are None."""
        return [self._one(i, handle) for i, handle in enumerate(self._handles)]

    def _one(self, index: int, handle: Any) -> dict[str, Any]:
        nvml = self._nvml
        gpu: dict[str, Any] = {"index": index, "name": None, "mem_used_bytes": None, "mem_total_bytes": None,
                               "util_pct": None, "temp_c": None}
        for key, read in (
            ("name", lambda: _text(nvml.nvmlDeviceGetName(handle))),
            ("mem", lambda: nvml.nvmlDeviceGetMemoryInfo(handle)),
            ("util_pct", lambda: nvml.nvmlDeviceGetUtilizationRates(handle).gpu),
            ("temp_c", lambda: nvml.nvmlDeviceGetTemperature(handle, nvml.NVML_TEMPERATURE_GPU)),
        ):
            try:
                value = read()
            except nvml.NVMLError:
                continue  # e.g. utilisation is "not supported" on some MIG slices
            if key == "mem":
                gpu["mem_used_bytes"], gpu["mem_total_bytes"] = int(value.used), int(value.total)
            else:
                gpu[key] = value
        return gpu


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _nvml_reason(pynvml: Any, exc: Exception) -> str:
    """A short human reason for an NVML init failure."""
    if isinstance(exc, getattr(pynvml, "NVMLError_LibraryNotFound", ())):
        return "no NVIDIA driver (NVML library not found)"
    if isinstance(exc, getattr(pynvml, "NVMLError_DriverNotLoaded", ())):
        return "NVIDIA driver not loaded"
    if isinstance(exc, getattr(pynvml, "NVMLError_NoPermission", ())):
        return "no permission to query the GPU (NVML)"
    return f"NVML unavailable: {exc}"


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


def system_sample(gpus: GpuProbe, tree: ProcessTree) -> dict[str, Any]:
    """The fields of one ``system`` event."""
    rss, cpu = tree.sample()
    host = psutil.virtual_memory()
    return {"gpus": gpus.sample(), "gpu_note": gpus.note, "rss_bytes": rss, "cpu_pct": cpu,
            "host_mem_used_bytes": int(host.total - host.available), "host_mem_total_bytes": int(host.total)}


class SystemSampler:
    """A daemon thread emitting ``system`` events every ``interval`` seconds until stopped.

    Args:
        emit: ``emit(type, **fields)``, called from this thread: it must be thread-safe
            (``engine.callbacks.Events.emit`` is).
        interval: Seconds between samples.
    """

    def __init__(self, emit: Emit, interval: float = 5.0) -> None:
        self._emit = emit
        self._interval = interval
        self._stop = threading.Event()
        self._gpus = GpuProbe()
        self._tree = ProcessTree()
        self._thread = threading.Thread(target=self._run, name="system-sampler", daemon=True)

    def start(self) -> "SystemSampler":
        """Start sampling; the first event comes after one interval."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop the thread and wait for it (at most one sample's time)."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                self._emit("system", **system_sample(self._gpus, self._tree))
            except Exception:  # a failed sample must never take the run down
                continue
