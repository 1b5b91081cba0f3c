"""Whether a run fits this machine: the one verdict behind ``tuitune estimate``, the Models
screen, the new-run review and the check before ``tuitune train`` starts. Stdlib only.

The capacity is the largest GPU's memory (each process of a one-GPU run holds the whole run),
or the host's physical memory when there is no GPU; the estimate is
:func:`engine.estimate.memory.estimate` for that device. Reading the model's files is the slow
part (config.json and safetensors headers), so callers in the app run :func:`judge` in a
worker thread.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from engine.estimate.advice import what_to_change
from engine.estimate.memory import Estimate, estimate
from engine.machine.gpus import Gpu
from engine.machine.host import host_memory
from engine.models.info import ModelError, ModelInfo, check_loadable, read_model_info
from engine.units import fmt_bytes

if TYPE_CHECKING:
    from engine.config import RunConfig


@dataclass(frozen=True)
class Capacity:
    """What a run is judged against: one GPU, or the host's memory without one."""

    bytes: int
    """Memory available to the run."""
    label: str
    """What it is, e.g. ``GPU 0 NVIDIA L4`` or ``host memory``."""
    device: str
    """cuda or cpu: decides the estimate's dtypes and overhead."""


@dataclass(frozen=True)
class Verdict:
    """The answer for one config on this machine."""

    config: RunConfig
    """The config judged."""
    capacity: Capacity
    """The largest GPU, or host memory."""
    estimate: Estimate | None = None
    """The memory estimate, or None when there is none (see ``reason``)."""
    tips: list[str] = field(default_factory=list)
    """What to change so it fits (empty when it fits)."""
    reason: str = ""
    """Why there is no estimate (an unreadable model, a hub id not downloaded yet)."""
    refusal: str | None = None
    """Why the run must not start at all (the model cannot load, or needs remote code not allowed)."""

    @property
    def fits(self) -> bool:
        """False only when an estimate says the run needs more memory than there is."""
        return self.estimate is None or self.estimate.total <= self.capacity.bytes

    def question(self) -> str:
        """What a confirmation before starting anyway asks."""
        need = fmt_bytes(self.estimate.total) if self.estimate is not None else "?"
        tips = "".join(f"\n  • {tip}" for tip in self.tips[:3])
        return (f"This run will not fit: it needs about {need} and {self.capacity.label} has "
                f"{fmt_bytes(self.capacity.bytes)}, so it will most likely stop with out-of-memory.\n"
                f"Try:{tips}\n\nStart it anyway?")


def capacity(gpus: list[Gpu]) -> Capacity:
    """The largest GPU, or the host's memory when there is none."""
    if gpus:
        gpu = max(gpus, key=lambda g: g.total_bytes)
        return Capacity(gpu.total_bytes, f"GPU {gpu.index} {gpu.name}", "cuda")
    return Capacity(host_memory(), "host memory", "cpu")


def verdict(info: ModelInfo, config: RunConfig, gpus: list[Gpu]) -> Verdict:
    """Estimate ``config`` on the already-read model ``info`` against ``gpus`` (or host memory)."""
    room = capacity(gpus)
    if not info.known:
        return Verdict(config, room, reason="No estimate until the engine downloads the model: its size is unknown here.")
    est = estimate(info, config, room.device)
    tips = what_to_change(est, config, room.bytes, lambda changed: estimate(info, changed, room.device)) \
        if est.total > room.bytes else []
    return Verdict(config, room, est, tips)


def judge(config: RunConfig, gpus: list[Gpu]) -> Verdict:
    """Read the config's model, estimate the run and say whether it may start (blocking: reads files)."""
    try:
        info = read_model_info(config.model.name_or_path)
    except (ModelError, OSError) as exc:
        return Verdict(config, capacity(gpus), reason="No estimate: the model cannot be read.", refusal=str(exc))
    result = verdict(info, config, gpus)
    try:
        check_loadable(info, config.model.trust_remote_code)
    except ModelError as exc:
        return replace(result, refusal=str(exc))
    return result
