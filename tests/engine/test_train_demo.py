"""A few real steps on the embedded demo model (SmolLM2-135M-Instruct): LoRA and 4-bit QLoRA."""

from __future__ import annotations

import math
from pathlib import Path

import pytest


@pytest.mark.parametrize(
    ("quant", "expected"),
    [({"mode": "none"}, "none"), ({"mode": "4bit", "quant_type": "nf4", "double_quant": True}, "4bit-nf4")],
    ids=["lora", "qlora-4bit"],
)
def test_demo_model_trains_a_few_steps(eng, demo_model_dir: Path, tmp_path: Path, quant: dict, expected: str) -> None:
    run_dir = eng.make_run(tmp_path, "smollm2-135m-instruct", "builtin:identity", quant=quant,
                           train={"max_steps": 3, "batch_size": 2})
    events = eng.run_to_end(run_dir)

    assert eng.kinds(events) == ["run_started", "log", "log", "log", "checkpoint", "run_finished"], events[-1]
    started = next(e for e in events if e["type"] == "run_started")
    model = started["model"]
    assert model["quant"] == expected and model["resolved_path"] == str(demo_model_dir)
    assert model["architecture"] == "LlamaForCausalLM"
    # about 134.5M weights; LoRA r=16 on every linear layer of SmolLM2-135M is about 4.9M
    assert 130e6 < model["params_total"] < 145e6 and 4e6 < model["params_trainable"] < 6e6
    assert started["data"]["train_records"] > 40 and started["data"]["truncated"] > 0  # cutoff_len 64
    losses = [e["loss"] for e in events if e["type"] == "log"]
    # A pretrained instruct model starts far below the ~10.8 of random guessing over 49k tokens.
    assert all(math.isfinite(loss) and 0.5 < loss < 8 for loss in losses), losses
    assert (run_dir / "adapter" / "adapter_model.safetensors").is_file()
