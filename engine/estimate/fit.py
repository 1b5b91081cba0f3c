"""Whether a run fits this machine: the one verdict behind ``tuitune estimate``, the Models
screen, the new-run review and the check before ``tuitune train`` starts. Stdlib only.

The capacity is the largest GPU's memory (each process of a one-GPU run holds the whole run),
or the host's physical memory when there is no GPU; the estimate is
:func:`engine.estimate.memory.estimate` for that device. A run on several GPUs is judged per GPU,
against the smallest GPU it uses, for its strategy (:func:`per_gpu`): under DDP every GPU holds
the whole run plus DDP's gradient buckets; under FSDP the weights, gradients and optimizer state
are sharded over every process of the run, and each GPU gathers one layer at a time. Reading the
model's files is the slow part (config.json and safetensors headers; for a hub id not in the cache, asking the
Hub for them: :func:`engine.models.hub.read_with_hub`), so callers in the app run :func:`judge` in a worker thread.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from engine.estimate.advice import what_to_change
from engine.estimate.memory import Estimate, estimate
from engine.machine.gpus import Gpu
from engine.machine.host import host_memory
from engine.models.hub import read_with_hub
from engine.models.info import ModelError, ModelInfo, check_loadable
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
    info: ModelInfo | None = None
    """The model as read (from its folder, the cache, or the Hub), or None when it cannot be."""

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


def capacity(gpus: list[Gpu], config: RunConfig | None = None) -> Capacity:
    """The largest GPU, or the host's memory when there is none; for a run on several GPUs, the
    smallest of those it uses (each must hold its share)."""
    chosen = run_gpus(config, gpus) if config is not None else gpus
    if len(chosen) > 1:
        gpu = min(chosen, key=lambda g: g.total_bytes)
        return Capacity(gpu.total_bytes, f"GPU {gpu.index} {gpu.name} (each of {len(chosen)} GPUs)", "cuda")
    if gpus:
        gpu = chosen[0] if chosen else max(gpus, key=lambda g: g.total_bytes)
        return Capacity(gpu.total_bytes, f"GPU {gpu.index} {gpu.name}", "cuda")
    local = (config.distributed.nproc or 1) if config is not None else 1
    if local > 1:  # the processes share the host's memory
        return Capacity(host_memory() // local, f"host memory shared by {local} processes (each)", "cpu")
    return Capacity(host_memory(), "host memory", "cpu")


def run_gpus(config: RunConfig, gpus: list[Gpu]) -> list[Gpu]:
    """The GPUs of ``gpus`` that ``train.gpus`` chooses (all, a count or indices; unknown indices left out)."""
    setting = config.train.gpus
    if setting == "all":
        return list(gpus)
    if isinstance(setting, int):
        return list(gpus[:setting])
    return [gpu for gpu in gpus if gpu.index in setting]


def world_size(config: RunConfig, gpus: list[Gpu]) -> int:
    """Processes of the run over every node: ``distributed.nproc`` (else one per chosen GPU) times ``nnodes``."""
    local = config.distributed.nproc or max(1, len(run_gpus(config, gpus)))
    return local * config.distributed.nnodes


def strategy(config: RunConfig) -> str:
    """``ddp`` or ``fsdp``: ``auto`` shards full fine-tuning (FSDP) and replicates adapters (DDP)."""
    chosen = config.distributed.strategy
    if chosen == "auto":
        return "fsdp" if config.adapter.method == "full" else "ddp"
    return chosen


def per_gpu(est: Estimate, info: ModelInfo, config: RunConfig, world: int) -> Estimate:
    """What one GPU (one process) of a run of ``world`` processes holds, for the run's strategy.

    DDP: the whole run, plus its gradient buckets (a second copy of the trained parameters' gradients).
    FSDP: weights, adapter, gradients, optimizer state and the step's temporaries divided by ``world``,
    plus two layers gathered whole at a time (the one computing and the one prefetched); activations
    stay whole (each process has its own batch).
    """
    if world <= 1:
        return est
    if strategy(config) == "ddp":
        note = f"DDP over {world} processes: each GPU holds the whole model and its own batch"
        return replace(est, overhead=est.overhead + est.gradients, notes=(*est.notes, note))
    layers = max(1, info.num_layers or 1)
    gathered = min(2 * est.weights // layers, est.weights - est.weights // world)  # never more than the whole
    note = f"FSDP over {world} processes: weights, gradients and optimizer state sharded, one layer gathered at a time"
    return replace(est, weights=est.weights // world + gathered, adapter=est.adapter // world,
                   gradients=est.gradients // world, optimizer=est.optimizer // world,
                   step_temp=est.step_temp // world, notes=(*est.notes, note))


def verdict(info: ModelInfo, config: RunConfig, gpus: list[Gpu]) -> Verdict:
    """Estimate ``config`` on the already-read model ``info`` against ``gpus`` (or host memory), per GPU
    (per process) when the run has several."""
    room = capacity(gpus, config)
    if not info.known:
        return Verdict(config, room, info=info,
                       reason="No estimate until the engine downloads the model: its size is unknown here.")
    world = world_size(config, gpus)

    def one_gpu(changed: RunConfig) -> Estimate:
        return per_gpu(estimate(info, changed, room.device), info, changed, world)

    est = one_gpu(config)
    tips = what_to_change(est, config, room.bytes, one_gpu) if est.total > room.bytes else []
    if est.total > room.bytes and world > 1 and strategy(config) == "ddp" and config.quant.mode == "none":
        tips.append("distributed.strategy fsdp: shard the model over the GPUs instead of a copy on each")
    return Verdict(config, room, est, tips, info=info)


def judge(config: RunConfig, gpus: list[Gpu]) -> Verdict:
    """Read the config's model, estimate the run and say whether it may start (blocking: reads files, and asks the
    Hub about a hub id that is not in the cache: a missing, gated or unreachable one is a refusal)."""
    try:
        info = read_with_hub(config.model.name_or_path, config.model.revision)
    except (ModelError, OSError) as exc:
        return Verdict(config, capacity(gpus, config), reason="No estimate: the model cannot be read.",
                       refusal=str(exc))
    result = verdict(info, config, gpus)
    try:
        check_loadable(info, config.model.trust_remote_code)
    except ModelError as exc:
        return replace(result, refusal=str(exc))
    return result
