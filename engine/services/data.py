"""``python -m engine data``: instruction data checked and tokenised, reported as JSON lines.

Report mode streams the events of a :class:`engine.data.report.Reporter`; serve mode answers
encode requests for the Data screen's record view. Every message, and what each mode prints, is
in :mod:`engine.services.data_protocol`; lines are read and written by :mod:`engine.services.jsonlines`.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping
from typing import Any

from engine.data.encode import IGNORE_INDEX, encode_completions, encode_conversation
from engine.data.formats import LAYOUTS, with_system
from engine.data.report import Reporter
from engine.models.tokenizer import load_tokenizer
from engine.services import jsonlines
from engine.services.data_protocol import (
    ENCODED,
    ERROR,
    FAILED,
    READY,
    REQUEST_KEY,
    Encoded,
    Error,
    Failed,
    Ready,
    Segment,
    Side,
    bad_line_error,
    encode_problem,
)
from engine.stages import STAGES

UNLIMITED = 1 << 40
"""Cutoff used to encode a record whole, so the view can show what lies past the real cutoff."""


def emit(message: Mapping[str, Any]) -> None:
    """Write one message to stdout, flushed (the app reads as we go)."""
    jsonlines.write_message(sys.stdout, message)


def encode_for_view(request_id: int, messages: list[dict[str, str]], tokenizer: Any, cutoff: int,
                    rejected: list[dict[str, str]] | None = None, answer_only: bool = False) -> Encoded:
    """A record as the model sees it: per-token ids and trained flags, and display segments.

    SFT records train every assistant turn. With ``rejected`` (a preference pair: ``messages`` is
    the chosen conversation) or ``answer_only`` (a kto answer) only the last turn, the answer, is
    trained, as the preference trainers score it; a pair's rejected side comes under ``rejected``.
    """
    if rejected is not None or answer_only:
        side = _answer_view(messages, tokenizer, cutoff)
    else:
        whole = encode_conversation(messages, tokenizer, UNLIMITED)
        cut = encode_conversation(messages, tokenizer, cutoff)
        trained = [label != IGNORE_INDEX for label in cut.labels] + [
            label != IGNORE_INDEX for label in whole.labels[len(cut.labels):]]
        side = _side(whole.input_ids, trained, cutoff, tokenizer, cut.trained_tokens)
    other = _answer_view(rejected, tokenizer, cutoff) if rejected is not None else None
    return Encoded(type=ENCODED, id=request_id, **side, cutoff=cutoff, rejected=other)


def encode_text_for_view(request_id: int, text: str, tokenizer: Any, cutoff: int) -> Encoded:
    """A raw-text record (stage pt): every token trained, none cut (long documents are split, not truncated)."""
    ids = tokenizer(text, add_special_tokens=False)["input_ids"] + (
        [tokenizer.eos_token_id] if tokenizer.eos_token_id is not None else [])
    side = _side(ids, [True] * len(ids), UNLIMITED, tokenizer, len(ids))
    return Encoded(type=ENCODED, id=request_id, **side, cutoff=cutoff, rejected=None)


def _answer_view(messages: list[dict[str, str]], tokenizer: Any, cutoff: int) -> Side:
    """A conversation whose last turn is the answer, only the answer trained (preference and kto training)."""
    enc = encode_completions([messages], tokenizer, UNLIMITED)[0]
    ids = enc.prompt_ids + enc.completion_ids
    trained = [False] * len(enc.prompt_ids) + [True] * len(enc.completion_ids)
    kept = sum(1 for i, t in enumerate(trained) if t and i < cutoff)
    return _side(ids, trained, cutoff, tokenizer, kept)


def _side(ids: list[int], trained: list[bool], cutoff: int, tokenizer: Any, trained_tokens: int) -> Side:
    """Display runs of tokens alike in (trained, past the cutoff), with the counts that go with them."""
    segments: list[Segment] = []
    start = 0
    for i in range(1, len(ids) + 1):
        if i == len(ids) or (trained[i], i >= cutoff) != (trained[start], start >= cutoff):
            text = tokenizer.decode(ids[start:i])
            segments.append(Segment(text=text, trained=trained[start], cut=start >= cutoff, tokens=i - start))
            start = i
    return Side(ids=list(ids), trained=trained, segments=segments, full_length=len(ids),
                truncated=len(ids) > cutoff, trained_tokens=trained_tokens)


def serve(tokenizer: Any, cutoff: int, system_prompt: str | None) -> int:
    """Answer encode requests from stdin until it closes; a bad line or request gets an ``error``, a line longer
    than :data:`engine.services.jsonlines.MAX_REQUEST_BYTES` one at once, unread past it."""
    emit(Ready(type=READY, cutoff=cutoff, chat_template=bool(getattr(tokenizer, "chat_template", None))))
    for request in jsonlines.read_requests(sys.stdin.buffer, key=REQUEST_KEY):
        if isinstance(request, jsonlines.BadLine):
            emit(bad_line_error(request, "the app"))
            continue
        if problem := encode_problem(request):
            emit(Error(type=ERROR, id=request[REQUEST_KEY], message=f"encode request: {problem}"))
            continue
        try:
            if "text" in request:
                emit(encode_text_for_view(request[REQUEST_KEY], request["text"], tokenizer, cutoff))
                continue
            messages = with_system(request["messages"], system_prompt)
            rejected = with_system(request["rejected"], system_prompt) if request.get("rejected") else None
            emit(encode_for_view(request[REQUEST_KEY], messages, tokenizer, cutoff, rejected,
                                 answer_only=bool(request.get("answer_only"))))
        except Exception as exc:  # one bad request must not end the service
            emit(Error(type=ERROR, id=request[REQUEST_KEY], message=f"{type(exc).__name__}: {exc}"))
    return 0


def main(argv: list[str]) -> int:
    """Entry point of ``python -m engine data``; quiet, with status 141, when the reader leaves early (``| head``)."""
    try:
        return run(argv)
    except BrokenPipeError:  # nobody is left to tell; a traceback would only land on the terminal
        jsonlines.discard_stdout()
        return jsonlines.PIPE_CLOSED


def run(argv: list[str]) -> int:
    """Parse ``argv`` and report or serve."""
    parser = argparse.ArgumentParser(prog="python -m engine data", description=__doc__.split("\n\n")[0])
    parser.add_argument("paths", nargs="*", help="JSON, JSON Lines or datasets folders (builtin:NAME too)")
    parser.add_argument("--format", default="auto", choices=["auto", *LAYOUTS])
    parser.add_argument("--stage", choices=list(STAGES),
                        help="check for this training stage (its layouts only); default: any layout")
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
            emit(Failed(type=FAILED, message=f"cannot load the tokenizer of {args.model}: {exc}"))
            return 2
        return serve(tokenizer, args.cutoff, args.system_prompt)
    reporter = Reporter(args.paths, args.format, args.cutoff, args.system_prompt, args.limit, emit=emit,
                        stage=args.stage)
    return reporter.run((lambda: load_tokenizer(args.model)) if args.model else None)
