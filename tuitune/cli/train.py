"""``tuitune train``: start a run headless and follow it with a progress bar, or detach.

The config is built in layers (:func:`tuitune.cli.common.config_from_args`, as ``tuitune estimate`` builds
it): defaults ← ``--preset`` ← CONFIG file ← flags (``--model``, ``--data``, ``--max-steps``, ``--stage``;
``--gpus``, ``--nproc``, ``--nnodes``, ``--node-rank``, ``--master`` for several GPUs or machines), and
checked as every door checks it (engine.estimate.prestart) before a run folder exists. The run itself
is a detached engine process (tuitune.runs.launch), so this command only reads the run folder: Ctrl-C
asks the run to stop (checkpoint, adapter, ``run_stopped``); a second Ctrl-C kills the trainer.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from engine.config import ConfigError, RunConfig
from engine.protocol import DOWNLOAD, LOG_FILE, PROGRESS, RUN_FAILED, RUN_FINISHED, RUN_STARTED, TERMINAL_TYPES
from tuitune.cli.common import CONFIG_FLAGS, PRESET_CHOSEN, Refusal, config_from_args, runs_root
from tuitune.cli.follow import follow_to_end, print_failure
from tuitune.runs.folder import resolve_run
from tuitune.runs.launch import default_run_name, new_run_dir, resume_run, start_run
from tuitune.runs.state import describe_download, describe_end, describe_processes


def run(args: argparse.Namespace) -> int:
    """Start (or resume) the run, then detach or follow it to its end."""
    try:
        run_dir, offset = _start(args, runs_root(args))
    except ConfigError as exc:
        print("error: the run config is invalid:", *exc.problems, sep="\n  ", file=sys.stderr)
        return 2
    except Refused as exc:
        for line in exc.lines:
            print(f"error: {line}", file=sys.stderr)
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
        given = [("CONFIG", args.config), ("--preset", args.preset),
                 *((flag, getattr(args, dest, None)) for dest, (flag, _) in CONFIG_FLAGS.items())]
        ignored = [flag for flag, value in given if value is not None and value is not False]
        if ignored:
            raise ValueError(f"--resume continues the run's own config.yaml; {', '.join(ignored)} cannot change it")
        run_dir = resolve_run(args.run_dir, runs_root)
        events = run_dir / "events.jsonl"
        offset = events.stat().st_size if events.exists() else 0
        resume_run(run_dir)
        return run_dir, offset
    named = named_run_dir(args)
    config = config_from_args(args)
    preflight(config, force=getattr(args, "force", False))
    run_dir = named or new_run_dir(runs_root, default_run_name(config))
    start_run(run_dir, config)
    if args.preset_chosen_for_you:  # said once the run started, so errors stay one line
        print(f"preset: {args.preset} ({PRESET_CHOSEN})", file=sys.stderr)
    return run_dir, 0


def named_run_dir(args: argparse.Namespace) -> Path | None:
    """The folder a new run was given, checked before anything else is done: ``--run-dir``, else a LLaMA-Factory
    config's ``output_dir``; None when neither names one (a new folder in the runs folder).

    Raises:
        Refusal: it cannot be a run folder (engine.paths.run_dir_problem), in one line saying where it was named.
    """
    from engine.lf.config import lf_output_dir
    from engine.paths import run_dir_problem

    if args.run_dir:
        if (problem := run_dir_problem(args.run_dir)) is not None:
            raise Refusal(f"--run-dir: {problem}")
        return Path(args.run_dir).expanduser().resolve()
    try:
        folder = lf_output_dir(args.config) if args.config else None
    except ConfigError as exc:
        raise Refusal("; ".join(exc.problems)) from None
    return Path(folder) if folder else None


class Refused(ValueError):
    """The run must not start as it is; ``lines`` say why and what to do, one problem each."""

    def __init__(self, lines: list[str]) -> None:
        super().__init__("\n".join(lines))
        self.lines = lines


def preflight(config: RunConfig, force: bool = False) -> None:
    """The pre-start check every door makes (engine.estimate.prestart), before a run folder exists: its
    dangers and warnings said on stderr, its refusals raised, and a run that will not fit, or whose chat
    template the doctor finds an error in (:func:`check_chat_template`), refused unless ``force``.

    Raises:
        Refused: naming the model, the data file, the setting or the shortfall.
    """
    from engine.estimate.prestart import check_run
    from engine.machine.gpus import list_gpus
    from engine.units import fmt_bytes

    checked = check_run(config, *list_gpus())
    for line in (*checked.dangers, *checked.warnings):
        print(f"warning: {line}", file=sys.stderr)
    if checked.refusals:
        raise Refused(checked.refusals)
    template_refusals = check_chat_template(config, force)
    verdict = checked.verdict
    if template_refusals:
        raise Refused(template_refusals)
    if not verdict.fits and not force and verdict.estimate is not None:
        tips = "".join(f"\n  - {tip}" for tip in verdict.tips)
        raise Refused([f"the run will not fit: it needs about {fmt_bytes(verdict.estimate.total)} and "
                       f"{verdict.capacity.label} has {fmt_bytes(verdict.capacity.bytes)}. Try:{tips}\n"
                       "or pass --force to start it anyway"])


def check_chat_template(config: RunConfig, force: bool) -> list[str]:
    """The chat-template doctor on the run (tuitune.runs.doctor): its warnings said on stderr (and its errors,
    when ``force``); returns the refusal lines of its errors otherwise (empty when it passes)."""
    from tuitune.runs import doctor

    checked = doctor.check_template(config)
    if checked.not_checked:
        print(f"warning: chat template not checked: {checked.not_checked}", file=sys.stderr)
    for verdict in checked.warnings + (checked.errors if force else []):
        print(f"warning: chat template: {verdict.line().split(maxsplit=1)[1]}", file=sys.stderr)
    if force or not checked.errors:
        return []
    return [f"chat template: {v.line().split(maxsplit=1)[1]}" for v in checked.errors] + [
        f"`tuitune data check {' '.join(config.data.train)} --model {config.model.name_or_path}` shows the evidence; "
        "pass --force to start it anyway"]


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
        elif kind == PROGRESS and event.get("phase") == DOWNLOAD:
            self.progress.update(self.task, description=f"downloading {describe_download(event)}")
        elif kind == "step":  # between logs: the bar moves, the figures stay those of the last log
            self.progress.update(self.task, completed=event.get("step"), total=event.get("total_steps"))
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
    rate = f"lr {lr:.1e}  " if lr is not None else ""
    return f"loss {_num(event.get('loss'))}  {rate}{event.get('tokens_per_s') or 0:.0f} tok/s  ETA {eta_text}"


def _num(value: Any) -> str:
    return f"{value:.4f}" if isinstance(value, (int, float)) else "?"
