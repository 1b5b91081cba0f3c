"""``tuitune estimate``: the memory a run will need, term by term, against the GPUs found.

The config is built as for ``tuitune train``: defaults ← ``--preset`` ← CONFIG ← ``--model``,
and judged by the same verdict as the app's (engine.estimate.fit).
Exit status: 0 when it fits, 3 when it will not fit, 1 when the model or config is unusable.
"""

from __future__ import annotations

import argparse
import sys

from engine.config import ConfigError, RunConfig
from engine.estimate.advice import breakdown
from engine.estimate.fit import Verdict, verdict
from engine.machine.gpus import Gpu, list_gpus
from engine.models.info import ModelError, ModelInfo, check_loadable, read_model_info
from engine.units import fmt_bytes
from tuitune.cli.common import config_from_args

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
    lines += [f"GPU {g.index}     {g.name}: {fmt_bytes(g.total_bytes)} total, {fmt_bytes(g.free_bytes)} free" for g in gpus]
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
    try:
        config = config_from_args(args)
        info = read_model_info(config.model.name_or_path)
        check_loadable(info, config.model.trust_remote_code)
    except (ConfigError, ModelError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if not info.known:
        print(f"{info.name_or_path}: {' '.join(info.notes)} Its size is unknown until then, so there is no "
              "estimate; download it first (huggingface-cli download) to see one.", file=sys.stderr)
        return 1
    gpus, note = list_gpus()
    result = verdict(info, config, gpus)
    print("\n".join(report(info, config, result, gpus, note)))
    return 0 if result.fits else DOES_NOT_FIT
