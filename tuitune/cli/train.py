"""``tuitune train``: start a run headless and follow it with a progress bar, or detach.

The config is built in layers (engine.compose): defaults ← ``--preset`` ← CONFIG file ← flags
(``--model``, ``--data``, ``--max-steps``, ``--stage``; ``--gpus``, ``--nproc``, ``--nnodes``, ``--node-rank``,
``--master`` for several GPUs or machines). The run itself is a detached engine process
(tuitune.runs.launch), so this command only reads the run folder: Ctrl-C asks the run to
stop (checkpoint, adapter, ``run_stopped``); a second Ctrl-C kills the trainer.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from engine.config import ConfigError, RunConfig
from engine.stages import STAGES
from engine.protocol import LOG_FILE, RUN_FAILED, RUN_FINISHED, RUN_STARTED, TERMINAL_TYPES
from engine.compose import compose_config
from tuitune.cli.common import CONFIG_FLAGS, runs_root
from tuitune.cli.follow import follow_to_end, print_failure
from tuitune.runs.launch import default_run_name, new_run_dir, resume_run, start_run
from tuitune.runs.folder import resolve_run
from tuitune.runs.state import describe_end, describe_processes

def run(args: argparse.Namespace) -> int:
    """Start (or resume) the run, then detach or follow it to its end."""
    try:
        run_dir, offset = _start(args, runs_root(args))
    except ConfigError as exc:
        print("error: the run config is invalid:", *exc.problems, sep="\n  ", file=sys.stderr)
        return 2
    except (OSError, RuntimeError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.detach:
        print(run_dir)
        return 0
    print(f"run folder: {run_dir}  (engine log: {run_dir / LOG_FILE})")
    return Follower(run_dir, offset).follow()


def _start(args: argparse.Namespace, runs_root: Path) -> tuple[Path, int]:
    """Start or resume; returns the run folder and the events offset this session starts at."""
    if args.resume:
        if not args.run_dir:
            raise FileNotFoundError("--resume needs --run-dir (the run to continue)")
        ignored = [flag for flag, value in (("CONFIG", args.config), ("--preset", args.preset),
                                            *((flag, getattr(args, dest, None)) for dest, (flag, _) in CONFIG_FLAGS.items()))
                   if value is not None and value is not False]
        if ignored:
            raise ValueError(f"--resume continues the run's own config.yaml; {', '.join(ignored)} cannot change it")
        run_dir = resolve_run(args.run_dir, runs_root)
        events = run_dir / "events.jsonl"
        offset = events.stat().st_size if events.exists() else 0
        resume_run(run_dir)
        return run_dir, offset
    config = config_of(args)
    if config.model.trust_remote_code:  # only a run config can say so (presets may not): say it loudly
        print(f"warning: this run executes Python code shipped with {config.model.name_or_path} "
              "(model.trust_remote_code: true in the run config)", file=sys.stderr)
    for spec in config.rl.rewards if STAGES[config.stage].samples else []:
        if spec.kind == "python":  # as loudly: only a run config with rl.allow_code can ask for it
            print(f"warning: this run executes your Python code as a reward: {spec.function} "
                  "(rl.allow_code: true in the run config)", file=sys.stderr)
    preflight(config, force=getattr(args, "force", False))
    from engine.lf.config import lf_output_dir

    lf_dir = lf_output_dir(args.config) if args.config and not args.run_dir else None
    if args.run_dir or lf_dir:  # --run-dir over a LLaMA-Factory config's output_dir
        run_dir = Path(args.run_dir or lf_dir).expanduser().resolve()
    else:
        run_dir = new_run_dir(runs_root, default_run_name(config))
    start_run(run_dir, config)
    if getattr(args, "preset_chosen_for_you", False):  # said once the run started, so errors stay one line
        print(f"preset: {args.preset} (none named: the settings file's, else this machine's; "
              "--preset NAME chooses)", file=sys.stderr)
    return run_dir, 0


def config_of(args: argparse.Namespace) -> RunConfig:
    """defaults ← ``--preset`` ← CONFIG (tuitune's or a LLaMA-Factory training YAML) ← the flags given,
    ``--stage`` among them; with ``--dataset-dir DIR``, ``--data`` names datasets of DIR/dataset_info.json."""
    from engine.lf.config import compose_lf, load_lf_or_none
    from engine.lf.dataset_info import data_flags

    flags = {flag: (field, getattr(args, dest)) for dest, (flag, field) in CONFIG_FLAGS.items()
             if getattr(args, dest, None) is not None}
    if args.preset is None and args.config is None:  # never a third, unnamed set of defaults: say which
        from tuitune.settings import default_preset, load_settings

        args.preset, args.preset_chosen_for_you = default_preset(load_settings()), True
    dataset_dir = getattr(args, "dataset_dir", None)
    imported = load_lf_or_none(args.config, dataset_dir=dataset_dir) if args.config else None
    for warning in imported.warnings() if imported else []:
        print(f"warning: {warning}", file=sys.stderr)

    def compose(given: dict) -> RunConfig:
        return compose_lf(imported, args.preset, given) if imported else compose_config(args.preset, args.config, given)

    if dataset_dir and args.data:  # the stage (file, preset or --stage) decides the layout the names resolve to
        stage = compose({flag: value for flag, value in flags.items() if flag != "--data"}).stage
        flags.update(data_flags(args.data, dataset_dir, stage))
    return compose(flags)


class Refused(ValueError):
    """The run must not start as it is; the message says why and what to do."""


def preflight(config: RunConfig, force: bool = False) -> None:
    """What ``estimate`` and ``data check`` would refuse, refused before a run folder exists.

    The model must be readable and allowed (the same verdict as ``tuitune estimate`` and the app's
    review), the run must fit unless ``force``, and every data path must exist and hold a layout
    the stage trains on (its first records are read; the trainer checks every record): data of
    another stage is refused naming the layouts this stage accepts.

    Raises:
        Refused: naming the model, the data file or the shortfall.
    """
    import importlib.util

    from engine.data.checks import layout_problem
    from engine.estimate.fit import judge, strategy
    from engine.machine.gpus import list_gpus, resolve_devices
    from engine.units import fmt_bytes

    missing = [name for name in config.train.report_to if importlib.util.find_spec(name) is None]
    if missing:  # the packages are named like the trackers
        raise Refused(f"train.report_to: {', '.join(missing)} is not installed: pip install {' '.join(missing)}")
    gpus, note = list_gpus()
    resolved = resolve_devices(config, gpus, note)  # a GPU that is not here, or GPUs on a machine without any
    several = (resolved.distributed.nproc or 1) * config.distributed.nnodes > 1
    if several and config.quant.mode != "none" and strategy(config) == "fsdp":
        raise Refused(f"distributed.strategy fsdp cannot shard quant.mode {config.quant.mode} weights (bitsandbytes): "
                      "use strategy ddp, or quant.mode none")
    verdict = judge(config, gpus)
    if verdict.refusal:
        raise Refused(verdict.refusal)
    for path in config.data.train:
        problem = layout_problem(path, config.data.format, config.stage)
        if problem is not None:
            raise Refused(f"data: {problem}")
    if STAGES[config.stage].samples:
        rewards_preflight(config)
    if not verdict.fits and not force and verdict.estimate is not None:
        tips = "".join(f"\n  - {tip}" for tip in verdict.tips)
        raise Refused(f"the run will not fit: it needs about {fmt_bytes(verdict.estimate.total)} and "
                      f"{verdict.capacity.label} has {fmt_bytes(verdict.capacity.bytes)}. Try:{tips}\n"
                      "or pass --force to start it anyway")


def rewards_preflight(config: RunConfig) -> None:
    """An RL run's rewards, refused before a run folder exists: a reward's file that is not there, or
    prompts that nothing rewards (no reward and no reference answers, or a reward that needs them)."""
    from engine.data.problems import DataError
    from engine.data.prompts import missing_reward_files, read_prompts, reward_plan

    if missing := missing_reward_files(config.rl):
        raise Refused(missing[0])
    try:
        reward_plan(config.rl, read_prompts(config.data, config.stage), config.data.train)
    except DataError as exc:
        more = f" (and {len(exc.problems) - 1 + exc.omitted} more)" if len(exc.problems) > 1 or exc.omitted else ""
        raise Refused(f"data: {exc.problems[0]}{more}") from None


def params_line(model: dict[str, Any], method: str | None) -> str:
    """``4,884,480 trained (lora) on a base of 134,515,008 parameters``: the base counted as the Presets
    and Models screens count it (the trainer's total includes the adapter)."""
    trained, total = model.get("params_trainable"), model.get("params_total")
    if not isinstance(trained, int) or not isinstance(total, int):
        return f"parameters trained ({method})"
    base = total if method == "full" else total - trained
    return f"{trained:,} parameters trained ({method}) on a base of {base:,}"


class Follower:
    """Follows a run's events with a rich progress bar until its terminal event."""

    def __init__(self, run_dir: Path, offset: int) -> None:
        self.run_dir = run_dir
        self.offset = offset

    def follow(self) -> int:
        """Show events until the run ends; returns 0 for finished/stopped, 1 for failed or lost."""
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                   TextColumn("{task.fields[stats]}"), TimeElapsedColumn()]
        with Progress(*columns, transient=False) as progress:
            self.progress = progress
            self.task = progress.add_task("starting", total=None, stats="")
            end = follow_to_end(self.run_dir, self.offset, self._show, progress.console.print,
                                "stopping: saving a checkpoint and the adapter (Ctrl-C again to kill)",
                                "killing the trainer without saving")
        return self._report(end)

    def _show(self, event: dict[str, Any]) -> None:
        kind = event["type"]
        if kind == "phase":
            self.progress.update(self.task, description=event.get("name", ""))
        elif kind == RUN_STARTED:
            resumed = event.get("resumed_from_step")
            self.progress.update(self.task, description="training", total=event.get("total_steps"),
                                 completed=resumed or 0)
            model = event.get("model") or {}
            self.progress.console.print(f"{model.get('name_or_path')}: {params_line(model, event.get('method'))}, "
                                        f"{(event.get('data') or {}).get('train_records')} records"
                                        + (f", {processes}" if (processes := describe_processes(event)) else "")
                                        + (f", resumed from step {resumed}" if resumed is not None else ""))
        elif kind == "log":
            self.progress.update(self.task, completed=event["step"], total=event.get("total_steps"),
                                 stats=format_log(event))
        elif kind == "warning":
            self.progress.console.print(f"warning: {event.get('message')}")
        elif kind == "checkpoint":
            self.progress.console.print(f"checkpoint at step {event.get('step')}: {event.get('path')}")

    def _report(self, end: dict[str, Any]) -> int:
        kind = end["type"]
        if kind == RUN_FINISHED:
            print(f"finished at step {end.get('step')}, train loss {_num(end.get('train_loss'))}; "
                  f"adapter: {self.run_dir / (end.get('adapter_path') or 'adapter')}")
            return 0
        if kind in TERMINAL_TYPES and kind != RUN_FAILED:
            print(describe_end(end))
            return 0
        print_failure(end, self.run_dir)
        return 1


def format_log(event: dict[str, Any]) -> str:
    """``loss 1.234  lr 2.0e-04  312 tok/s  ETA 1:05`` for one log event."""
    eta = event.get("eta_s")
    eta_text = f"{int(eta) // 60}:{int(eta) % 60:02d}" if eta is not None else "?"
    lr = event.get("lr")
    return (f"loss {_num(event.get('loss'))}  lr {lr:.1e}  " if lr is not None else f"loss {_num(event.get('loss'))}  ") + \
        f"{event.get('tokens_per_s') or 0:.0f} tok/s  ETA {eta_text}"


def _num(value: Any) -> str:
    return f"{value:.4f}" if isinstance(value, (int, float)) else "?"
