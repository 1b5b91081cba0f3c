"""Data reports: a structural pass, then a token pass, as a stream of JSON-ready events.

:class:`Reporter` needs only the standard library until it is handed a tokenizer, so
``tuitune data check`` runs it in-process for structural checks, and ``python -m engine data``
(:mod:`engine.services.data`) runs it with a tokenizer for token statistics. It hands each event
to the ``emit`` it is given (a list's ``append``, or the service's JSON-lines writer); the event
types and their fields are named in :mod:`engine.data.report_events`.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

from engine.data.checks import CheckedRecord, check_file, detect_file_format, kto_balance_problem
from engine.data.formats import with_system
from engine.data.prepare import Item, empty_problem, encode
from engine.data.problems import Problem, SourceError
from engine.data.report_events import (
    CHECKED,
    DONE,
    FAILED,
    FORMAT,
    PROBLEM,
    PROGRESS,
    STARTED,
    TOKEN_STATS,
    VERDICT,
    Checked,
    Done,
    Failed,
    Format,
    Started,
)
from engine.data.source import resolve_path
from engine.data.template_doctor import SAMPLE, diagnose, generation_stop_ids
from engine.stages import STAGES

PROGRESS_EVERY_S = 0.1
BATCH = 256
"""Records tokenised together (the fast tokenizer batches in Rust)."""


def percentile(sorted_values: list[int], share: float) -> int:
    """The nearest-rank percentile of already sorted values (0 when empty)."""
    if not sorted_values:
        return 0
    rank = max(0, min(len(sorted_values) - 1, math.ceil(share * len(sorted_values)) - 1))
    return sorted_values[rank]


def token_stats(lengths: list[int], cutoff: int, truncated: int, dropped: int, trained: int,
                sides: dict[str, Any] | None = None) -> dict[str, Any]:
    """Token-length statistics against the cutoff: percentiles and an 8-bin histogram plus '> cutoff';
    ``sides`` are those of each part of the records (see :class:`engine.data.report_events.TokenStats`)."""
    stats = side_stats(lengths, cutoff, truncated, dropped, trained)
    values = sorted(lengths)
    edges = [cutoff * (i + 1) // 8 for i in range(8)]
    counts = [0] * 9
    for value in values:
        counts[next((i for i, edge in enumerate(edges) if value <= edge), 8)] += 1
    histogram = [{"upto": edge, "count": count} for edge, count in zip(edges, counts)]
    histogram.append({"upto": None, "count": counts[8]})
    return {**stats, "histogram": histogram, "sides": sides or {}}


def side_stats(lengths: list[int], cutoff: int, truncated: int, dropped: int, trained: int) -> dict[str, Any]:
    """Percentiles of ``lengths`` with the counts that go with them (no histogram)."""
    values = sorted(lengths)
    return {"records": len(values), "p50": percentile(values, 0.5), "p95": percentile(values, 0.95),
            "max": values[-1] if values else 0, "mean": sum(values) / len(values) if values else 0.0,
            "cutoff": cutoff, "truncated": truncated, "dropped": dropped, "trained_tokens": trained}


def summary_lines(checked: dict[str, Any] | None, tokens: dict[str, Any] | None) -> list[str]:
    """The statistics part of the report, from the ``checked`` and ``token_stats`` events."""
    lines = []
    if checked:
        turns = checked["turns"]
        lines.append(f"records: {checked['records']:,} ({checked['usable']:,} usable); turns per record: "
                     f"min {turns['min']}, mean {turns['mean']:.1f}, max {turns['max']}")
        prompts = checked.get("prompts") or {}
        if prompts:
            without = prompts["records"] - prompts["with_reference"]
            lines.append(f"prompts: {prompts['with_reference']:,} with a reference answer, {without:,} without "
                         "(exact_match, the default reward of the RL stages, compares with it)")
        labels = checked.get("labels") or {}
        if labels:
            lines.append(f"kto answers: {labels.get('desirable', 0):,} desirable, "
                         f"{labels.get('undesirable', 0):,} undesirable")
    if tokens:
        lines.append(f"tokens (cutoff {tokens['cutoff']}): p50 {tokens['p50']}, p95 {tokens['p95']}, "
                     f"max {tokens['max']}; truncated {tokens['truncated']:,}, dropped {tokens['dropped']:,} "
                     f"(no trained token left); trained tokens {tokens['trained_tokens']:,}")
        lines.append("lengths: " + ", ".join(
            f"{'>' + str(tokens['cutoff']) if b['upto'] is None else '≤' + str(b['upto'])}: {b['count']}"
            for b in tokens["histogram"]))
        for side, stats in (tokens.get("sides") or {}).items():
            counts = (f"; truncated {stats['truncated']:,}, trained tokens {stats['trained_tokens']:,}"
                      if side != "prompt" else f"; {stats['truncated']:,} fill the cutoff")
            lines.append(f"  {side + ':':<12} {stats['records']:,} records, tokens p50 {stats['p50']}, p95 "
                         f"{stats['p95']}, max {stats['max']}, mean {stats['mean']:.1f}{counts}")
    return lines



class Sides:
    """Lengths and counts per part of the records (prompt/chosen/rejected, desirable/undesirable)."""

    def __init__(self, cutoff: int) -> None:
        self.cutoff = cutoff
        self.lengths: dict[str, list[int]] = {}
        self.counts: dict[str, dict[str, int]] = {}

    def add(self, side: str, length: int, truncated: bool, trained: int) -> None:
        """Count one record's ``side``: its length before the cut and its trained tokens after it."""
        self.lengths.setdefault(side, []).append(length)
        counts = self.counts.setdefault(side, {"truncated": 0, "trained": 0})
        counts["truncated"] += truncated
        counts["trained"] += trained

    def stats(self) -> dict[str, Any]:
        """``{side: side_stats(...)}`` for every side seen."""
        return {side: side_stats(lengths, self.cutoff, self.counts[side]["truncated"], 0, self.counts[side]["trained"])
                for side, lengths in self.lengths.items()}


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
                 limit: int | None = None, *, emit: Callable[[dict[str, Any]], None], stage: str | None = None) -> None:
        self.paths, self.fmt, self.cutoff, self.system_prompt, self.limit = paths, fmt, cutoff, system_prompt, limit
        self.stage = stage
        """The stage the data is for (its layouts only), or None for every layout."""
        self.emit = emit
        self.errors = self.warnings = 0
        self.state: dict[str, Any] = {"phase": "check", "records": 0, "fraction": 0.0}
        self.sample: list[list[dict[str, str]]] = []
        """Conversations of the token pass as training encodes them, for the chat-template doctor."""
        self.progress = Throttle(lambda: self.emit({"type": PROGRESS, **self.state}))

    def problem(self, p: Problem) -> None:
        """Count and emit one problem."""
        self.errors += p.severity == "error"
        self.warnings += p.severity == "warning"
        self.emit({"type": PROBLEM, **p.to_dict()})

    def records(self, phase: str) -> Iterator[CheckedRecord | Problem]:
        """Every checked item of every file, keeping the progress state up to date."""
        self.state.update(phase=phase, records=0, fraction=0.0)
        for n, path in enumerate(self.paths):
            size = _size(path)
            for item in check_file(path, self.fmt, self.stage):
                if isinstance(item, CheckedRecord):
                    self.state["records"] += 1
                    self.state["fraction"] = (n + min(1.0, (item.offset or 0) / size)) / len(self.paths)
                    self.progress()
                yield item
                if self.limit and self.state["records"] >= self.limit:
                    break
            if self.limit and self.state["records"] >= self.limit:
                break
        self.state["fraction"] = 1.0
        self.progress(force=True)

    def check(self) -> int:
        """The structural pass; returns the number of usable records."""
        for path in self.paths:
            try:
                self.emit(Format(type=FORMAT, path=path, format=detect_file_format(path, self.fmt, self.stage)[0]))
            except SourceError:
                pass
        records = usable = 0
        turns: dict[int, int] = {}
        labels: dict[str, int] = {}
        prompts: dict[str, int] = {}
        for item in self.records("check"):
            for p in [item] if isinstance(item, Problem) else item.problems:
                self.problem(p)
            if isinstance(item, CheckedRecord):
                records += 1
                usable += item.usable
                if item.messages is not None:
                    count = sum(1 for m in item.messages if m["role"] != "system")
                    turns[count] = turns.get(count, 0) + 1
                if item.example is not None and item.example.label is not None:
                    key = "desirable" if item.example.label else "undesirable"
                    labels[key] = labels.get(key, 0) + 1
                if item.example is not None and item.example.kind == "prompts":
                    prompts["records"] = prompts.get("records", 0) + 1
                    prompts["with_reference"] = prompts.get("with_reference", 0) + (item.example.chosen is not None)
        kto = self.stage is not None and STAGES[self.stage].kind == "kto"
        if kto and (problem := kto_balance_problem(self.paths, Counter(labels))) is not None:
            self.problem(problem)
        total = sum(turns.values())
        self.emit(Checked(type=CHECKED, records=records, usable=usable, errors=self.errors, warnings=self.warnings,
                          turns={"min": min(turns, default=0), "max": max(turns, default=0),
                                 "mean": sum(k * v for k, v in turns.items()) / total if total else 0.0},
                          labels=labels, prompts=prompts))
        return usable

    def measure(self, tokenizer: Any, usable: int) -> None:
        """The token pass: lengths, truncation and records left with no trained token."""
        lengths: list[int] = []
        counts = {"truncated": 0, "dropped": 0, "trained": 0}
        sides = Sides(self.cutoff)
        batch: list[CheckedRecord] = []
        for item in self.records("tokens"):
            if isinstance(item, CheckedRecord) and item.usable:
                batch.append(item)
            if len(batch) >= BATCH:
                self._measure_all(batch, tokenizer, lengths, counts, sides)
                batch = []
        self._measure_all(batch, tokenizer, lengths, counts, sides)
        if usable and counts["dropped"] == usable:
            self.problem(Problem(", ".join(self.paths), None, None, None, "every usable record loses all its "
                                 f"trained tokens at cutoff_len {self.cutoff}, so training would refuse: "
                                 "raise cutoff_len"))
        self.emit({"type": TOKEN_STATS, **token_stats(lengths, self.cutoff, counts["truncated"],
                                                        counts["dropped"], counts["trained"], sides.stats())})

    def _measure_all(self, batch: list[CheckedRecord], tokenizer: Any, lengths: list[int], counts: dict[str, int],
                     sides: Sides) -> None:
        """Measure a batch, each kind of record encoded as training encodes it (engine.data.prepare)."""
        kinds: dict[str, list[Item]] = {}
        for record in batch:
            kinds.setdefault(record.example.kind if record.example is not None else "sft", []).append(Item(record))
        for kind, items in kinds.items():
            self.sample += [with_system(it.record.messages, self.system_prompt) for it in items
                            if it.record.messages is not None][:SAMPLE - len(self.sample)]
            for problem in encode(items, kind, tokenizer, self.cutoff, self.system_prompt):
                self.problem(problem)
            measure = {"sft": self._measure, "pairs": self._measure_pairs, "kto": self._measure_kto,
                       "text": self._measure_text, "prompts": self._measure_prompts}[kind]
            measure([it for it in items if it.encoded is not None], tokenizer, lengths, counts, sides)

    def _count(self, item: Item, trained: int, lengths: list[int], counts: dict[str, int]) -> None:
        """Count one encoded record's length, cut and ``trained`` tokens; report it when the cutoff left it
        with nothing to train."""
        enc = item.encoded
        lengths.append(enc.full_length)
        counts["truncated"] += enc.truncated
        counts["trained"] += trained
        if enc.trained_tokens == 0:
            counts["dropped"] += 1
            self.problem(empty_problem(item, self.cutoff))

    def _measure(self, items: list[Item], tokenizer: Any, lengths: list[int], counts: dict[str, int],
                 sides: Sides) -> None:
        for item in items:
            self._count(item, item.encoded.trained_tokens, lengths, counts)

    def _measure_pairs(self, items: list[Item], tokenizer: Any, lengths: list[int], counts: dict[str, int],
                       sides: Sides) -> None:
        for item in items:
            enc = item.encoded
            self._count(item, len(enc.chosen_ids) + len(enc.rejected_ids), lengths, counts)
            sides.add("prompt", len(enc.prompt_ids), len(enc.prompt_ids) >= self.cutoff, 0)
            sides.add("chosen", enc.chosen_length, len(enc.chosen_ids) < enc.chosen_length, len(enc.chosen_ids))
            sides.add("rejected", enc.rejected_length, len(enc.rejected_ids) < enc.rejected_length,
                      len(enc.rejected_ids))

    def _measure_kto(self, items: list[Item], tokenizer: Any, lengths: list[int], counts: dict[str, int],
                     sides: Sides) -> None:
        for item in items:
            enc = item.encoded
            self._count(item, enc.trained_tokens, lengths, counts)
            sides.add("desirable" if item.record.example.label else "undesirable", enc.full_length, enc.truncated,
                      enc.trained_tokens)

    def _measure_prompts(self, items: list[Item], tokenizer: Any, lengths: list[int], counts: dict[str, int],
                         sides: Sides) -> None:
        # An RL stage trains on answers it samples: the prompt (with the generation prompt) is what it
        # reads, and the reference answer is only compared with; neither is a trained token.
        for item in items:
            length = len(item.encoded)
            lengths.append(length)
            sides.add("prompt", length, length >= self.cutoff, 0)
            if item.record.example.chosen is not None:
                reference = len(tokenizer(item.record.example.chosen, add_special_tokens=False)["input_ids"])
                sides.add("reference", reference, False, 0)

    def _measure_text(self, items: list[Item], tokenizer: Any, lengths: list[int], counts: dict[str, int],
                      sides: Sides) -> None:
        # Raw text is cut into cutoff_len pieces, never truncated: every token is trained.
        for item in items:
            lengths.append(item.encoded[0].full_length)
            counts["trained"] += item.encoded[0].full_length

    def doctor(self, tokenizer: Any) -> None:
        """The chat-template doctor's verdicts on the model and the records sampled (none for raw text);
        an error verdict counts as an error of the report, a warning as a warning."""
        if self.stage is not None and STAGES[self.stage].kind == "text" or not self.sample and self.state["records"]:
            return
        for verdict in diagnose(tokenizer, generation_stop_ids(getattr(tokenizer, "name_or_path", "")), self.sample):
            self.errors += verdict.severity == "error"
            self.warnings += verdict.severity == "warning"
            self.emit({"type": VERDICT, **verdict.to_dict()})

    def run(self, load_tokenizer: Callable[[], Any] | None = None) -> int:
        """The whole report; returns the exit status (0 clean, 1 errors, 2 tokenizer not loadable)."""
        self.emit(Started(type=STARTED, paths=self.paths, cutoff=self.cutoff))
        usable = self.check()
        if load_tokenizer is not None:
            try:
                tokenizer = load_tokenizer()
            except Exception as exc:  # missing model, no network: a message, never a traceback
                self.emit(Failed(type=FAILED, message=f"cannot load the tokenizer: {exc}"))
                return 2
            self.measure(tokenizer, usable)
            self.doctor(tokenizer)
        self.emit(Done(type=DONE, errors=self.errors, warnings=self.warnings))
        return 1 if self.errors else 0


def _size(path: str) -> int:
    """Bytes in a file for progress (1 for folders and unreadable paths)."""
    try:
        real = resolve_path(path)
        return max(1, real.stat().st_size) if real.is_file() else 1
    except (OSError, SourceError):
        return 1
