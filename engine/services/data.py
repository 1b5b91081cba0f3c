"""``python -m engine data``: instruction data checked and tokenised, reported as JSON lines.

The app may not import the ML stack, so it runs this module in a subprocess and reads its
stdout, one JSON object a line, flushed as it goes:

Report mode, ``python -m engine data PATH… [--format F] [--model M] [--cutoff N]``::

    {"type": "started", "paths": [...], "cutoff": 512}
    {"type": "format", "path": "...", "format": "alpaca"}
    {"type": "problem", "file": ..., "line": ..., "record": ..., "field": ..., "message": ..., "severity": ...}
    {"type": "progress", "phase": "check"|"tokens", "records": 1200, "fraction": 0.4}
    {"type": "checked", "records": ..., "usable": ..., "errors": ..., "warnings": ..., "turns": {...}}
    {"type": "token_stats", "records": ..., "p50": ..., "p95": ..., "max": ..., "mean": ..., "cutoff": ...,
     "truncated": ..., "dropped": ..., "trained_tokens": ..., "histogram": [{"upto": 64, "count": 3}, ...]}
    {"type": "done", "errors": ..., "warnings": ...}

The structural pass comes first (problems stream before transformers is even imported); token
statistics follow only with ``--model``. Exit status: 1 when there are errors, 2 when the
tokenizer cannot be loaded (a ``failed`` event says why). The events are made by
:class:`engine.data_stats.Reporter`.

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
from typing import Any

from engine.data.encode import IGNORE_INDEX, encode_conversation
from engine.data.formats import with_system
from engine.data.report import Reporter, emit
from engine.models.tokenizer import load_tokenizer

UNLIMITED = 1 << 40
"""Cutoff used to encode a record whole, so the view can show what lies past the real cutoff."""


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
