"""``tuitune data check PATH [--format F] [--model M] [--cutoff N]``: the data report in the terminal.

Structural checks run in this process (standard library only). With ``--model`` the report
comes from ``python -m engine data`` in a subprocess, which also tokenises every record with
the model's chat template for token statistics. Either way the same events are printed the
same way. Exit status: 0 clean (warnings allowed), 1 errors in the data, 2 the check itself
could not run (model not loadable).
"""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any, Callable, Iterable

from engine.config import DataSection
from engine.data.problems import Problem

PRINT_LIMIT = 200
"""Problems printed; the rest are counted."""


def problem_line(event: dict[str, Any]) -> str:
    """One problem event as ``severity  file:line:col record N field F: message``."""
    return f"{event['severity']:<8}{Problem.from_dict(event)}"


def summary_lines(checked: dict[str, Any] | None, tokens: dict[str, Any] | None) -> list[str]:
    """The statistics part of the report, from the ``checked`` and ``token_stats`` events."""
    lines = []
    if checked:
        turns = checked["turns"]
        lines.append(f"records: {checked['records']:,} ({checked['usable']:,} usable); turns per record: "
                     f"min {turns['min']}, mean {turns['mean']:.1f}, max {turns['max']}")
    if tokens:
        lines.append(f"tokens (cutoff {tokens['cutoff']}): p50 {tokens['p50']}, p95 {tokens['p95']}, "
                     f"max {tokens['max']}; truncated {tokens['truncated']:,}, dropped {tokens['dropped']:,} "
                     f"(no trained token left); trained tokens {tokens['trained_tokens']:,}")
        lines.append("lengths: " + ", ".join(
            f"{'>' + str(tokens['cutoff']) if b['upto'] is None else '≤' + str(b['upto'])}: {b['count']}"
            for b in tokens["histogram"]))
    return lines


def engine_events(args: Any, cutoff: int) -> Iterable[dict[str, Any]]:
    """Events of ``python -m engine data`` for ``args`` (tokenising with ``args.model``)."""
    command = [sys.executable, "-m", "engine", "data", args.path, "--format", args.format,
               "--model", args.model, "--cutoff", str(cutoff)]
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True, encoding="utf-8") as process:
        for line in process.stdout:
            if line.startswith("{"):
                yield json.loads(line)


def local_events(args: Any, cutoff: int) -> Iterable[dict[str, Any]]:
    """Events of the structural checks, run in this process (no tokenizer)."""
    from engine.data.report import Reporter

    events: list[dict[str, Any]] = []
    Reporter([args.path], args.format, cutoff, emit=events.append).run()
    return events


def print_report(events: Iterable[dict[str, Any]], out: Callable[[str], None] = print) -> int:
    """Print the report for ``events``; returns the exit status."""
    printed = omitted = 0
    checked = tokens = None
    result = 2
    for event in events:
        kind = event["type"]
        if kind == "format":
            out(f"{event['path']}: format {event['format'] or 'unknown'}")
        elif kind == "problem" and printed < PRINT_LIMIT:
            out(problem_line(event))
            printed += 1
        elif kind == "problem":
            omitted += 1
        elif kind == "checked":
            checked = event
        elif kind == "token_stats":
            tokens = event
        elif kind == "failed":
            print(f"error: {event['message']}", file=sys.stderr)
        elif kind == "done":
            if omitted:
                out(f"… {omitted:,} more problems not shown")
            for line in summary_lines(checked, tokens):
                out(line)
            out(f"{_count(event['errors'], 'error')}, {_count(event['warnings'], 'warning')}")
            result = 1 if event["errors"] else 0
    return result


def _count(n: int, noun: str) -> str:
    return f"{n:,} {noun}{'' if n == 1 else 's'}"


def run(args: Any) -> int:
    """Handler of ``tuitune data check``."""
    cutoff = args.cutoff or DataSection.model_fields["cutoff_len"].default
    events = engine_events(args, cutoff) if args.model else local_events(args, cutoff)
    return print_report(events)
