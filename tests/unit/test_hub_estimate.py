"""A hub id before any weights: ``tuitune estimate`` reads its facts from the Hub (config.json, file sizes,
safetensors header ranges), and ``tuitune train`` refuses a mistyped one before a run folder exists. The Hub is
the fake one on 127.0.0.1 (tests/fixtures/hub/server.py); no engine process starts."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import FIRST_SHARD as FIRST
from tests.conftest import SECOND_SHARD as SECOND

REPO = Path(__file__).resolve().parents[2]


def tuitune(*args: str) -> subprocess.CompletedProcess[str]:
    """``tuitune ARGS`` in a fresh process (huggingface_hub reads HF_ENDPOINT when imported)."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", "tuitune", *args], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=120, stdin=subprocess.DEVNULL)


def test_estimate_of_a_hub_id_reads_its_facts_without_its_weights(fake_hub, sharded_tiny: Path) -> None:
    """config.json, the file sizes and the safetensors headers (a small byte range each) give the estimate."""
    fake_hub.add("org/tiny", sharded_tiny)
    done = tuitune("estimate", "--model", "org/tiny", "--preset", "cpu-first-try")
    out, err = done.stdout, done.stderr
    assert done.returncode == 0, err
    params = sum(math.prod(t["shape"]) for t in _header_tensors(sharded_tiny))
    assert f"model     org/tiny  (LlamaForCausalLM, {params / 1e6:,.1f}M parameters)" in out, out
    assert "fits " in out and "On the Hub, not on this machine: 16 MiB to download" in out, out
    for shard in (FIRST, SECOND):  # only the header range of each shard, never the weights
        assert fake_hub.sent["org/tiny/" + shard] <= 100_001 < (sharded_tiny / shard).stat().st_size


def _header_tensors(folder: Path) -> list[dict]:
    from engine.models.safetensors_header import read_safetensors_header

    return [entry for file in sorted(folder.glob("*.safetensors"))
            for name, entry in read_safetensors_header(file).items() if name != "__metadata__"]


def test_train_refuses_a_mistyped_hub_id_before_a_run_folder_exists(fake_hub, tmp_path: Path,
                                                                    isolated_home: Path) -> None:
    data = tmp_path / "data.jsonl"
    data.write_text(json.dumps({"messages": [{"role": "user", "content": "Hi"},
                                             {"role": "assistant", "content": "Hello"}]}) + "\n")
    done = tuitune("train", "--model", "org/tiyn", "--data", str(data), "--max-steps", "1", "--detach")
    out, err = done.stdout, done.stderr
    assert done.returncode == 2, (out, err)
    assert err.strip().splitlines() == [f"error: no model org/tiyn on the Hub (if it is private, set HF_TOKEN or log "
                                        f"in: hf auth login); check the spelling at {fake_hub.url}"], err
    assert not (isolated_home / "runs").exists() or not any((isolated_home / "runs").iterdir())
