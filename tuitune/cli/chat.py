"""``tuitune chat RUN``: talk to what a run trained — the app's Chat screen, or one answer with ``--once``.

RUN is a run (by name or folder: its adapter, else its newest complete checkpoint) or a
checkpoint folder of a run. The model answers in an engine subprocess (``python -m engine chat``),
so nothing here loads torch. ``--once`` prints the tuned answer (``--base``: the base model's,
with the adapter off; ``--compare``: both, labelled) as it is generated, and exits. Exit status:
0 answered, 1 the model could not answer, 2 no such run or nothing trained yet.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from engine.services.chat_protocol import DONE, ERROR, FAILED, READY, TOKEN, Side, generate
from tuitune.cli.common import runs_root
from tuitune.runs.folder import resolve_trained
from tuitune.services import EngineProcesses


def run(args: argparse.Namespace) -> int:
    """Open the Chat screen on RUN, or answer ``--once`` and exit."""
    runs_dir = runs_root(args)
    try:
        run_dir, weights = resolve_trained(args.run, runs_dir)
    except FileNotFoundError as exc:
        print(f"tuitune chat: {exc}", file=sys.stderr)
        return 2
    if args.once is None:
        from tuitune.app import TuituneApp

        chosen = weights if weights.parent.name == "checkpoints" else run_dir
        TuituneApp(runs_dir=runs_dir, chat=chosen).run()
        return 0
    sides: list[Side] = ["base"] if args.base else ["base", "tuned"] if args.compare else ["tuned"]
    return answer_once(run_dir, weights, args, sides)


def answer_once(run_dir: Path, weights: Path, args: argparse.Namespace, sides: list[Side]) -> int:
    """Print the answer(s) to ``args.once`` as they stream in; returns the exit status."""
    messages = ([{"role": "system", "content": args.system}] if args.system else []) + [
        {"role": "user", "content": args.once}]
    processes = EngineProcesses()
    process = processes.start("chat", "--run-dir", str(run_dir), "--adapter", str(weights), verb="chat")
    try:
        for event in processes.events(process):
            kind = event["type"]
            if kind == READY:
                if "base" in sides and not event["can_compare"]:
                    print("tuitune chat: a full fine-tune has no adapter to switch off: no base answer",
                          file=sys.stderr)
                    return 1
                processes.send("chat", generate(1, messages, sides, args.max_new_tokens, args.temperature,
                                                args.top_p, args.repetition_penalty, args.seed))
                _label(sides, sides[0])
            elif kind == TOKEN:
                print(event["text"], end="", flush=True)
            elif kind == DONE:
                print(flush=True)
                if event["side"] == sides[-1]:
                    return 0
                _label(sides, sides[sides.index(event["side"]) + 1])
            elif kind in (ERROR, FAILED):
                print(f"\ntuitune chat: {event['message']}", file=sys.stderr)
                return 1
        print("tuitune chat: the chat service ended without answering", file=sys.stderr)
        return 1
    finally:
        processes.stop_all()


def _label(sides: list[Side], side: Side) -> None:
    """With more than one side, each answer starts with its label."""
    if len(sides) > 1:
        print(f"{side}: ", end="", flush=True)
