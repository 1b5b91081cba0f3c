"""What every subcommand resolves the same way: the runs folder and a run's config."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from engine import paths
from engine.compose import Flags, compose_config
from engine.config import RunConfig

CONFIG_FLAGS = {"model": ("--model", "model.name_or_path"), "data": ("--data", "data.train"),
                "max_steps": ("--max-steps", "train.max_steps"), "stage": ("--stage", "stage"),
                "gpus": ("--gpus", "train.gpus"), "nproc": ("--nproc", "distributed.nproc"),
                "nnodes": ("--nnodes", "distributed.nnodes"), "node_rank": ("--node-rank", "distributed.node_rank"),
                "master": ("--master", "distributed.master")}
"""Command-line flags that set a config field: argparse dest to (flag, field)."""


def runs_root(args: argparse.Namespace) -> Path:
    """The runs folder: ``--runs-dir`` over ``$TUITUNE_RUNS_DIR`` over the settings file over XDG data."""
    from tuitune.settings import load_settings

    settings = load_settings()
    if settings.problem:
        print(f"warning: settings ignored: {settings.problem}", file=sys.stderr)
    return paths.runs_dir(getattr(args, "runs_dir", None), settings.runs_dir)


def config_from_args(args: argparse.Namespace) -> RunConfig:
    """defaults ← ``--preset`` ← CONFIG ← the flags of ``CONFIG_FLAGS`` that were given.

    Raises:
        ConfigError: naming the file, line and field (or the flag) that is wrong.
    """
    flags: Flags = {flag: (field, getattr(args, dest)) for dest, (flag, field) in CONFIG_FLAGS.items()
                    if getattr(args, dest, None) is not None}
    return compose_config(args.preset, args.config, flags)
