"""The training stages, one row each: what a stage is, in the one table every module asks. Stdlib only.

Which recipe trains a stage, which data it reads, whether it has a reference model or samples answers,
what the watchdog watches in it, what the memory estimate counts, its demo data: all of it is a field of
its :class:`Stage` in :data:`STAGES`, and code asks the table instead of comparing stage names. Adding a
stage is a row here and a recipe module (``engine/recipes/<stage>.py``, or a row naming an existing one).

The data kinds the table speaks of are those of :data:`engine.data.formats.LAYOUTS`: ``sft``
(conversations with answers), ``text`` (raw text), ``pairs`` (a prompt with a chosen and a rejected
answer), ``kto`` (single answers marked desirable or undesirable) and ``prompts`` (what an RL stage
samples answers to).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

DEMO_DATA = "builtin:identity"
"""The shipped demo set, in instruction layout; a stage that trains another kind has its own copy (``demo_data``)."""


@dataclass(frozen=True)
class Stage:
    """One training stage."""

    name: str
    """As ``stage`` names it in a config."""
    summary: str
    """The one line the app and the command line show for it."""
    recipe: str
    """The module whose ``train(run_dir, resume, events, flags)`` trains it."""
    kind: str
    """The kind of example it trains on (see the module docstring)."""
    reads: tuple[str, ...]
    """The kinds of data it accepts, its own first: kto splits pairs into one answer of each label, and the RL
    stages read instruction data as prompts whose last answer is the reference."""
    demo_data: str = DEMO_DATA
    """The shipped demo set in the stage's layout: what ``builtin:identity`` means for it."""
    sequences_per_record: int = 1
    """Sequences one record puts through the trained forward pass: a pair's chosen and rejected side go together."""
    least_batch: int = 1
    """The smallest ``train.batch_size`` it can train with."""
    least_batch_why: str = ""
    """Why, when above 1."""
    reference: bool = False
    """Compared with a reference model every step (``preference.reference``: the base with the adapter off, or
    its scores computed once)."""
    samples: bool = False
    """Samples answers to prompts and learns from their rewards (the ``rl`` section)."""
    baseline: Literal["group", "others"] | None = None
    """What a sampled answer's reward is measured against: its group's mean and spread (GRPO) or the mean of the
    other answers to its prompt (RLOO)."""
    dropout: bool = True
    """Whether the adapter's dropout is on in training (TRL's preference trainers turn it off: the policy and
    the reference must score the same network)."""
    score_head: bool = False
    """Trains a one-output score head in place of the language-model head (a reward model)."""
    trainer: Literal["engine", "trl"] = "trl"
    """``engine``: the transformers Trainer with the engine's own loss, batches and techniques
    (engine.recipes.techniques); ``trl``: a TRL trainer, which computes its loss and pads its batches itself,
    so only the techniques that hold whatever the loss apply."""
    trl_logits: Literal["chunked", "whole"] = "chunked"
    """How a TRL trainer's loss meets the vocabulary: log-probabilities through a chunked head, or the whole
    float32 logits of every token."""
    loss_spikes: bool = True
    """Whether a loss far above its recent median means something (an RL loss sits near 0 and changes sign)."""
    packs: bool = False
    """Always packs its sequences, whatever ``data.packing`` says (pieces of raw text have no turns to keep apart):
    a config of it says ``packing: true``."""
    cpu_preset: str = "cpu-first-try"
    """The shipped preset the new-run flow takes for this stage on a machine without a GPU: the stage's first try,
    a few seconds a step on the demo model (``cpu-first-try-<stage>``; SFT's is ``cpu-first-try``)."""


STAGES: dict[str, Stage] = {stage.name: stage for stage in (
    Stage("sft", "supervised fine-tuning: learn the answers of instruction data",
          recipe="engine.recipes.sft", kind="sft", reads=("sft",), trainer="engine"),
    Stage("pt", "continued pre-training: learn raw text, every token trained",
          recipe="engine.recipes.sft", kind="text", reads=("text",), demo_data="builtin:identity_text",
          trainer="engine", packs=True, cpu_preset="cpu-first-try-pt"),
    Stage("rm", "reward model: a scalar score head trained to rank chosen above rejected",
          recipe="engine.recipes.rm", kind="pairs", reads=("pairs",), demo_data="builtin:identity_pairs",
          sequences_per_record=2, dropout=False, score_head=True, cpu_preset="cpu-first-try-rm"),
    Stage("dpo", "direct preference optimisation: prefer chosen over rejected answers, against a reference",
          recipe="engine.recipes.dpo", kind="pairs", reads=("pairs",), demo_data="builtin:identity_pairs",
          sequences_per_record=2, reference=True, dropout=False, cpu_preset="cpu-first-try-dpo"),
    Stage("kto", "KTO: learn from answers marked desirable or undesirable, no pairs needed",
          recipe="engine.recipes.kto", kind="kto", reads=("kto", "pairs"), demo_data="builtin:identity_pairs",
          least_batch=2, least_batch_why="its KL term pairs each answer with another prompt of the same batch",
          reference=True, dropout=False, cpu_preset="cpu-first-try-kto"),
    Stage("orpo", "ORPO: supervised fine-tuning and preference in one loss, no reference model",
          recipe="engine.recipes.orpo", kind="pairs", reads=("pairs",), demo_data="builtin:identity_pairs",
          sequences_per_record=2, dropout=False, trl_logits="whole", cpu_preset="cpu-first-try-orpo"),
    Stage("grpo", "GRPO: sample answers to prompts, score them with rewards, reinforce the better ones of each group",
          recipe="engine.recipes.grpo", kind="prompts", reads=("prompts", "sft"), samples=True, baseline="group",
          loss_spikes=False, cpu_preset="cpu-first-try-grpo"),
    Stage("rloo", "RLOO: like grpo, each answer's reward against the mean of the other answers to its prompt",
          recipe="engine.recipes.grpo", kind="prompts", reads=("prompts", "sft"), samples=True, baseline="others",
          loss_spikes=False, cpu_preset="cpu-first-try-rloo"),
)}
"""Every training stage by name, in the order the app lists them."""
DEFAULT_STAGE = "sft"
"""The stage of a config that names none; presets that name none are made for it."""


def training(kind: str) -> list[str]:
    """The stages that train on data of ``kind`` as their own, by name in alphabetical order."""
    return sorted(name for name, row in STAGES.items() if row.kind == kind)
