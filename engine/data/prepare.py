"""Checked records made ready as training makes them. Standard library only (the tokenizer is handed in).

What a record becomes for training is decided here once, for the trainer (:mod:`engine.recipes.datasets`),
the evaluation job (:mod:`engine.jobs.eval`) and the data report (:mod:`engine.data.report`), so the three
agree on the tokens and on what they say about them:

* :func:`encode` encodes records of one kind in batches (:mod:`engine.data.encode`), the run's system
  prompt put in front of records that have none; a batch the chat template fails on is encoded again one
  record at a time, and each record it fails on gets a located problem;
* :func:`cut` finds the records the cutoff truncated and those it left with nothing to train, and
  :func:`cut_warnings` says so in training's words;
* :func:`split` holds out the validation share, the same records for the same seed.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from engine.data.checks import CheckedRecord
from engine.data.encode import (
    empty_after_cut,
    encode_completions,
    encode_conversations,
    encode_pairs,
    encode_texts,
    render,
)
from engine.data.formats import with_system
from engine.data.problems import DataError, Problem

BATCH = 512
"""Records encoded together (a fast tokenizer batches them in Rust)."""
SHOWN_EMPTY = 5
"""Records named in the warning about records the cutoff left with nothing to train."""
T = TypeVar("T")


@dataclass
class Item:
    """One record on its way to training: where it is, which of its answers (kto), and what it became."""

    record: CheckedRecord
    side: str = "chosen"
    """The answer a kto item trains: a kto record's own (chosen), or either side of a pair."""
    label: bool | None = None
    """Whether a kto item's answer is desirable."""
    encoded: Any = None
    """What :func:`encode` made of it for its kind: :class:`engine.data.encode.Encoded` (sft),
    ``PairEncoded`` (pairs), ``Completion`` (kto), its pieces (text) or the prompt's token ids (prompts);
    None when the chat template failed on it."""


def _conversations(chunk: list[Item], tokenizer: Any, cutoff_len: int, system: str | None, shared: bool) -> list[Any]:
    return encode_conversations([with_system(it.record.messages, system) for it in chunk], tokenizer, cutoff_len)


def _pairs(chunk: list[Item], tokenizer: Any, cutoff_len: int, system: str | None, shared: bool) -> list[Any]:
    pairs = [(with_system(it.record.example.conversation("chosen"), system),
              with_system(it.record.example.conversation("rejected"), system)) for it in chunk]
    return encode_pairs(pairs, tokenizer, cutoff_len, shared)


def _answers(chunk: list[Item], tokenizer: Any, cutoff_len: int, system: str | None, shared: bool) -> list[Any]:
    conversations = [with_system(it.record.example.conversation(it.side), system) for it in chunk]
    return encode_completions(conversations, tokenizer, cutoff_len, shared)


def _texts(chunk: list[Item], tokenizer: Any, cutoff_len: int, system: str | None, shared: bool) -> list[Any]:
    return encode_texts([it.record.example.text for it in chunk], tokenizer, cutoff_len)


def _prompts(chunk: list[Item], tokenizer: Any, cutoff_len: int, system: str | None, shared: bool) -> list[Any]:
    # A prompt as the model reads it before it answers: the chat template with its generation prompt.
    texts = [render(with_system(it.record.example.prompt, system), tokenizer, generation_prompt=True) for it in chunk]
    return [list(ids) for ids in tokenizer(texts, add_special_tokens=False)["input_ids"]]


ENCODERS: dict[str, Callable[[list[Item], Any, int, str | None, bool], list[Any]]] = {
    "sft": _conversations, "pairs": _pairs, "kto": _answers, "text": _texts, "prompts": _prompts}
"""How each kind of record is encoded for training (the kinds of engine.data.formats.LAYOUTS); the last argument,
``shared``, is ``data.truncation: shared`` (the preference and kto encoders share the cutoff, the others ignore it)."""


def encode(items: list[Item], kind: str, tokenizer: Any, cutoff_len: int, system_prompt: str | None,
           truncation: str = "answers") -> list[Problem]:
    """Encode ``items`` (records of ``kind``) as training does, setting each ``encoded``; returns a located
    problem for every record the chat template fails on (whose ``encoded`` stays None). ``truncation`` is
    ``data.truncation``."""
    shared = truncation == "shared"
    encoder = ENCODERS[kind]
    problems: list[Problem] = []
    for first in range(0, len(items), BATCH):
        chunk = items[first:first + BATCH]
        try:
            results = encoder(chunk, tokenizer, cutoff_len, system_prompt, shared)
        except Exception:  # a template that rejects some record: find and name each one
            results = []
            for item in chunk:
                try:
                    results.append(encoder([item], tokenizer, cutoff_len, system_prompt, shared)[0])
                except Exception as exc:  # the template's own message says why
                    problems.append(template_problem(item.record, exc))
                    results.append(None)
        for item, result in zip(chunk, results):
            item.encoded = result
    return problems


def encode_or_refuse(items: list[Item], kind: str, tokenizer: Any, cutoff_len: int, system_prompt: str | None,
                     truncation: str = "answers") -> None:
    """:func:`encode`, refusing with every record the chat template fails on.

    Raises:
        DataError: naming each such record.
    """
    problems = encode(items, kind, tokenizer, cutoff_len, system_prompt, truncation)
    if problems:
        raise DataError(problems)


def template_problem(record: CheckedRecord, exc: BaseException) -> Problem:
    """The located error for a record the chat template fails on."""
    return Problem(record.file, record.line, record.index, None, f"the chat template failed: {exc}")


@dataclass
class Cut:
    """What the cutoff did to encoded records."""

    kept: list[Item] = field(default_factory=list)
    """The records with at least one trained token left, in order."""
    truncated: int = 0
    """Records longer than the cutoff (cut, and kept when something is left to train)."""
    empty: list[Item] = field(default_factory=list)
    """Records left with no trained token: left out of training."""


def cut(items: list[Item]) -> Cut:
    """Sort encoded records into those that still train something and those the cutoff emptied."""
    result = Cut()
    for item in items:
        result.truncated += bool(item.encoded.truncated)
        (result.kept if item.encoded.trained_tokens > 0 else result.empty).append(item)
    return result


def empty_problem(item: Item, cutoff_len: int) -> Problem:
    """The located warning for a record the cutoff left with no trained token."""
    record = item.record
    return empty_after_cut(record.file, record.line, record.index, item.encoded.full_length, cutoff_len)


def cut_warnings(result: Cut, cutoff_len: int, truncation: str = "answers") -> list[str]:
    """What training says about a cut: how many records were truncated, and which were left out."""
    warnings = []
    if result.truncated and truncation == "shared":
        warnings.append(f"{result.truncated} records truncated at cutoff_len {cutoff_len}, shared between prompt and "
                        "answers as LLaMA-Factory shares it (data.truncation: shared): a long prompt loses its end")
    elif result.truncated:
        warnings.append(f"{result.truncated} records truncated at cutoff_len {cutoff_len}")
    if result.empty:
        shown = "; ".join(str(empty_problem(it, cutoff_len)).split(": no trained")[0]
                          for it in result.empty[:SHOWN_EMPTY])
        more = f" and {len(result.empty) - SHOWN_EMPTY} more" if len(result.empty) > SHOWN_EMPTY else ""
        warnings.append(f"{len(result.empty)} records left out: no trained token left after truncation at "
                        f"cutoff_len {cutoff_len} ({shown}{more})")
    return warnings


def split(rows: list[T], val_size: float, seed: int, what: str = "usable records") -> tuple[list[T], list[T]]:
    """A seeded held-out choice of ``val_size`` (a share below 1, a count from 1); training keeps file order.

    Raises:
        DataError: the share holds out every one of ``rows`` (``what`` names them).
    """
    if val_size <= 0:
        return rows, []
    count = max(1, round(len(rows) * val_size)) if val_size < 1 else int(val_size)
    if count >= len(rows):
        raise DataError([Problem("data.val_size", None, None, None, f"val_size {val_size:g} holds out {count} of "
                                 f"{len(rows)} {what}, leaving none to train on")])
    held = set(random.Random(seed).sample(range(len(rows)), count))
    return [r for i, r in enumerate(rows) if i not in held], [r for i, r in enumerate(rows) if i in held]
