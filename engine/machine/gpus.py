"""The GPUs on this machine through NVML (nvidia-ml-py, module ``pynvml``): the one reader. No torch.

``list_gpus`` answers "what is there and how much memory is free" (the Models screen, the fit
verdict, ``tuitune estimate``); :class:`GpuProbe` keeps NVML open and samples memory, use and
temperature every few seconds for ``system`` events. Without an NVIDIA driver ``nvmlInit``
raises ``NVMLError_LibraryNotFound``: that is an ordinary answer here (no GPUs and the reason),
never an error.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Gpu:
    """One GPU as NVML reports it."""

    index: int
    name: str
    total_bytes: int
    free_bytes: int
    processes: int = 0
    """Compute processes on it now (another user's training, a server): a busy GPU is worth knowing of."""


class GpuProbe:
    """NVML opened once, for reading every NVIDIA GPU; ``close`` shuts it.

    Attributes:
        note: Why there are no GPU figures ("" when NVML works), e.g. "no NVIDIA driver".
    """

    def __init__(self) -> None:
        self.note = ""
        self._handles: list[Any] = []
        self._nvml: Any = None
        try:
            import pynvml
        except ImportError:
            self.note = "nvidia-ml-py is not installed"
            return
        try:
            pynvml.nvmlInit()
        except pynvml.NVMLError as exc:
            self.note = _reason(pynvml, exc)
            return
        self._nvml = pynvml
        try:
            self._handles = [pynvml.nvmlDeviceGetHandleByIndex(i) for i in range(pynvml.nvmlDeviceGetCount())]
        except pynvml.NVMLError as exc:
            self.note = f"NVML failed: {exc}"
            return
        if not self._handles:
            self.note = "NVML found no GPU"

    def devices(self) -> list[Gpu]:
        """Every GPU with its total and free memory.

        Raises:
            pynvml.NVMLError: a card could not be read.
        """
        nvml, gpus = self._nvml, []
        for index, handle in enumerate(self._handles):
            memory = nvml.nvmlDeviceGetMemoryInfo(handle)
            running = getattr(nvml, "nvmlDeviceGetComputeRunningProcesses", None)  # old bindings lack it
            try:
                busy = len(running(handle)) if running else 0
            except nvml.NVMLError:
                busy = 0
            gpus.append(Gpu(index, _text(nvml.nvmlDeviceGetName(handle)), int(memory.total), int(memory.free), busy))
        return gpus

    def sample(self) -> list[dict[str, Any]]:
        """One record per GPU for a ``system`` event; fields NVML cannot read on this card are None."""
        return [self._one(i, handle) for i, handle in enumerate(self._handles)]

    def close(self) -> None:
        """Shut NVML down (a probe that never opened it has nothing to close)."""
        if self._nvml is not None:
            try:
                self._nvml.nvmlShutdown()
            except self._nvml.NVMLError:
                pass
            self._nvml, self._handles = None, []

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


def list_gpus() -> tuple[list[Gpu], str]:
    """Every NVIDIA GPU with total and free memory, and why the list is empty ("" when it is not)."""
    probe = GpuProbe()
    try:
        gpus = probe.devices()
    except Exception as exc:  # pynvml.NVMLError; pynvml may not even be importable here
        return [], f"NVML failed: {exc}"
    finally:
        probe.close()
    return gpus, "" if gpus else probe.note or "NVML found no GPU"


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _reason(pynvml: Any, exc: Exception) -> str:
    """A short, plain reason for an NVML start-up failure."""
    if isinstance(exc, getattr(pynvml, "NVMLError_LibraryNotFound", ())):
        return "no NVIDIA driver"
    if isinstance(exc, getattr(pynvml, "NVMLError_DriverNotLoaded", ())):
        return "NVIDIA driver not loaded"
    if isinstance(exc, getattr(pynvml, "NVMLError_NoPermission", ())):
        return "no permission to query the GPU (NVML)"
    return f"NVML unavailable: {exc}"


class DeviceError(ValueError):
    """``train.gpus`` or ``distributed`` asks for what this machine does not have; the message says what it has."""


def parse_gpus(text: str) -> str | list[int]:
    """``--gpus`` as the config holds it: ``all`` or GPU indices (``0,1``; a single ``1`` is GPU 1, not a count).

    Raises:
        ValueError: not ``all`` nor a comma-separated list of indices.
    """
    text = text.strip()
    if text == "all":
        return "all"
    parts = [part.strip() for part in text.split(",")]
    if not parts or not all(part.isdigit() for part in parts):
        raise ValueError(f"--gpus {text!r}: give GPU indices like 0,1 (or all)")
    if len(set(parts)) != len(parts):
        raise ValueError(f"--gpus {text!r} names a GPU twice")
    return [int(part) for part in parts]


def resolve_devices(config: Any, found: list[Gpu], note: str = "") -> Any:
    """``config`` with ``train.gpus`` as the list of indices it trains on here and ``distributed.nproc``
    set, checked against the GPUs ``found`` (the supervisor then needs no GPU library).

    ``all`` on a machine without GPUs stays ``all`` (the CPU; ``distributed.nproc`` says how many
    processes, 1 unless given); ``all`` with ``distributed.nproc`` N is the first N GPUs.

    Raises:
        DeviceError: a GPU asked for that is not here, GPUs asked for on a machine without any, or
            ``distributed.nproc`` that is not one process per chosen GPU.
    """
    setting, indices = config.train.gpus, [gpu.index for gpu in found]
    nproc = config.distributed.nproc
    if not found:
        if setting != "all":
            raise DeviceError(f"train.gpus {_show(setting)}: this machine has no GPU ({note or 'NVML found none'}); "
                              "leave train.gpus at all, or use --nproc N for N processes on the CPU")
        return config
    if setting == "all":  # with --nproc N alone, the first N GPUs
        if nproc is not None and nproc > len(indices):
            raise DeviceError(f"distributed.nproc {nproc}: this machine has {len(indices)} GPU(s) "
                              f"({_listed(indices)}); each process trains on one GPU")
        chosen = indices[:nproc] if nproc is not None else indices
    elif isinstance(setting, int):
        if setting > len(indices):
            raise DeviceError(f"train.gpus {setting}: this machine has {len(indices)} GPU(s) ({_listed(indices)})")
        chosen = indices[:setting]
    else:
        missing = [i for i in setting if i not in indices]
        if missing:
            raise DeviceError(f"GPU {', '.join(map(str, missing))} not found: this machine has {_listed(indices)}")
        chosen = list(setting)
    if not chosen:
        raise DeviceError("train.gpus chooses no GPU: name at least one, or all")
    if nproc is not None and nproc != len(chosen):
        raise DeviceError(f"distributed.nproc {nproc} with {len(chosen)} GPU(s) chosen ({_listed(chosen)}): "
                          "each process trains on one GPU; choose as many GPUs as processes, or leave nproc out")
    train = config.train.model_copy(update={"gpus": chosen})
    distributed = config.distributed.model_copy(update={"nproc": len(chosen)})
    return config.model_copy(update={"train": train, "distributed": distributed})


def _listed(indices: list[int]) -> str:
    return "GPU " + ", ".join(map(str, indices)) if indices else "none"


def _show(setting: Any) -> str:
    return ",".join(map(str, setting)) if isinstance(setting, list) else str(setting)
