"""Every shipped preset trains: two steps on the tiny model, through the real engine.

The runs start the way the app starts them (``tuitune.runs.launch.start_run``: a detached
supervisor that runs ``python -m engine train``), every preset's run at once so the process
start-up, mostly importing torch, overlaps (one torch thread each, see RUN_ENV). Each preset keeps
its own knobs (quantization, optimizer,
gradient checkpointing, learning rate); only the model, the steps and their size (max_steps 2,
batch 2 x 64 tokens, no accumulation) are overridden: a step of the 49k-word vocabulary's logits
costs seconds on a shared CPU.
On CPU: the 4-bit and 8-bit presets run through bitsandbytes' CPU backend (the supervisor
sets ONEDNN_MAX_CPU_ISA, see engine/supervisor/launch.py); paged_adamw_8bit falls back to unpaged on CPU.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import pytest

from engine.config import deep_merge
from engine.estimate.trainable import trainable_params
from engine.models.info import read_model_info
from engine.paths import shipped_presets_dir
from engine.presets import load_preset, resolve
from engine.protocol import read_events, terminal_event
from tuitune.runs.launch import start_run

PRESETS = sorted(path.stem for path in shipped_presets_dir().glob("*.yaml"))
TIMEOUT_S = 300.0
"""Generous: a trainer per shipped preset shares a 2-core machine that other tests also use."""
RUN_ENV = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
"""Offline, and one torch thread per run: a dozen runs on two cores go faster without oversubscription."""


def fast_config(name: str, model: Path) -> dict[str, Any]:
    """The preset laid under a tiny two-step run, as ``tuitune train --preset NAME --model M`` lays it."""
    return deep_merge(load_preset(name), {
        "model": {"name_or_path": str(model)},
        "data": {"cutoff_len": 64},
        "train": {"max_steps": 2, "batch_size": 2, "grad_accum": 1, "logging_steps": 1},
        "rl": {"max_completion_length": 16},  # the RL presets' sampling, short: the tiny model never stops by itself
    })


@pytest.fixture(scope="module")
def preset_runs(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[dict[str, Any]]]:
    """Start one run per shipped preset at once, wait for each to end, return their events."""
    runs = tmp_path_factory.mktemp("preset-runs")
    with pytest.MonkeyPatch.context() as env:
        for key, value in RUN_ENV.items():
            env.setenv(key, value)
        for name in PRESETS:
            start_run(runs / name, resolve(fast_config(name, tiny_model_dir)))
    deadline = time.monotonic() + TIMEOUT_S
    pending = set(PRESETS)
    while pending and time.monotonic() < deadline:
        pending = {name for name in pending if terminal_event(read_events(runs / name)) is None}
        time.sleep(0.5)
    assert not pending, f"still running after {TIMEOUT_S:.0f} s: {sorted(pending)}; see {runs}/*/engine.log"
    return {name: read_events(runs / name) for name in PRESETS}


@pytest.mark.parametrize("name", PRESETS)
def test_shipped_preset_trains_two_steps(preset_runs: dict[str, list[dict[str, Any]]], name: str,
                                         tiny_model_dir: Path) -> None:
    events = preset_runs[name]
    end = terminal_event(events)
    assert end is not None and end["type"] == "run_finished", f"{name}: {end}"
    assert end["step"] == 2
    config = resolve(fast_config(name, tiny_model_dir))
    started = next(e for e in events if e["type"] == "run_started")
    assert started["method"] == config.adapter.method
    quant = {"none": "none", "4bit": "4bit-nf4", "8bit": "8bit"}[config.quant.mode]
    assert started["model"]["quant"] == quant
    losses = [e["loss"] for e in events if e["type"] == "log"]
    assert len(losses) == 2 and all(loss is not None and math.isfinite(loss) for loss in losses)


@pytest.mark.parametrize("name", PRESETS)
def test_editor_count_equals_what_the_engine_trained(preset_runs: dict[str, list[dict[str, Any]]], name: str,
                                                     tiny_model_dir: Path) -> None:
    """The trainable count the preset editor shows (engine.estimate.memory) is what peft really trained."""
    started = next(e for e in preset_runs[name] if e["type"] == "run_started")
    config = resolve(fast_config(name, tiny_model_dir))
    assert trainable_params(read_model_info(str(tiny_model_dir)), config.adapter, config.stage) == \
        started["model"]["params_trainable"]
