"""What every subcommand resolves the same way: the runs folder, a run, and a run's config; and how a
command refuses before it starts (:class:`Refusal`: one line, exit 2)."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from engine import paths
from engine.protocol import CONFIG_FILE, EVENTS_FILE

if TYPE_CHECKING:  # pydantic costs about 0.15 s to import: stop, pause and continue need none of it
    from engine.compose import Flags
    from engine.config import RunConfig
    from tuitune.runs.launch import Attempt

CONFIG_FLAGS = {"model": ("--model", "model.name_or_path"), "data": ("--data", "data.train"),
                "max_steps": ("--max-steps", "train.max_steps"), "stage": ("--stage", "stage"),
                "gpus": ("--gpus", "train.gpus"), "nproc": ("--nproc", "distributed.nproc"),
                "nnodes": ("--nnodes", "distributed.nnodes"), "node_rank": ("--node-rank", "distributed.node_rank"),
                "master": ("--master", "distributed.master")}
"""Command-line flags that set a config field: argparse dest to (flag, field)."""


class Refusal(Exception):
    """A command cannot begin: what it was given, or the folder it names, is wrong or cannot be read. The
    message is one line saying what and where; ``tuitune.__main__`` prints it and exits 2."""


def runs_root(args: argparse.Namespace) -> Path:
    """The runs folder: ``--runs-dir`` over ``$TUITUNE_RUNS_DIR`` over the settings file over XDG data.

    Raises:
        Refusal: it is a file (or anything else that is not a folder), naming which of the four chose it.
    """
    from tuitune.settings import load_settings, settings_path

    settings = load_settings()
    if settings.problem:
        print(f"warning: settings ignored: {settings.problem}", file=sys.stderr)
    root, origin = paths.choose_runs_dir(getattr(args, "runs_dir", None), settings.runs_dir, str(settings_path()))
    if os.path.lexists(root) and not os.path.isdir(root):
        raise Refusal(f"{origin}: {root} is not a folder (it should hold run folders)")
    return root


def find_run(args: argparse.Namespace) -> Path:
    """The run folder ``args.run`` names: a path, or a name in the runs folder.

    Raises:
        Refusal: there is no such run, or a folder on the way cannot be read.
    """
    from tuitune.runs.folder import resolve_run

    try:
        return resolve_run(args.run, runs_root(args))
    except FileNotFoundError as exc:
        raise Refusal(str(exc)) from None
    except OSError as exc:
        path = Path(exc.filename or args.run)
        # Looking for a run's files failed on the folder that holds them: that folder is what cannot be read.
        folder = path.parent if path.name in (CONFIG_FILE, EVENTS_FILE) else path
        raise Refusal(f"{folder}: cannot read: {exc.strerror or exc}") from None


ENDING_WAIT_S = 60.0
"""How long a command waits for the processes of an attempt whose end is recorded to leave."""


def running_attempt(args: argparse.Namespace) -> Attempt | None:
    """The running attempt of the run ``args.run`` names, for stop, pause and continue; None once it has said
    on stderr, in the same line for all three, that the run is not running.

    Whether it runs is its folder's lock alone (tuitune.runs.launch.look). An attempt whose end is recorded
    is not running: its leaving processes are waited for, so the folder is free when this says so.

    Raises:
        Refusal: no such run, or its folder, lock, pids.json or events.jsonl cannot be read.
    """
    from tuitune.runs.launch import look, wait_until_gone

    run_dir = find_run(args)
    try:
        attempt = look(run_dir)
        if attempt.live and attempt.end is not None:
            wait_until_gone(run_dir, ENDING_WAIT_S)
            attempt = look(run_dir)
    except OSError as exc:
        raise Refusal(str(exc)) from None
    if attempt.live and attempt.end is None:
        return attempt
    print(attempt.not_running(), file=sys.stderr)
    return None


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
    from engine.compose import compose_config
    from engine.lf.config import compose_lf, load_lf_or_none
    from engine.lf.dataset_info import data_flags

    flags: Flags = {flag: (field, getattr(args, dest)) for dest, (flag, field) in CONFIG_FLAGS.items()
                    if getattr(args, dest, None) is not None}
    args.preset_chosen_for_you = False
    if args.preset is None and args.config is None:
        from tuitune.settings import default_preset, load_settings

        args.preset, args.preset_chosen_for_you = default_preset(load_settings()), True
    dataset_dir = getattr(args, "dataset_dir", None)
    imported = load_lf_or_none(args.config, dataset_dir=dataset_dir,
                               model=getattr(args, "model", None)) if args.config else None
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
