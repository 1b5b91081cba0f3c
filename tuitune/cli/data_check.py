"""``tuitune data check PATH [--format F] [--stage S] [--model M] [--cutoff N] [--dataset-dir DIR]``: the
data report in the terminal (with ``--dataset-dir``, PATH names LLaMA-Factory datasets of its dataset_info.json).

Every layout is known: instruction data (alpaca, sharegpt, openai), preference pairs (alpaca_pairs,
sharegpt_pairs, trl_pairs), kto answers (trl_kto, sharegpt_kto, alpaca_kto) and raw text (``text``
fields, ``.txt`` files); pairs and kto answers get statistics per side. With ``--stage`` (when the
command line offers it) only that stage's layouts are accepted, as training would.

Structural checks run in this process (standard library only). With ``--model`` the report
comes from ``python -m engine data`` in a subprocess, which also tokenises every record with
the model's chat template for token statistics and gives the chat-template doctor's verdicts
(:mod:`engine.data.template_doctor`), passing ones too, one line each. Either way the same events
(:mod:`engine.services.data_protocol`) are printed the same way; a line from the subprocess that
is no event is said on stderr and skipped. Exit status: 0 clean (warnings allowed), 1 errors in
the data or an error verdict on the chat template, 2 the check itself could not run (model not
loadable), 141 the reader of stdout left before the end (``| head``), as for a Unix tool that SIGPIPE ends.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from engine.config import DataSection
from engine.data.problems import Problem
from engine.data.report import summary_lines
from engine.data.report_events import VERDICT
from engine.data.source import TEXT_BLOCKS
from engine.data.verdicts import Verdict
from engine.services import jsonlines
from engine.services.data_protocol import CHECKED, DONE, FAILED, FORMAT, PROBLEM, TOKEN_STATS

PRINT_LIMIT = 200
"""Problems printed; the rest are counted."""


def problem_line(event: dict[str, Any]) -> str:
    """One problem event as ``severity  file:line:col record N field F: message``."""
    return f"{event['severity']:<8}{Problem.from_dict(event)}"


def engine_events(args: Any, cutoff: int) -> Iterable[dict[str, Any]]:
    """Events of ``python -m engine data`` for ``args`` (tokenising with ``args.model``)."""
    command = [sys.executable, "-m", "engine", "data", *args.paths, "--format", args.format,
               "--model", args.model, "--cutoff", str(cutoff)]
    if getattr(args, "stage", None):
        command += ["--stage", args.stage]
    # surrogateescape: a byte that is not UTF-8 reaches the reader as a bad line, not as an exception
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True, encoding="utf-8",
                          errors="surrogateescape") as process:
        try:
            yield from readable_events(process.stdout)
        finally:
            if process.poll() is None:  # our reader left early (`| head`): the rest is not wanted
                process.kill()


def readable_events(lines: Iterable[str | bytes]) -> Iterator[dict[str, Any]]:
    """The events in ``lines``; a line that is no event is said on stderr and skipped."""
    for message in jsonlines.read_messages(lines):
        if isinstance(message, jsonlines.BadLine):
            print(f"error: python -m engine data wrote a line that is not an event: {message}", file=sys.stderr)
        else:
            yield message


def local_events(args: Any, cutoff: int) -> Iterable[dict[str, Any]]:
    """Events of the structural checks, run in this process (no tokenizer)."""
    from engine.data.report import Reporter

    events: list[dict[str, Any]] = []
    Reporter(args.paths, args.format, cutoff, emit=events.append, stage=getattr(args, "stage", None)).run()
    return events


def print_report(events: Iterable[dict[str, Any]], out: Callable[[str], None] = print) -> int:
    """Print the report for ``events``; returns the exit status."""
    printed = omitted = 0
    checked = tokens = None
    verdicts: list[Verdict] = []
    result = 2
    for event in events:
        kind = event["type"]
        if kind == FORMAT:
            plain_text = event["format"] == "text" and event["path"].lower().endswith(".txt")
            reading = f" ({TEXT_BLOCKS})" if plain_text else ""
            out(f"{event['path']}: format {event['format'] or 'unknown'}{reading}")
        elif kind == PROBLEM and printed < PRINT_LIMIT:
            out(problem_line(event))
            printed += 1
        elif kind == PROBLEM:
            omitted += 1
        elif kind == CHECKED:
            checked = event
        elif kind == TOKEN_STATS:
            tokens = event
        elif kind == VERDICT:
            verdicts.append(Verdict.from_dict(event))
        elif kind == FAILED:
            print(f"error: {event['message']}", file=sys.stderr)
        elif kind == DONE:
            if omitted:
                out(f"… {omitted:,} more problems not shown")
            for line in summary_lines(checked, tokens):
                out(line)
            if verdicts:
                out("chat template:")
            for line in (line for verdict in verdicts for line in verdict_lines(verdict)):
                out(line)
            out(f"{_count(event['errors'], 'error')}, {_count(event['warnings'], 'warning')}")
            result = 1 if event["errors"] else 0
    return result


def verdict_lines(verdict: Verdict) -> list[str]:
    """A verdict's line, and for one that does not pass its evidence indented below it."""
    lines = [verdict.line()]
    if verdict.evidence and verdict.severity != "ok":
        lines.append(f"          evidence: {verdict.evidence}")
    return lines


def _count(n: int, noun: str) -> str:
    return f"{n:,} {noun}{'' if n == 1 else 's'}"


def run(args: Any) -> int:
    """Handler of ``tuitune data check``; with ``--dataset-dir``, PATH names datasets of its dataset_info.json."""
    from engine.data.formats import LAYOUTS

    if args.format != "auto" and args.format not in LAYOUTS:
        print(f"tuitune data check: --format {args.format!r} is not a layout tuitune knows: "
              f"auto, {', '.join(LAYOUTS)}", file=sys.stderr)
        return 2
    cutoff = args.cutoff or DataSection.model_fields["cutoff_len"].default
    args.paths = [args.path]
    if getattr(args, "dataset_dir", None):
        from engine.config import ConfigError
        from engine.lf.dataset_info import resolve
        from engine.stages import DEFAULT_STAGE

        try:
            resolved = resolve([name.strip() for name in args.path.split(",")], args.dataset_dir,
                               getattr(args, "stage", None) or DEFAULT_STAGE)
        except ConfigError as exc:
            for problem in exc.problems:
                print(f"error: {problem}", file=sys.stderr)
            return 1
        for note in resolved.notes:
            print(f"note: {note}", file=sys.stderr)
        args.paths = resolved.paths
        if args.format == "auto":
            args.format = resolved.format
    events = engine_events(args, cutoff) if args.model else local_events(args, cutoff)
    try:
        return print_report(events)
    except BrokenPipeError:  # `| head` has what it wanted: stop quietly, as Unix tools do
        jsonlines.discard_stdout()
        return jsonlines.PIPE_CLOSED
    finally:
        getattr(events, "close", lambda: None)()  # ends the engine subprocess if it still runs
