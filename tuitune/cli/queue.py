"""``tuitune queue``: runs that start one after another, unattended (the queue: tuitune.runs.queue; what starts
them: tuitune.cli.queue_runner).

``queue add`` composes each run's config exactly as ``tuitune train`` with the same flags would
(tuitune.cli.common.config_from_args) and checks it as train does (preflight) before anything is queued; with
``--sweep KEY=V1,V2`` (repeatable) it queues one run per combination of the values, named by them
(``NAME-lr-1e-4-r-8``). Then it starts the runner unless one works the queue already or the queue is paused.
"""

from __future__ import annotations

import argparse
import itertools
import re
import sys
import time
from pathlib import Path
from typing import Any

import yaml

from tuitune.cli.common import PRESET_CHOSEN, Refusal, runs_root
from tuitune.runs.queue import (
    QUEUE_LOG,
    QueuedRun,
    QueueError,
    add_runs,
    queue_dir,
    read_queue,
    remove_run,
    runner_pid,
    set_paused,
    start_runner,
)

SHORT_KEYS = {"learning_rate": "lr"}
"""How a sweep's name calls a key (otherwise by its last part: ``adapter.r`` is ``r``)."""


def run(args: argparse.Namespace) -> int:
    """List the queue, or add to it, remove from it, pause or resume it."""
    root = runs_root(args)
    command = args.queue_command or "list"
    try:
        return {"list": show, "add": add, "rm": rm, "pause": pause, "resume": resume}[command](args, root)
    except QueueError as exc:
        raise Refusal(str(exc)) from None


def sweep_values(given: list[str]) -> list[tuple[str, list[Any]]]:
    """``["train.learning_rate=1e-4,2e-4"]`` as ``[("train.learning_rate", [0.0001, 0.0002])]``; each value read
    as YAML reads it (a number, true, a word).

    Raises:
        Refusal: a sweep that is not KEY=V1,V2, or a key given twice.
    """
    sweeps: list[tuple[str, list[Any]]] = []
    for text in given:
        key, _, values = text.partition("=")
        key = key.strip()
        if not re.fullmatch(r"[a-z_]+(\.[a-z_]+)?", key) or not values.strip():
            raise Refusal(f"--sweep {text!r}: give a dotted config key and its values, "
                          "e.g. train.learning_rate=1e-4,2e-4")
        if any(key == seen for seen, _ in sweeps):
            raise Refusal(f"--sweep {key}: given twice; list all its values in one --sweep")
        sweeps.append((key, [_value(v.strip()) for v in values.split(",") if v.strip()]))
    return sweeps


def _value(text: str) -> Any:
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        return text
    if isinstance(value, str) and re.fullmatch(r"[-+]?\d+(\.\d*)?[eE][-+]?\d+", text):
        return float(text)  # YAML 1.1 reads 1e-4 (no dot) as a word
    return value


def sweep_name(base: str, combination: tuple[tuple[str, Any], ...]) -> str:
    """``base-lr-0.0001-r-8``: the run of one combination, named by its values."""
    parts = [base]
    for key, value in combination:
        last = key.rpartition(".")[2]
        parts += [SHORT_KEYS.get(last, last), re.sub(r"[^A-Za-z0-9._]+", "-", str(value)).strip("-.") or "x"]
    return "-".join(parts)


def queued_runs(args: argparse.Namespace) -> list[QueuedRun]:
    """The runs ``queue add`` queues, each composed and checked as ``tuitune train`` would.

    Raises:
        Refusal: a sweep, a name or a config that is wrong, or a run the pre-start check refuses.
    """
    from engine.compose import compose_config
    from engine.config import ConfigError
    from tuitune.cli.train import Refused, preflight
    from tuitune.runs.draft import run_name_problem
    from tuitune.runs.launch import default_run_name

    sweeps = sweep_values(args.sweep or [])
    if args.name and (problem := run_name_problem(args.name)) is not None:
        raise Refusal(f"--name: {problem}")
    try:
        base = _base_config(args)
        combos = list(itertools.product(*[[(key, v) for v in values] for key, values in sweeps]))
        base_name = args.name or default_run_name(base)
        runs = []
        for combo in combos:
            flags = {f"--sweep {key}": (key, value) for key, value in combo}
            config = compose_config(base.model_dump(mode="json"), flags=flags) if combo else base
            name = sweep_name(base_name, combo)
            if (problem := run_name_problem(name)) is not None:
                raise Refusal(f"--name: {problem}")
            preflight(config, force=args.force)
            runs.append(QueuedRun(name, config.model_dump(mode="json"), force=args.force))
    except ConfigError as exc:
        raise Refusal("the run config is invalid: " + "; ".join(exc.problems)) from None
    except Refused as exc:
        raise Refusal(" ".join(exc.lines)) from None
    return runs


def _base_config(args: argparse.Namespace) -> Any:
    from engine.config import ConfigError
    from tuitune.cli.common import config_from_args

    try:
        config = config_from_args(args)
    except ConfigError:
        raise
    except (OSError, ValueError) as exc:  # a preset or config file that cannot be read
        raise Refusal(str(exc)) from None
    return config


def add(args: argparse.Namespace, root: Path) -> int:
    """Queue the run or the sweep; start the runner."""
    runs = queued_runs(args)
    add_runs(root, runs)
    for run in runs:
        print(f"queued {run.name}")
    if args.preset_chosen_for_you:  # said once queued, so a refusal stays one line
        print(f"preset: {args.preset} ({PRESET_CHOSEN})", file=sys.stderr)
    _start(root)
    return 0


def _start(root: Path) -> None:
    if read_queue(root).paused:
        print("the queue is paused: tuitune queue resume starts it")
    elif (runner := start_runner(root)) is not None:
        print(f"queue runner started (pid {runner.pid}); log: {queue_dir(root) / QUEUE_LOG}")


def rm(args: argparse.Namespace, root: Path) -> int:
    """Take a run out of the queue."""
    remove_run(root, args.name)
    print(f"removed {args.name} from the queue")
    return 0


def pause(args: argparse.Namespace, root: Path) -> int:
    """Start no further run; the one running goes on."""
    set_paused(root, True)
    print("queue paused: no further run starts (the one running goes on); tuitune queue resume goes on")
    return 0


def resume(args: argparse.Namespace, root: Path) -> int:
    """Let the queue go on (after a pause, a reboot, a runner that was killed)."""
    set_paused(root, False)
    queue = read_queue(root)
    if not queue.runs:
        print("the queue is empty: nothing to start")
        return 0
    if (pid := runner_pid(root)) is not None:
        print(f"the queue runner is working (pid {pid})")
        return 0
    _start(root)
    return 0


def show(args: argparse.Namespace, root: Path) -> int:
    """Print the queue: its runs in order, the runner, and the latest runs that left it."""
    queue = read_queue(root)
    pid = runner_pid(root)
    state = "paused" if queue.paused else (f"runner pid {pid}" if pid else "no runner")
    print(f"queue of {root}: {len(queue.runs)} run(s), {state}")
    for place, run in enumerate(queue.runs, 1):
        added = time.strftime("%b %d %H:%M", time.localtime(run.added))
        print(f"  #{place} {run.name}  {describe(run.config)}  added {added}")
    for done in queue.done[-5:]:
        skipped = done.get("outcome") == "skipped"
        how = f"skipped: {done.get('reason')}" if skipped else f"started: {done.get('run_dir')}"
        print(f"  done {done.get('name')}  {how}")
    if queue.runs and not pid and not queue.paused:
        print("  nothing works the queue: tuitune queue resume starts it")
    return 0


def describe(config: dict[str, Any]) -> str:
    """``tiny-llama sft lora r8 lr 2e-4 3 steps``: what a queued run will train, in a few words."""
    model = Path(str((config.get("model") or {}).get("name_or_path", "?")).rstrip("/")).name
    adapter, train = config.get("adapter") or {}, config.get("train") or {}
    steps = train.get("max_steps")
    words = [model, str(config.get("stage", "")), str(adapter.get("method", "")), f"r{adapter.get('r')}",
             f"lr {train.get('learning_rate')}"]
    return " ".join(w for w in words if w) + (f" {steps} steps" if steps and steps > 0 else "")
