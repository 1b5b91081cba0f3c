"""Suite-wide fixtures: an isolated home for every test, and the models tests train.

Subfolders (engine/, tui/, unit/) keep their own fixtures in their own conftest.py.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def isolated_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point user config, data and runs at a fresh folder; the model cache stays shared.

    The cache holds the converted demo model (about 25 s to build), so it is kept between
    tests and sessions unless TUITUNE_TEST_CACHE names another place.
    """
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / "config"))
    monkeypatch.setenv("XDG_DATA_HOME", str(home / "data"))
    monkeypatch.setenv("TUITUNE_RUNS_DIR", str(home / "runs"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    if os.environ.get("TUITUNE_TEST_CACHE"):
        monkeypatch.setenv("XDG_CACHE_HOME", os.environ["TUITUNE_TEST_CACHE"])
    return home


@pytest.fixture(scope="session")
def demo_model_dir() -> Path:
    """The real SmolLM2-135M-Instruct as a plain folder (converted once into the user cache)."""
    from engine.models.demo import ensure_demo_model

    return ensure_demo_model()


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory, demo_model_dir: Path) -> Path:
    """A tiny random Llama (2 layers, hidden 64) with the demo model's tokenizer and chat template.

    It trains in well under a second a step, so most engine tests use it; only what needs
    real language ability uses the demo model.
    """
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    folder = tmp_path_factory.mktemp("tiny-llama")
    tokenizer = AutoTokenizer.from_pretrained(demo_model_dir)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(0)
    LlamaForCausalLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory: pytest.TempPathFactory, demo_model_dir: Path) -> Path:
    """The identity demo trained once per session: the no-argument ``tuitune train`` (on this GPU-less
    machine through the cpu-first-try preset, which it names) on the demo model and the shipped
    identity data, as a user would run it; the chat tests check that it answers with the name it learnt. Chat, eval and export tests share it;
    none of them may write into it except into their own job folders (evals/, exports/)."""
    import subprocess
    import sys

    home = tmp_path_factory.mktemp("demo-home")
    run_dir = home / "runs" / "demo"
    env = {**os.environ, "XDG_CONFIG_HOME": str(home / "config"), "XDG_DATA_HOME": str(home / "data"),
           "TUITUNE_RUNS_DIR": str(home / "runs"), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
           "HF_DATASETS_OFFLINE": "1", "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    done = subprocess.run([sys.executable, "-m", "tuitune", "train", "--run-dir", str(run_dir)], env=env,
                          capture_output=True, text=True, timeout=1200, stdin=subprocess.DEVNULL)
    assert done.returncode == 0 and (run_dir / "adapter" / "adapter_config.json").is_file(), done.stderr[-3000:]
    assert done.stderr.startswith("preset: cpu-first-try (none named"), done.stderr[:300]  # never unnamed defaults
    assert "parameters trained (lora) on a base of 134,515,008" in " ".join(done.stdout.split()), done.stdout[-2000:]
    return run_dir
