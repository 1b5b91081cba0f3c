"""``tuitune estimate``: the memory a run will need, term by term, against the GPUs found.

The config is built as for ``tuitune train`` (:func:`tuitune.cli.common.config_from_args`: its preset,
a tuitune or LLaMA-Factory CONFIG and the same flags) and checked as every door checks it before a run
starts (engine.estimate.prestart): the same refusals, warnings and fit verdict as ``tuitune train`` and
the app's review. A hub id not in the cache is estimated from what the Hub says of it (its config.json, file
sizes and safetensors headers), without its weights. Exit status: 0 when it fits, 3 when it will not fit, 1 when
the model or config is unusable or the run would be refused.
"""

from __future__ import annotations

import argparse
import sys

from engine.config import ConfigError, RunConfig
from engine.estimate.advice import breakdown
from engine.estimate.fit import Verdict
from engine.machine.gpus import Gpu, list_gpus
from engine.models.info import ModelInfo
from engine.units import fmt_bytes
from tuitune.cli.common import PRESET_CHOSEN, config_from_args

DOES_NOT_FIT = 3


def report(info: ModelInfo, config: RunConfig, result: Verdict, gpus: list[Gpu], gpu_note: str) -> list[str]:
    """The estimate as printable lines: model, breakdown, GPUs, verdict and advice."""
    est = result.estimate
    assert est is not None
    params = f"{info.params_total / 1e6:,.1f}M" if info.params_total else "?"
    lines = [f"model     {info.name_or_path}  ({info.architecture or '?'}, {params} parameters)",
             f"method    {est.method}, batch {config.train.batch_size} x cutoff {config.data.cutoff_len}, "
             f"gradient checkpointing {'on' if config.train.gradient_checkpointing else 'off'}, {est.device}",
             f"trainable {est.trainable_params:,} parameters", ""]
    rows = breakdown(est, config)
    lines += [f"  {name:<12}{fmt_bytes(value):>10}  {why}".rstrip() for name, value, why in rows]
    lines += [f"  {'total':<12}{fmt_bytes(est.total):>10}", ""]
    lines += [f"GPU {g.index}     {g.name}: {fmt_bytes(g.total_bytes)} total, {fmt_bytes(g.free_bytes)} free"
              for g in gpus]
    if not gpus:
        lines.append(f"GPUs      none ({gpu_note}); figures are for CPU training")
    room = result.capacity
    where = "the largest GPU" if room.device == "cuda" else "this machine's memory"
    if result.fits:
        lines.append(f"fits      {fmt_bytes(est.total)} of {fmt_bytes(room.bytes)} ({where})")
    else:
        lines.append(f"WILL NOT FIT: needs {fmt_bytes(est.total)}, {where} has {fmt_bytes(room.bytes)}. Try:")
        lines += [f"  - {tip}" for tip in result.tips]
    return lines + [f"note      {n}" for n in (*info.notes, *est.notes)]


def run(args: argparse.Namespace) -> int:
    """Print the estimate for ``args``; see the module docstring for the exit status."""
    from engine.estimate.prestart import check_run

    try:
        config = config_from_args(args)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if args.preset_chosen_for_you:
        print(f"preset    {args.preset} ({PRESET_CHOSEN})")
    gpus, note = list_gpus()
    checked = check_run(config, gpus, note)
    result = checked.verdict
    if result.estimate is not None and result.info is not None:
        print("\n".join(report(result.info, config, result, gpus, note)))
    for line in (*checked.dangers, *checked.warnings):
        print(f"warning: {line}", file=sys.stderr)
    for line in checked.refusals:
        print(f"error: {line}", file=sys.stderr)
    if checked.refusals:
        return 1
    if result.estimate is None:
        print(f"{config.model.name_or_path}: no estimate: {result.reason}", file=sys.stderr)
        return 1
    return 0 if result.fits else DOES_NOT_FIT
