"""Each stage has a CPU first try (issue 25, item 9): on CPU the new-run flow took dpo-lora or grpo-lora (cutoff
1024, 110 s a step). The measured step times are bench/bench_cpu_presets.py's; here, the cheap part: each is
shipped, made for its stage, and as small a step as SFT's cpu-first-try, which trains in seconds a step."""

from __future__ import annotations

import pytest

from engine.presets import load_preset, resolve
from engine.stages import STAGES
from tuitune.runs.draft import load_presets, stage_preset

SFT_FIRST_TRY = resolve(load_preset("cpu-first-try"))


def tokens_a_step(stage: str, name: str) -> int:
    """The most tokens one optimizer step trains (the estimate's worst case: every sequence cutoff_len long)."""
    config = resolve(load_preset(name))
    row = STAGES[stage]
    sequences = config.train.batch_size * config.train.grad_accum * row.sequences_per_record
    length = config.data.cutoff_len
    if row.samples:
        sequences = config.train.batch_size * config.train.grad_accum * config.rl.generations(False)
        length += config.rl.completion_tokens(False)
    return sequences * length


@pytest.mark.parametrize("stage", list(STAGES))
def test_each_stages_cpu_first_try_is_as_small_as_sfts(stage: str) -> None:
    name = STAGES[stage].cpu_preset
    config = resolve(load_preset(name))
    assert config.stage == stage
    assert (config.train.precision, config.quant.mode, config.train.max_steps) == ("fp32", "none", 30)
    assert tokens_a_step(stage, name) <= tokens_a_step("sft", "cpu-first-try") * 2  # sft's: 2 x 256


def test_the_flow_takes_the_stages_cpu_first_try_without_a_gpu_and_its_own_preset_with_one() -> None:
    presets = load_presets()
    assert stage_preset(presets, "dpo", gpu=False) == "cpu-first-try-dpo"
    assert stage_preset(presets, "grpo", gpu=False) == "cpu-first-try-grpo"
    assert stage_preset(presets, "sft", gpu=False) == "cpu-first-try"
    assert stage_preset(presets, "dpo", gpu=True) == "dpo-lora"
    assert stage_preset(presets, "orpo", gpu=True) is None  # no GPU preset of its own: the one chosen stays


def test_the_grpo_estimate_says_its_activations_assume_prompts_of_cutoff_len(demo_model_dir) -> None:
    """The GRPO review said 14.4 GiB on CPU for a run that peaked at 3.9 GiB RSS: 13.3 GiB of it were activations
    counted for 16 answers to prompts of cutoff_len (1024) tokens, where the demo's prompts are some 30 tokens
    and the trainer pads prompts only to the batch's longest. The estimate stays the worst case and says so."""
    from engine.estimate.memory import estimate
    from engine.models.info import read_model_info

    info = read_model_info(str(demo_model_dir))
    est = estimate(info, resolve({**load_preset("grpo-lora"), "model": {"name_or_path": str(demo_model_dir)}}), "cpu")
    assert est.activations > 0.9 * (est.total - est.weights - est.overhead)  # the term that overestimates
    assert "Activations (13.3 GiB) are counted for prompts of cutoff_len (1024) tokens" in est.notes[-1]
    assert "prompts of 64 tokens need about 1.2 GiB" in est.notes[-1]
    first_try = estimate(info, resolve({**load_preset("cpu-first-try-grpo"),
                                        "model": {"name_or_path": str(demo_model_dir)}}), "cpu")
    assert first_try.total < 2 * 2**30  # what the new-run flow now takes on CPU
