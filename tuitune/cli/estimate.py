"""``tuitune estimate``: the memory a run will need, term by term, against the GPUs found.

The config is built as for ``tuitune train``: defaults ← ``--preset`` ← CONFIG ← ``--model``.
Exit status: 0 when it fits, 3 when it will not fit, 1 when the model or config is unusable.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from engine.config import ConfigError, RunConfig, deep_merge, load_config, parse_config
from engine.estimate import Estimate, estimate, fmt_bytes
from engine.estimate_report import breakdown, what_to_change
from engine.gpus import Gpu, list_gpus
from engine.model_info import ModelError, ModelInfo, check_loadable, read_model_info

DOES_NOT_FIT = 3


def build_config(args: argparse.Namespace) -> RunConfig:
    """defaults ← preset ← config file ← ``--model``.

    Raises:
        ConfigError: naming the file, line and field that is wrong.
    """
    base: dict[str, Any] = _preset(args.preset) if args.preset else {}
    config = load_config(args.config, base=base) if args.config else parse_config("", "<defaults>", base=base)
    if args.model:
        config = RunConfig.model_validate(deep_merge(config.model_dump(mode="json"), {"model": {"name_or_path": args.model}}))
    return config


def _preset(name_or_path: str) -> dict[str, Any]:
    """A preset's values, by name or YAML path (engine.presets)."""
    from engine.presets import load_preset

    return load_preset(name_or_path)


def host_memory() -> int:
    """Physical memory of this machine in bytes."""
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def fits(est: Estimate, gpus: list[Gpu]) -> tuple[bool, int]:
    """Whether the run fits the largest GPU (or host memory on CPU), and that capacity."""
    capacity = max((g.total_bytes for g in gpus), default=0) if est.device == "cuda" else host_memory()
    return est.total <= capacity, capacity


def report(info: ModelInfo, config: RunConfig, est: Estimate, gpus: list[Gpu], gpu_note: str) -> list[str]:
    """The estimate as printable lines: model, breakdown, GPUs, verdict and advice."""
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
    ok, capacity = fits(est, gpus)
    where = "the largest GPU" if est.device == "cuda" else "this machine's memory"
    if ok:
        lines.append(f"fits      {fmt_bytes(est.total)} of {fmt_bytes(capacity)} ({where})")
    else:
        lines.append(f"WILL NOT FIT: needs {fmt_bytes(est.total)}, {where} has {fmt_bytes(capacity)}. Try:")
        lines += [f"  - {tip}" for tip in what_to_change(est, config, capacity)]
    return lines + [f"note      {n}" for n in (*info.notes, *est.notes)]


def run(args: argparse.Namespace) -> int:
    """Print the estimate for ``args``; see the module docstring for the exit status."""
    try:
        config = build_config(args)
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
    est = estimate(info, config, device="cuda" if gpus else "cpu")
    print("\n".join(report(info, config, est, gpus, note)))
    return 0 if fits(est, gpus)[0] else DOES_NOT_FIT
