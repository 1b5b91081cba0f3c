"""The GPUs on this machine and their memory, through NVML (nvidia-ml-py). No torch.

Without an NVIDIA driver ``nvmlInit`` raises ``NVMLError_LibraryNotFound``; that is an
ordinary answer here (an empty list and the reason), never an error.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Gpu:
    """One GPU as NVML reports it."""

    index: int
    name: str
    total_bytes: int
    free_bytes: int


def list_gpus() -> tuple[list[Gpu], str]:
    """Every NVIDIA GPU with total and free memory, and why the list is empty ("" when it is not)."""
    try:
        import pynvml
    except ImportError:
        return [], "nvidia-ml-py is not installed"
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError as exc:
        return [], _reason(pynvml, exc)
    try:
        gpus = []
        for index in range(pynvml.nvmlDeviceGetCount()):
            handle = pynvml.nvmlDeviceGetHandleByIndex(index)
            memory = pynvml.nvmlDeviceGetMemoryInfo(handle)
            name = pynvml.nvmlDeviceGetName(handle)
            name = name.decode() if isinstance(name, bytes) else str(name)
            gpus.append(Gpu(index, name, int(memory.total), int(memory.free)))
    except pynvml.NVMLError as exc:
        return [], f"NVML failed: {exc}"
    finally:
        try:
            pynvml.nvmlShutdown()
        except pynvml.NVMLError:
            pass
    return gpus, "" if gpus else "NVML found no GPU"


def _reason(pynvml, exc: Exception) -> str:
    """A short, plain reason for an NVML start-up failure."""
    if isinstance(exc, getattr(pynvml, "NVMLError_LibraryNotFound", ())):
        return "no NVIDIA driver"
    if isinstance(exc, getattr(pynvml, "NVMLError_DriverNotLoaded", ())):
        return "NVIDIA driver not loaded"
    return f"NVML unavailable: {exc}"
