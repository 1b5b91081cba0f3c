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
    """The run config of ``tuitune train`` and ``tuitune estimate``: defaults ← ``--preset`` ← CONFIG
    (tuitune's or a LLaMA-Factory training YAML) ← the flags of ``CONFIG_FLAGS`` that were given, ``--stage``
    among them; with ``--dataset-dir DIR``, ``--data`` names datasets of DIR/dataset_info.json.

    With neither a preset nor a config named, the preset is the settings file's, else this machine's
    (``args.preset`` is set to it and ``args.preset_chosen_for_you`` to True, for the command to say so):
    never a third, unnamed set of defaults. A LLaMA-Factory file's notes that need a look are printed.

    Raises:
        ConfigError: naming the file, line and field (or the flag) that is wrong.
    """
    from engine.lf.config import compose_lf, load_lf_or_none
    from engine.lf.dataset_info import data_flags

    flags: Flags = {flag: (field, getattr(args, dest)) for dest, (flag, field) in CONFIG_FLAGS.items()
                    if getattr(args, dest, None) is not None}
    args.preset_chosen_for_you = False
    if args.preset is None and args.config is None:
        from tuitune.settings import default_preset, load_settings

        args.preset, args.preset_chosen_for_you = default_preset(load_settings()), True
    dataset_dir = getattr(args, "dataset_dir", None)
    imported = load_lf_or_none(args.config, dataset_dir=dataset_dir) if args.config else None
    for warning in imported.warnings() if imported else []:
        print(f"warning: {warning}", file=sys.stderr)

    def compose(given: Flags) -> RunConfig:
        return compose_lf(imported, args.preset, given) if imported else compose_config(args.preset, args.config, given)

    if dataset_dir and getattr(args, "data", None):  # the stage (file, preset or --stage) decides the layout
        stage = compose({flag: value for flag, value in flags.items() if flag != "--data"}).stage
        flags.update(data_flags(args.data, dataset_dir, stage))
    return compose(flags)


PRESET_CHOSEN = "none named: the settings file's, else this machine's; --preset NAME chooses"
"""Why a command used the preset it names, when the user named none."""
