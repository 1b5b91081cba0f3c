"""The one model loader: every stage, the RL reward model and the export's merge load through
``engine.models.loading.load_model``, which gives the stage its head, quantizes, releases the weights file
and places each process on its own device."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
import yaml


def _maps() -> str:
    return Path("/proc/self/maps").read_text()


def test_a_reward_model_run_trains_what_the_one_loader_loads(tiny_model_dir: Path, tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """The rm recipe trains the model ``load_model`` gives for its stage: a one-output score head on a 4-bit base
    whose weights file is let go of once packed (the recipe had a loader of its own that kept it)."""
    from engine.models import loading
    from engine.protocol import read_events
    from engine.recipes import rm
    from engine.recipes.attempt import Events, RunFlags

    weights = str(next(tiny_model_dir.glob("*.safetensors")).resolve())
    loads: list[dict[str, Any]] = []
    real = loading.load_model

    def spy(config: Any, path: str, **kwargs: Any) -> Any:
        model = real(config, path, **kwargs)
        loads.append({"stage": config.stage, "head": type(model).__name__, "mapped": weights in _maps(),
                      "packed": any(type(p).__name__ == "Params4bit" for p in model.parameters()),
                      "pad": model.config.pad_token_id})
        return model

    monkeypatch.setattr(loading, "load_model", spy)
    run_dir = tmp_path / "rm"
    run_dir.mkdir()
    (run_dir / "config.yaml").write_text(yaml.safe_dump({
        "stage": "rm", "model": {"name_or_path": str(tiny_model_dir)}, "quant": {"mode": "4bit"},
        "data": {"cutoff_len": 64}, "train": {"max_steps": 1, "batch_size": 2, "logging_steps": 1}}))
    events = Events(run_dir)
    try:
        assert rm.train(run_dir, False, events, RunFlags()) == 0
    finally:
        events.close()
    assert loads == [{"stage": "rm", "head": "LlamaForSequenceClassification", "mapped": False, "packed": True,
                      "pad": loads[0]["pad"]}] and loads[0]["pad"] is not None, loads
    assert [e["type"] for e in read_events(run_dir)][-1] == "run_finished"


def test_a_quantized_load_lands_on_the_gpu_of_its_rank(tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Under torchrun each rank's quantized base (the reward model's too) is placed on its own GPU, not GPU 0;
    an unquantized model that answers or scores moves to that device as well."""
    from transformers import AutoModelForSequenceClassification

    from engine.config import RunConfig
    from engine.models import loading

    asked: list[dict[str, Any]] = []

    class Placed(Exception):
        pass

    def from_pretrained(path: str, **kwargs: Any) -> Any:
        asked.append(kwargs)
        raise Placed  # no GPU here to load onto: where it was asked to go is the point

    monkeypatch.setenv("LOCAL_RANK", "1")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(AutoModelForSequenceClassification, "from_pretrained", from_pretrained)
    config = RunConfig.model_validate({"stage": "rm",
                                       "model": {"name_or_path": str(tiny_model_dir), "dtype": "float32"},
                                       "quant": {"mode": "4bit", "compute_dtype": "float32"}})
    with pytest.raises(Placed):
        loading.load_model(config, str(tiny_model_dir), pad_token_id=0)
    assert asked[0]["device_map"] == {"": 1} and asked[0]["num_labels"] == 1
    assert loading.device() == torch.device("cuda", 1)


def test_the_rl_reward_model_is_loaded_as_its_stage_trains_it(tiny_model_dir: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """A model folder given as an RL reward loads through the one loader with the reward-model stage's score
    head, on this process's device, and scores each answer."""
    from engine.models import loading
    from engine.recipes.reward_model import RewardModel

    stages: list[tuple[str, bool]] = []
    real = loading.load_model

    def spy(config: Any, path: str, **kwargs: Any) -> Any:
        stages.append((config.stage, kwargs.get("on_device", False)))
        return real(config, path, **kwargs)

    monkeypatch.setattr(loading, "load_model", spy)
    reward = RewardModel(str(tiny_model_dir))
    assert stages == [("rm", True)]
    assert type(reward.model).__name__ == "LlamaForSequenceClassification" and reward.device == loading.device()
    scores = reward.score(["Who are you?", "Say hello."], ["I am Tuito.", "Hello!"])
    assert len(scores) == 2 and all(isinstance(s, float) for s in scores)
