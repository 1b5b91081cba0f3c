"""Prompts for the stages that sample answers: read, checked, and matched against the rewards. Standard library only.

A prompt is the conversation up to its last user turn; its reference answer (``answer`` of a
``{prompt, answer}`` record, or the answer of an instruction record) is what ``exact_match`` and
``contains`` compare with. Which rewards a run has decides whether the references are needed:

* no reward configured: ``exact_match`` against the references is the default — if every prompt has one;
  with none at all the run is refused (there is nothing to reward);
* ``exact_match`` (or ``contains`` without its own text): every prompt needs a reference.

The app's review step, ``tuitune data check``, ``tuitune train`` and the recipe all use :func:`reward_plan`,
so they agree; the review and ``tuitune train`` also name reward files that are missing
(:func:`missing_reward_files`) before a run folder exists.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.config import DataSection, RLSection
from engine.data.checks import CheckedRecord, check_paths
from engine.data.formats import with_system
from engine.data.problems import DataError, Problem

REWARD_KINDS_HELP = "exact_match, contains, regex, length, reward_model or python"


@dataclass
class PromptSet:
    """The usable prompts of a run's data files."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    """``prompt`` (messages), ``reference`` ('' when none), ``record`` (``file:line (record N)``) per prompt."""
    places: list[CheckedRecord] = field(default_factory=list)
    """Where each row came from (file, line, index), in the same order."""
    formats: str = ""
    warnings: list[str] = field(default_factory=list)

    @property
    def with_reference(self) -> int:
        """Prompts that carry a reference answer."""
        return sum(1 for row in self.rows if row["reference"])


def read_prompts(data: DataSection, stage: str) -> PromptSet:
    """Every usable prompt of ``data.train`` (system prompt added where a record has none).

    Raises:
        DataError: any record with an error, or no usable record at all.
    """
    found = PromptSet()

    def keep(record: CheckedRecord) -> None:
        if record.usable and record.example is not None:
            example = record.example
            found.rows.append({"prompt": with_system(example.prompt, data.system_prompt),
                               "reference": example.chosen or "", "record": where(record)})
            record.raw = None
            found.places.append(record)

    summary = check_paths(data.train, data.format, on_record=keep, stage=stage)
    errors = [p for p in summary.problems if p.severity == "error"]
    if errors:
        raise DataError(errors, omitted=summary.errors - len(errors))
    if not found.rows:
        raise DataError([Problem(", ".join(data.train), None, None, None, "no usable prompts")])
    duplicates = [p for p in summary.problems if p.message.startswith("duplicate")]
    if duplicates:
        found.warnings.append(f"{len(duplicates)} duplicate prompts (kept), first: {duplicates[0]}")
    found.formats = "+".join(sorted({f for f in summary.formats.values() if f}))
    return found


def where(record: CheckedRecord) -> str:
    """``file:line (record N)``: a record's place as messages give it."""
    line = f":{record.line}" if record.line else ""
    return f"{record.file}{line} (record {record.index})"


def needs_reference(rl: RLSection) -> list[str]:
    """The configured rewards (labels) that compare with each prompt's reference answer."""
    return [spec.label() for spec in rl.rewards
            if spec.kind == "exact_match" or (spec.kind == "contains" and spec.text is None)]


def missing_reward_files(rl: RLSection) -> list[str]:
    """``rl.rewards[N] KIND: PATH does not exist`` for each reward whose file or folder is not there."""
    missing = []
    for n, spec in enumerate(rl.rewards):
        target = spec.function.rpartition(":")[0] if spec.kind == "python" and spec.function else spec.path
        if target and not Path(target).expanduser().exists():
            missing.append(f"rl.rewards[{n}] {spec.kind}: {target} does not exist")
    return missing


def reward_plan(rl: RLSection, prompts: PromptSet, paths: list[str]) -> str:
    """One line saying which rewards score the answers (noting the exact_match default).

    Raises:
        DataError: no reward configured and no prompt with a reference answer; or a reward needing
            references while some prompts have none (each located).
    """
    if not rl.rewards and prompts.with_reference == 0:
        raise DataError([Problem(", ".join(paths), None, None, None,
                                 "nothing rewards the answers: no rl.rewards configured, and no prompt carries a "
                                 "reference answer for the default exact_match; add rl.rewards "
                                 f"({REWARD_KINDS_HELP}) or reference answers ({{prompt, answer}})")])
    users = needs_reference(rl) or ([] if rl.rewards else ["exact_match (the default)"])
    missing = [place for place, row in zip(prompts.places, prompts.rows) if not row["reference"]]
    if users and missing:
        raise DataError([Problem(p.file, p.line, p.index, None,
                                 f"no reference answer, which {users[0]} compares with: add one or drop the record")
                         for p in missing])
    if not rl.rewards:
        return (f"no reward configured: exact_match against the reference answers ({prompts.with_reference:,} "
                "prompts), 1 when an answer equals its reference (case, spaces and punctuation ignored)")
    return "rewards: " + ", ".join(f"{spec.label()} x{spec.weight:g}" for spec in rl.rewards)
