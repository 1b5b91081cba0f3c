"""``tuitune chat RUN``: talk to what a run trained — the app's Chat screen, or one answer with ``--once``.

RUN is a run (by name or folder: its adapter, else its newest complete checkpoint) or a
checkpoint folder of a run. The model answers in an engine subprocess (``python -m engine chat``),
so nothing here loads torch. ``--once`` prints the tuned answer (``--base``: the base model's,
with the adapter off; ``--compare``: both, labelled) as it is generated, and exits; ``--once -``
reads the question from stdin. Exit status: 0 answered, 1 the model could not answer (a question
longer than its context, say), 2 refused before the model loads: no such run, nothing trained yet,
weights that are not whole, a bad setting (argparse) or a question over the chat service's limit.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from engine.models.safetensors_header import weights_problem
from engine.services.chat_protocol import DONE, ERROR, FAILED, READY, TOKEN, Generate, Side, generate
from engine.services.jsonlines import MAX_REQUEST_BYTES, dumps
from engine.units import fmt_bytes
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
    if problem := weights_problem(weights):
        print(f"tuitune chat: {problem}", file=sys.stderr)
        return 2
    if args.once is None:
        from tuitune.app import TuituneApp

        chosen = weights if weights.parent.name == "checkpoints" else run_dir
        TuituneApp(runs_dir=runs_dir, chat=chosen).run()
        return 0
    sides: list[Side] = ["base"] if args.base else ["base", "tuned"] if args.compare else ["tuned"]
    try:
        request = question_request(args, sides)
    except ValueError as exc:
        print(f"tuitune chat: {exc}", file=sys.stderr)
        return 2
    return answer_once(run_dir, weights, request)


def question_request(args: argparse.Namespace, sides: list[Side]) -> Generate:
    """The ``generate`` request for ``--once`` (its question read from stdin for ``-``).

    Raises:
        ValueError: the question is empty, not UTF-8, or makes a request longer than the chat service reads.
    """
    question = read_question() if args.once == "-" else args.once
    if not question.strip():
        raise ValueError("--once: the question is empty")
    messages = ([{"role": "system", "content": args.system}] if args.system else []) + [
        {"role": "user", "content": question}]
    request = generate(1, messages, sides, args.max_new_tokens, args.temperature, args.top_p,
                       args.repetition_penalty, args.seed)
    if (size := len(dumps(request).encode("utf-8", "surrogateescape"))) > MAX_REQUEST_BYTES:
        raise ValueError(f"--once: the question makes a request of {fmt_bytes(size)}; the chat service reads "
                         f"requests of up to {fmt_bytes(MAX_REQUEST_BYTES)}")
    return request


def read_question() -> str:
    """The question on stdin, read no further than the longest request the chat service takes.

    Raises:
        ValueError: it is longer than that, or not UTF-8 text.
    """
    data = sys.stdin.buffer.read(MAX_REQUEST_BYTES + 1)
    if len(data) > MAX_REQUEST_BYTES:
        raise ValueError(f"--once -: the question on stdin is longer than {fmt_bytes(MAX_REQUEST_BYTES)}, the most "
                         "a request to the chat service may be")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(f"--once -: the question on stdin is not UTF-8 text (byte {exc.start + 1})") from None


def answer_once(run_dir: Path, weights: Path, request: Generate) -> int:
    """Print the answer(s) to ``request`` as they stream in; returns the exit status."""
    sides = request["sides"]
    processes = EngineProcesses()
    line_open = False  # stdout's last line has no newline yet: a label, or an answer being written
    process = processes.start("chat", "--run-dir", str(run_dir), "--adapter", str(weights), verb="chat")
    try:
        for event in processes.events(process):
            kind = event["type"]
            if kind == READY:
                if "base" in sides and not event["can_compare"]:
                    print("tuitune chat: a full fine-tune has no adapter to switch off: no base answer",
                          file=sys.stderr)
                    return 1
                processes.send("chat", request)
                line_open = _label(sides, sides[0])
            elif kind == TOKEN:
                print(event["text"], end="", flush=True)
                line_open = True
            elif kind == DONE:
                print(flush=True)
                if event["side"] == sides[-1]:
                    return 0
                line_open = _label(sides, sides[sides.index(event["side"]) + 1])
            elif kind in (ERROR, FAILED):
                if line_open:  # an answer cut short: the reason gets a line of its own on a terminal
                    print(flush=True)
                print(f"tuitune chat: {event['message']}", file=sys.stderr)
                return 1
        print("tuitune chat: the chat service ended without answering", file=sys.stderr)
        return 1
    finally:
        processes.stop_all()


def _label(sides: list[Side], side: Side) -> bool:
    """With more than one side, each answer starts with its label; whether one was printed."""
    if len(sides) > 1:
        print(f"{side}: ", end="", flush=True)
    return len(sides) > 1
