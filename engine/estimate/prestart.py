"""Whether a run may start: the one check before a run folder exists, whichever door it comes through.

``tuitune train``, ``tuitune estimate`` and the app's review step all call :func:`check_run`, so one
config gets the same refusals, warnings and dangers from each:

* **refusals** (the run must not start): a tracker package that is not installed, a GPU that is not
  here, FSDP over quantized weights, a model that cannot be read or runs code it is not allowed to (a hub id
  not in the cache is asked of the Hub: missing, gated or private, unreachable), data
  that training would refuse (every record is checked, as ``tuitune data check`` checks it), an RL run's
  reward files that are missing or prompts that nothing rewards;
* **warnings**: a cutoff beyond the model's context, the default reward of an RL run, the ports a run over
  several machines opens;
* **dangers**: code of the user's or of the model's author that the run will execute (allowed, but said);
* the **fit verdict** (:mod:`engine.estimate.fit`), which each door answers its own way: ``tuitune train``
  refuses a run that will not fit unless ``--force``, the review asks, ``tuitune estimate`` exits 3.

It reads the model's files (or asks the Hub) and every data record, so the app runs it in a worker thread. No ML
stack.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field

from engine.config import RunConfig
from engine.estimate.fit import Verdict, judge, strategy
from engine.machine.gpus import DeviceError, Gpu, resolve_devices
from engine.stages import STAGES

TRACKER_PACKAGES = {"tensorboard": "tensorboard", "wandb": "wandb", "mlflow": "mlflow"}
"""The package each experiment tracker of ``train.report_to`` needs."""


@dataclass(frozen=True)
class Prestart:
    """What the check found, for one config on this machine."""

    verdict: Verdict
    """Whether the run fits, and the memory estimate."""
    refusals: list[str] = field(default_factory=list)
    """Why the run must not start, one line each (empty: it may)."""
    warnings: list[str] = field(default_factory=list)
    """What the user should know before it starts."""
    dangers: list[str] = field(default_factory=list)
    """What the run executes that the user must trust: allowed, but said in red."""


def check_run(config: RunConfig, gpus: list[Gpu], gpu_note: str = "") -> Prestart:
    """Check ``config`` as every door does before a run folder exists (reads the model's and the data's files)."""
    refusals: list[str] = []
    if missing := missing_trackers(config.train.report_to):
        refusals.append(missing)
    try:
        resolved = resolve_devices(config, gpus, gpu_note)
    except DeviceError as exc:
        refusals.append(str(exc))
        resolved = config
    several = (resolved.distributed.nproc or 1) * config.distributed.nnodes > 1
    if several and config.quant.mode != "none" and strategy(config) == "fsdp":
        refusals.append(f"distributed.strategy fsdp cannot shard quant.mode {config.quant.mode} weights "
                        "(bitsandbytes): use strategy ddp, or quant.mode none")
    verdict = judge(config, gpus)
    if verdict.refusal:
        refusals.append(verdict.refusal)
    data_refusals = data_problems(config)
    refusals += data_refusals
    warnings: list[str] = []
    dangers = executed_code(config)
    if STAGES[config.stage].samples:
        rewards(config, refusals, warnings, data_ok=not data_refusals)
    if config.distributed.nnodes > 1:
        warnings.append(f"while the run lasts, node 0 listens on {config.distributed.master} and every node on "
                        "ports gloo/NCCL pick, on every interface and unauthenticated: keep the nodes on a private "
                        "network or firewall those ports to them")
    context = verdict.info.context_length if verdict.info is not None else None  # as read once (a hub id: from the Hub)
    if context and config.data.cutoff_len > context:
        warnings.append(f"cutoff {config.data.cutoff_len} is above the model's context of {context} tokens: "
                        "longer records go where it was never trained")
    return Prestart(verdict, refusals, warnings, dangers)


def missing_trackers(trackers: list[str]) -> str | None:
    """Why ``train.report_to`` cannot be honoured here (a tracker's package is not installed), or None."""
    missing = [name for name in trackers if importlib.util.find_spec(TRACKER_PACKAGES[name]) is None]
    if not missing:
        return None
    return (f"train.report_to: {', '.join(missing)} is not installed: pip install "
            f"{' '.join(TRACKER_PACKAGES[name] for name in missing)} (or tuitune[trackers])")


def data_problems(config: RunConfig) -> list[str]:
    """The refusal of data training would refuse (:func:`engine.data.checks.refusal_lines`)."""
    from engine.data.checks import refusal_lines

    return refusal_lines(config.data.train, config.data.format, config.stage)


def executed_code(config: RunConfig) -> list[str]:
    """Code the run will execute that the user must trust: the model's own, a python reward's."""
    dangers = []
    if config.model.trust_remote_code:  # only a run config can say so (presets may not)
        dangers.append(f"this run executes Python code shipped with {config.model.name_or_path} "
                       "(model.trust_remote_code: true); start it only if you trust its author")
    if STAGES[config.stage].samples:
        dangers += [f"this run executes your Python code as a reward: rl.rewards[{n}] {spec.function} "
                    "(rl.allow_code: true); start it only if you trust that file"
                    for n, spec in enumerate(config.rl.rewards) if spec.kind == "python"]
    return dangers


def rewards(config: RunConfig, refusals: list[str], warnings: list[str], data_ok: bool) -> None:
    """What an RL run's rewards need: their files, and references for exact_match (the default)."""
    from engine.data.problems import DataError
    from engine.data.prompts import missing_reward_files, read_prompts, reward_plan

    refusals += missing_reward_files(config.rl)
    if not data_ok:
        return
    try:
        plan = reward_plan(config.rl, read_prompts(config.data, config.stage), config.data.train)
    except DataError as exc:
        more = f" (and {len(exc.problems) - 1 + exc.omitted} more)" if len(exc.problems) > 1 or exc.omitted else ""
        refusals.append(f"data: {exc.problems[0]}{more}")
        return
    if not config.rl.rewards:
        warnings.append(plan)
