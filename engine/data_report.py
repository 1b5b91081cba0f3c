"""``python -m engine data``: instruction data checked and tokenised, reported as JSON lines.

The app may not import the ML stack, so it runs this module in a subprocess and reads its
stdout, one JSON object a line, flushed as it goes:

Report mode, ``python -m engine data PATH… [--format F] [--model M] [--cutoff N]``::

    {"type": "started", "paths": [...], "model": "...", "cutoff": 512}
    {"type": "format", "path": "...", "format": "alpaca"}
    {"type": "problem", "file": ..., "line": ..., "record": ..., "field": ..., "message": ..., "severity": ...}
    {"type": "progress", "phase": "check"|"tokens", "records": 1200, "fraction": 0.4}
    {"type": "checked", "records": ..., "usable": ..., "errors": ..., "warnings": ..., "turns": {...}}
    {"type": "token_stats", "records": ..., "p50": ..., "p95": ..., "max": ..., "mean": ..., "cutoff": ...,
     "truncated": ..., "dropped": ..., "trained_tokens": ..., "histogram": [{"upto": 64, "count": 3}, ...]}
    {"type": "done", "errors": ..., "warnings": ...}

Token statistics come only with ``--model``. Exit status 1 when there are errors.

Serve mode, ``python -m engine data --serve --model M --cutoff N``: prints ``{"type": "ready"}``,
then answers each request line ``{"id": 1, "messages": [...]}`` on stdin with ``{"type":
"encoded", "id": 1, "ids": [...], "trained": [...], "segments": [...], "full_length": ...,
"cutoff": ..., "truncated": ...}``; segments are runs of ``{"text", "trained", "cut"}``. Both
modes make labels with :func:`engine.data_encode.encode_conversation`, as training does.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any, Callable

from engine.data_checks import CheckedRecord, check_file, detect_file_format
from engine.data_encode import IGNORE_INDEX, empty_after_cut, encode_conversation
from engine.data_formats import with_system
from engine.data_source import Problem, SourceError, resolve_path

PROGRESS_EVERY_S = 0.1
UNLIMITED = 1 << 40
"""Cutoff used to encode a record whole, so the view can show what lies past the real cutoff."""


def emit(event: dict[str, Any]) -> None:
    """Write one event line and flush it at once (the app reads as we go)."""
    sys.stdout.write(json.dumps(event, ensure_ascii=False) + "\n")
    sys.stdout.flush()


def load_tokenizer(model: str) -> Any:
    """The tokenizer of ``model`` (alias, folder or hub id), remote code off."""
    from transformers import AutoTokenizer

    from engine.embedded import resolve_model

    return AutoTokenizer.from_pretrained(resolve_model(model), trust_remote_code=False)


def percentile(sorted_values: list[int], share: float) -> int:
    """The nearest-rank percentile of already sorted values (0 when empty)."""
    if not sorted_values:
        return 0
    rank = max(0, min(len(sorted_values) - 1, round(share * len(sorted_values) + 0.5) - 1))
    return sorted_values[rank]


def token_stats(lengths: list[int], cutoff: int, truncated: int, dropped: int, trained: int) -> dict[str, Any]:
    """Token-length statistics against the cutoff: percentiles and an 8-bin histogram plus '> cutoff'."""
    values = sorted(lengths)
    edges = [cutoff * (i + 1) // 8 for i in range(8)]
    counts = [0] * 9
    for value in values:
        counts[next((i for i, edge in enumerate(edges) if value <= edge), 8)] += 1
    histogram = [{"upto": edge, "count": count} for edge, count in zip(edges, counts)]
    histogram.append({"upto": None, "count": counts[8]})
    return {"records": len(values), "p50": percentile(values, 0.5), "p95": percentile(values, 0.95),
            "max": values[-1] if values else 0, "mean": sum(values) / len(values) if values else 0.0,
            "cutoff": cutoff, "truncated": truncated, "dropped": dropped, "trained_tokens": trained,
            "histogram": histogram}


class Throttle:
    """Calls ``send`` at most every PROGRESS_EVERY_S seconds (and always when forced)."""

    def __init__(self, send: Callable[[], None]) -> None:
        self.send = send
        self.last = 0.0

    def __call__(self, force: bool = False) -> None:
        """Send now if enough time has passed or ``force``."""
        now = time.monotonic()
        if force or now - self.last >= PROGRESS_EVERY_S:
            self.last = now
            self.send()


def report(paths: list[str], fmt: str, tokenizer: Any | None, cutoff: int, system_prompt: str | None,
           limit: int | None = None, emit: Callable[[dict[str, Any]], None] = emit) -> int:
    """Check (and with a tokenizer, tokenise) every file, passing events to ``emit``; returns the error count.

    Without a tokenizer this needs only the standard library, so ``tuitune data check`` runs it in-process.
    """
    errors = warnings = records = usable = 0
    turns: dict[int, int] = {}
    lengths: list[int] = []
    counts = {"truncated": 0, "dropped": 0, "trained": 0}
    state = {"records": 0, "fraction": 0.0}
    progress = Throttle(lambda: emit({"type": "progress", "phase": "tokens" if tokenizer else "check", **state}))

    def problem(p: Problem) -> None:
        nonlocal errors, warnings
        errors, warnings = errors + (p.severity == "error"), warnings + (p.severity == "warning")
        emit({"type": "problem", **p.to_dict()})

    for n, path in enumerate(paths):
        try:
            emit({"type": "format", "path": path, "format": detect_file_format(path, fmt)[0]})
        except SourceError:
            pass
        size = _size(path)
        for item in check_file(path, fmt):
            if isinstance(item, Problem):
                problem(item)
                continue
            records += 1
            for p in item.problems:
                problem(p)
            if item.messages is not None:
                usable += 1
                count = sum(1 for m in item.messages if m["role"] != "system")
                turns[count] = turns.get(count, 0) + 1
                if tokenizer is not None:
                    _measure(item, tokenizer, cutoff, system_prompt, lengths, counts, problem)
            state["records"] = records
            state["fraction"] = (n + min(1.0, (item.offset or 0) / size)) / len(paths)
            progress()
            if limit and records >= limit:
                break
    if tokenizer is not None and usable and counts["dropped"] == usable:
        problem(Problem(", ".join(paths), None, None, None, f"every usable record loses all its trained tokens "
                        f"at cutoff_len {cutoff}, so training would refuse: raise cutoff_len"))
    state["fraction"] = 1.0
    progress(force=True)
    total = sum(turns.values())
    emit({"type": "checked", "records": records, "usable": usable, "errors": errors, "warnings": warnings,
          "turns": {"min": min(turns, default=0), "max": max(turns, default=0),
                    "mean": sum(k * v for k, v in turns.items()) / total if total else 0.0}})
    if tokenizer is not None:
        emit({"type": "token_stats", **token_stats(lengths, cutoff, counts["truncated"], counts["dropped"],
                                                   counts["trained"])})
    emit({"type": "done", "errors": errors, "warnings": warnings})
    return errors


def _size(path: str) -> int:
    """Bytes in a file for progress (1 for folders and unreadable paths)."""
    try:
        real = resolve_path(path)
        return max(1, real.stat().st_size) if real.is_file() else 1
    except (OSError, SourceError):
        return 1


def _measure(item: CheckedRecord, tokenizer: Any, cutoff: int, system_prompt: str | None,
             lengths: list[int], counts: dict[str, int], problem: Callable[[Problem], None]) -> None:
    """Encode one record as training would, counting its length, truncation and trained tokens."""
    try:
        encoded = encode_conversation(with_system(item.messages, system_prompt), tokenizer, cutoff)
    except Exception as exc:  # a template that rejects the record: report it, never a traceback
        problem(Problem(item.file, item.line, item.index, None, f"the chat template failed: {exc}"))
        return
    lengths.append(encoded.full_length)
    counts["truncated"] += encoded.truncated
    counts["trained"] += encoded.trained_tokens
    if encoded.trained_tokens == 0:
        counts["dropped"] += 1
        problem(empty_after_cut(item.file, item.line, item.index, encoded.full_length, cutoff))


def encode_for_view(messages: list[dict[str, str]], tokenizer: Any, cutoff: int) -> dict[str, Any]:
    """A record as the model sees it: per-token ids and trained flags, and display segments."""
    whole = encode_conversation(messages, tokenizer, UNLIMITED)
    cut = encode_conversation(messages, tokenizer, cutoff)
    trained = [label != IGNORE_INDEX for label in cut.labels] + [
        label != IGNORE_INDEX for label in whole.labels[len(cut.labels):]]
    segments: list[dict[str, Any]] = []
    start = 0
    for i in range(1, len(whole.input_ids) + 1):
        if i == len(whole.input_ids) or (trained[i], i >= cutoff) != (trained[start], start >= cutoff):
            text = tokenizer.decode(whole.input_ids[start:i])
            segments.append({"text": text, "trained": trained[start], "cut": start >= cutoff, "tokens": i - start})
            start = i
    return {"ids": whole.input_ids, "trained": trained, "segments": segments, "full_length": whole.full_length,
            "cutoff": cutoff, "truncated": cut.truncated, "trained_tokens": cut.trained_tokens}


def serve(tokenizer: Any, cutoff: int, system_prompt: str | None) -> int:
    """Answer encode requests from stdin until it closes."""
    emit({"type": "ready", "cutoff": cutoff, "chat_template": bool(getattr(tokenizer, "chat_template", None))})
    for line in sys.stdin:
        if not line.strip():
            continue
        request: dict[str, Any] = {}
        try:
            request = json.loads(line)
            messages = with_system(request["messages"], system_prompt)
            emit({"type": "encoded", "id": request.get("id"), **encode_for_view(messages, tokenizer, cutoff)})
        except Exception as exc:  # one bad request must not end the service
            emit({"type": "error", "id": request.get("id"), "message": f"{type(exc).__name__}: {exc}"})
    return 0


def main(argv: list[str]) -> int:
    """Entry point of ``python -m engine data``."""
    parser = argparse.ArgumentParser(prog="python -m engine data", description=__doc__.split("\n\n")[0])
    parser.add_argument("paths", nargs="*", help="JSON, JSON Lines or datasets folders (builtin:NAME too)")
    parser.add_argument("--format", default="auto", choices=["auto", "alpaca", "sharegpt", "openai"])
    parser.add_argument("--model", help="tokenise with this model's chat template")
    parser.add_argument("--cutoff", type=int, default=512, help="cutoff length in tokens")
    parser.add_argument("--system-prompt", help="system message for records without one")
    parser.add_argument("--limit", type=int, help="stop after this many records")
    parser.add_argument("--serve", action="store_true", help="answer encode requests on stdin")
    args = parser.parse_args(argv)
    if args.serve and not args.model or not args.serve and not args.paths:
        parser.error("give PATH… to report, or --serve with --model")
    tokenizer = None
    if args.model:
        try:
            tokenizer = load_tokenizer(args.model)
        except Exception as exc:  # missing model, no network: a message, never a traceback
            emit({"type": "failed", "message": f"cannot load the tokenizer of {args.model}: {exc}"})
            return 2
    if args.serve:
        return serve(tokenizer, args.cutoff, args.system_prompt)
    emit({"type": "started", "paths": args.paths, "model": args.model, "cutoff": args.cutoff})
    return 1 if report(args.paths, args.format, tokenizer, args.cutoff, args.system_prompt, args.limit) else 0
