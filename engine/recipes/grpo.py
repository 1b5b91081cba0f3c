"""Reinforcement learning from rewards (the stages that sample answers: GRPO and RLOO), top to bottom, on TRL.

config.yaml → tokenizer → model (bitsandbytes) → adapter (peft) → prompts (:mod:`engine.data.prompts`,
the same reading ``tuitune data check`` does) → rewards (:mod:`engine.recipes.rewards`) → ``GRPOTrainer`` or
``RLOOTrainer`` with the EventsCallback → train → adapter → run_finished.

Each step samples ``rl.num_generations`` answers to each prompt, scores them with the rewards (their
weighted sum), and pushes up the answers that beat their group: GRPO against the group's mean (and
spread), RLOO against the mean of the other answers. The sampling, the loss and the metrics (``reward``,
``reward_std``, ``rewards/<name>/mean``, ``kl``, ``completions/mean_length``,
``completions/clipped_ratio``, …) are TRL's; the log events carry them under ``metrics``. What this
module decides:

* **Batch.** ``train.batch_size`` counts prompts; TRL's batch counts answers, so it is
  ``batch_size × num_generations`` (a batch never splits a prompt's group).
* **Defaults that suit the machine.** TRL samples 8 answers of up to 512 tokens; on a CPU that is
  minutes a step, so without ``rl.num_generations``/``rl.max_completion_length`` a CPU run samples
  4 answers of 32 tokens (a GPU 8 of 256).
* **Reference.** With ``rl.beta`` above 0 the KL term needs the starting model's log-probabilities:
  the base with the adapter off, as in :mod:`engine.recipes.dpo` (TRL's copy of the fresh adapter is
  dropped). With beta 0 (TRL's default) there is no reference pass at all.
* **Sampling.** ``model.generate`` inside the trainer; vLLM (colocated) when it is installed, a GPU is
  there with room, and ``rl.generation`` allows it. A phase event says which.
* **Samples.** After each log, rank 0 writes a ``samples`` event with the latest answers and their
  rewards, which the dashboard shows.
"""

from __future__ import annotations

import importlib.util
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from engine.config import DataSection, RLSection
from engine.data.formats import last_user_turn
from engine.data.prepare import Item, encode_or_refuse, split
from engine.data.problems import DataError, Problem
from engine.data.prompts import PromptSet, read_prompts, reward_plan
from engine.protocol import PHASE, SAMPLES, WARNING
from engine.recipes.attempt import Events, RunFlags
from engine.recipes.callbacks import EventsCallback
from engine.recipes.common import (
    drop_reference_copy,
    load_for_stage,
    resume_point,
    run_started_fields,
    train_and_save,
    training_arguments,
)
from engine.recipes.rewards import answer_text, build_rewards
from engine.stages import STAGES

log = logging.getLogger("engine.recipes.grpo")

SAMPLES_SHOWN = 8
"""Answers a samples event carries: the newest of the latest generation batch."""
SAMPLE_CHARS = 600
"""Longest prompt or answer text kept in a samples event."""
VLLM_FREE_SHARE = 0.5
"""Share of the GPU's memory that must be free for auto to pick vLLM (colocated, it takes VLLM_MEMORY of it)."""
VLLM_MEMORY = 0.3


def train(run_dir: Path, resume: bool, events: Events, flags: RunFlags) -> int:
    """Run one GRPO or RLOO training session for ``run_dir``; returns the process exit status."""
    # ---- model and data ------------------------------------------------------
    loaded = load_for_stage(run_dir, events, flags, build=build_prompts)
    config, tokenizer, model, facts, built = loaded.config, loaded.tokenizer, loaded.model, loaded.facts, loaded.built
    rl = config.rl

    # ---- rewards ------------------------------------------------------------
    # Checked and built before the trainer, so prompts without the references a reward needs, a python
    # reward that cannot load or a reward model that is not there fail now, not after the first sampling.
    plan = reward_plan(rl, built.prompts, config.data.train)
    if not rl.rewards:
        events.emit(WARNING, message=plan, code="default_reward")
    events.emit(PHASE, name="loading_rewards", message=plan)
    rewards, weights = build_rewards(rl)
    flags.check_stop()

    # ---- trainer ------------------------------------------------------------
    generations, completion = rl.generations(torch.cuda.is_available()), rl.completion_tokens(torch.cuda.is_available())
    use_vllm, how = sampling_backend(rl)
    events.emit(PHASE, name="loading_rewards", message=f"{how}; {generations} answers of up to {completion} tokens "
                                                       f"to each of {config.train.batch_size} prompts a step")
    config_class, trainer_class = trl_classes(config.stage)
    # TRL's batch counts answers; ours counts prompts (see the module docstring).
    answers = config.model_copy(deep=True)
    answers.train.batch_size = config.train.batch_size * generations
    extra: dict[str, Any] = {}
    if use_vllm:
        extra = {"use_vllm": True, "vllm_mode": "colocate", "vllm_gpu_memory_utilization": VLLM_MEMORY}
    args = training_arguments(
        answers, run_dir, has_eval=built.eval is not None, args_class=config_class,
        num_generations=generations, max_completion_length=completion, temperature=rl.temperature, beta=rl.beta,
        reward_weights=weights, log_completions=False, **extra,
    )
    args.include_num_input_tokens_seen = "no"  # TRL counts prompt and answer tokens itself as it samples
    checkpoint = resume_point(run_dir, events) if resume else None
    started = run_started_fields(run_dir, config, facts, built.stats)
    callback = EventsCallback(events, run_dir, flags, started, resumed=checkpoint is not None)
    trainer = trainer_class(model=model, reward_funcs=rewards, args=args, train_dataset=built.train,
                            eval_dataset=built.eval, processing_class=tokenizer, callbacks=[callback])
    trainer.events = events
    drop_reference_copy(trainer.model)

    # ---- train and save -----------------------------------------------------
    return train_and_save(trainer, callback, run_dir, checkpoint, tokenizer, events, flags)


@dataclass
class Prompts:
    """The datasets of an RL run (the shape of :class:`engine.recipes.datasets.Built`) and the prompts read."""

    train: Any
    """datasets.Dataset with columns prompt (messages), reference ('' when none) and record (its place)."""
    eval: Any | None
    stats: dict[str, Any]
    warnings: list[str]
    prompts: PromptSet


def build_prompts(data: DataSection, tokenizer: Any, seed: int, stage: str) -> Prompts:
    """The prompts as TRL takes them: ``prompt`` (messages), ``reference`` and ``record`` columns.

    TRL applies the chat template and tokenises the prompts itself as it samples; the reward
    functions get the other columns with each answer.
    """
    from datasets import Dataset

    prompts = read_prompts(data, stage)
    warnings = list(prompts.warnings)
    items = [Item(record) for record in prompts.places]
    encode_or_refuse(items, "prompts", tokenizer, data.cutoff_len, data.system_prompt)
    lengths = [len(item.encoded) for item in items]
    # TRL never cuts a prompt (a cut one would ask something else): longer ones are left out, as SFT
    # leaves out records with nothing left to train, and the rest keep data.cutoff_len's memory bound.
    long = [n for n, length in enumerate(lengths) if length > data.cutoff_len]
    if long:
        if len(long) == len(lengths):
            raise DataError([Problem(", ".join(data.train), None, None, None, f"every prompt is longer than "
                                     f"cutoff_len {data.cutoff_len} tokens (the shortest has {min(lengths)}): "
                                     "raise data.cutoff_len")])
        first = prompts.rows[long[0]]["record"]
        warnings.append(f"{len(long)} prompts longer than cutoff_len {data.cutoff_len} tokens left out "
                        f"(first: {first}, {lengths[long[0]]} tokens)")
        keep = [n for n in range(len(lengths)) if lengths[n] <= data.cutoff_len]
        prompts.rows, prompts.places = [prompts.rows[n] for n in keep], [prompts.places[n] for n in keep]
        lengths = [lengths[n] for n in keep]
    train_rows, held = split(prompts.rows, data.val_size, seed, what="prompts")
    stats = {"format": prompts.formats, "train_records": len(train_rows), "eval_records": len(held), "truncated": 0,
             "dropped_long": len(long), "prompt_tokens": sum(lengths), "train_tokens": None,
             "with_reference": sum(1 for row in train_rows if row["reference"])}
    return Prompts(Dataset.from_list(train_rows), Dataset.from_list(held) if held else None, stats, warnings, prompts)


def sampling_backend(rl: RLSection) -> tuple[bool, str]:
    """Whether vLLM samples the answers, and a line saying what does.

    Raises:
        ValueError: ``rl.generation: vllm`` without vllm installed or without a GPU.
    """
    has_vllm = importlib.util.find_spec("vllm") is not None
    cuda = torch.cuda.is_available()
    if rl.generation == "vllm":
        if not (has_vllm and cuda):
            raise ValueError("rl.generation vllm needs the vllm package and a GPU "
                             f"({'no GPU' if not cuda else 'vllm is not installed'}); use auto or trainer")
        return True, "answers sampled by vLLM, colocated on the GPU"
    if rl.generation == "auto" and has_vllm and cuda:
        free, total = torch.cuda.mem_get_info()
        if free >= VLLM_FREE_SHARE * total:
            return True, "answers sampled by vLLM, colocated on the GPU"
        return False, (f"answers sampled by the trainer (model.generate): vllm is installed but only "
                       f"{free / 2**30:.1f} of {total / 2**30:.1f} GiB of GPU memory is free")
    why = " (vllm is not installed)" if cuda and not has_vllm and rl.generation == "auto" else ""
    return False, f"answers sampled by the trainer (model.generate){why}"


def trl_classes(stage: str) -> tuple[type, type]:
    """TRL's config and trainer for ``stage`` (by its baseline: RLOO's leave-one-out mean of the other answers,
    or GRPO's group), the trainer writing a samples event after each log."""
    if STAGES[stage].baseline == "others":
        from trl import RLOOConfig as Config
        from trl import RLOOTrainer as Trainer
    else:
        from trl import GRPOConfig as Config
        from trl import GRPOTrainer as Trainer

    class SampledTrainer(Trainer):  # type: ignore[misc, valid-type]
        """TRL's trainer that also writes the latest answers and their rewards as a samples event."""

        events: Events | None = None

        def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
            training = self.model.training
            super().log(logs, start_time)
            if training and "loss" in logs and self.events is not None and self.is_world_process_zero():
                write_samples(self.events, self.state.global_step, self._logs, self.reward_weights.tolist())

    return Config, SampledTrainer


def write_samples(events: Events, step: int, logs: dict[str, Any], weights: list[float]) -> None:
    """A ``samples`` event from TRL's record of the latest generation batch (its newest SAMPLES_SHOWN answers),
    each answer with its reward (the weighted sum) and each reward's score."""
    prompts, completions = list(logs["prompt"]), list(logs["completion"])
    rewards = {name: list(values) for name, values in logs["rewards"].items()}
    advantages = list(logs["advantages"])
    first = max(0, len(completions) - SAMPLES_SHOWN)
    samples = []
    for n in range(first, len(completions)):
        scores = {name: values[n] for name, values in rewards.items() if n < len(values)}
        total = sum(w * v for w, v in zip(weights, scores.values()) if not math.isnan(v))
        samples.append({
            "prompt": (last_user_turn(prompts[n]) if isinstance(prompts[n], list) else str(prompts[n]))[-SAMPLE_CHARS:],
            "completion": answer_text(completions[n])[:SAMPLE_CHARS],
            "reward": total, "rewards": scores,
            "advantage": advantages[n] if n < len(advantages) else None,
        })
    if samples:
        events.emit(SAMPLES, step=step, samples=samples)
