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
from typing import Any, Callable, Iterator

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


class Reporter:
    """One report: a structural pass over every file, then (given a tokenizer) a token pass.

    The structural pass needs only the standard library and streams its problems at once;
    the tokenizer is loaded only after it, so problems show before transformers is imported.
    """

    def __init__(self, paths: list[str], fmt: str, cutoff: int, system_prompt: str | None = None,
                 limit: int | None = None, emit: Callable[[dict[str, Any]], None] = emit) -> None:
        self.paths, self.fmt, self.cutoff, self.system_prompt, self.limit = paths, fmt, cutoff, system_prompt, limit
        self.emit = emit
        self.errors = self.warnings = 0
        self.state: dict[str, Any] = {"phase": "check", "records": 0, "fraction": 0.0}
        self.progress = Throttle(lambda: self.emit({"type": "progress", **self.state}))

    def problem(self, p: Problem) -> None:
        """Count and emit one problem."""
        self.errors += p.severity == "error"
        self.warnings += p.severity == "warning"
        self.emit({"type": "problem", **p.to_dict()})

    def records(self, phase: str) -> Iterator[CheckedRecord | Problem]:
        """Every checked item of every file, keeping the progress state up to date."""
        self.state.update(phase=phase, records=0, fraction=0.0)
        for n, path in enumerate(self.paths):
            size = _size(path)
            for item in check_file(path, self.fmt):
                if isinstance(item, CheckedRecord):
                    self.state["records"] += 1
                    self.state["fraction"] = (n + min(1.0, (item.offset or 0) / size)) / len(self.paths)
                    self.progress()
                yield item
                if self.limit and self.state["records"] >= self.limit:
                    break
        self.state["fraction"] = 1.0
        self.progress(force=True)

    def check(self) -> int:
        """The structural pass; returns the number of usable records."""
        for path in self.paths:
            try:
                self.emit({"type": "format", "path": path, "format": detect_file_format(path, self.fmt)[0]})
            except SourceError:
                pass
        records = usable = 0
        turns: dict[int, int] = {}
        for item in self.records("check"):
            for p in [item] if isinstance(item, Problem) else item.problems:
                self.problem(p)
            if isinstance(item, CheckedRecord):
                records += 1
                if item.messages is not None:
                    usable += 1
                    count = sum(1 for m in item.messages if m["role"] != "system")
                    turns[count] = turns.get(count, 0) + 1
        total = sum(turns.values())
        self.emit({"type": "checked", "records": records, "usable": usable, "errors": self.errors,
                   "warnings": self.warnings, "turns": {"min": min(turns, default=0), "max": max(turns, default=0),
                   "mean": sum(k * v for k, v in turns.items()) / total if total else 0.0}})
        return usable

    def measure(self, tokenizer: Any, usable: int) -> None:
        """The token pass: lengths, truncation and records left with no trained token."""
        lengths: list[int] = []
        counts = {"truncated": 0, "dropped": 0, "trained": 0}
        for item in self.records("tokens"):
            if isinstance(item, CheckedRecord) and item.messages is not None:
                _measure(item, tokenizer, self.cutoff, self.system_prompt, lengths, counts, self.problem)
        if usable and counts["dropped"] == usable:
            self.problem(Problem(", ".join(self.paths), None, None, None, "every usable record loses all its "
                                 f"trained tokens at cutoff_len {self.cutoff}, so training would refuse: "
                                 "raise cutoff_len"))
        self.emit({"type": "token_stats", **token_stats(lengths, self.cutoff, counts["truncated"],
                                                        counts["dropped"], counts["trained"])})

    def run(self, load_tokenizer: Callable[[], Any] | None = None) -> int:
        """The whole report; returns the exit status (0 clean, 1 errors, 2 tokenizer not loadable)."""
        self.emit({"type": "started", "paths": self.paths, "cutoff": self.cutoff})
        usable = self.check()
        if load_tokenizer is not None:
            try:
                tokenizer = load_tokenizer()
            except Exception as exc:  # missing model, no network: a message, never a traceback
                self.emit({"type": "failed", "message": f"cannot load the tokenizer: {exc}"})
                return 2
            self.measure(tokenizer, usable)
        self.emit({"type": "done", "errors": self.errors, "warnings": self.warnings})
        return 1 if self.errors else 0


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
    if args.serve:
        try:
            tokenizer = load_tokenizer(args.model)
        except Exception as exc:  # missing model, no network: a message, never a traceback
            emit({"type": "failed", "message": f"cannot load the tokenizer of {args.model}: {exc}"})
            return 2
        return serve(tokenizer, args.cutoff, args.system_prompt)
    reporter = Reporter(args.paths, args.format, args.cutoff, args.system_prompt, args.limit)
    return reporter.run((lambda: load_tokenizer(args.model)) if args.model else None)
