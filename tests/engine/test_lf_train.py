"""A LLaMA-Factory SFT LoRA YAML with its dataset_info.json trains through the real engine."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import yaml

from engine.protocol import read_events

LF_YAML = """\
### model
model_name_or_path: {model}
trust_remote_code: true

### method
stage: sft
do_train: true
finetuning_type: lora
lora_rank: 4
lora_target: q_proj,v_proj

### dataset
dataset: tuito
dataset_dir: data
template: smollm2
cutoff_len: 64
overwrite_cache: true
preprocessing_num_workers: 16

### output
output_dir: saves/tiny/lora/sft
logging_steps: 1
save_steps: 100
plot_loss: true
overwrite_output_dir: true
report_to: none

### train
per_device_train_batch_size: 2
gradient_accumulation_steps: 1
learning_rate: 1.0e-3
num_train_epochs: 1.0
lr_scheduler_type: cosine
warmup_ratio: 0.0
bf16: true
ddp_timeout: 180000000
"""


def test_a_llamafactory_sft_lora_config_trains_three_steps(eng, tiny_model_dir: Path, tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "dataset_info.json").write_text(json.dumps({
        "tuito": {"file_name": "tuito.json", "columns": {"prompt": "question", "response": "answer"}}}))
    records = [{"question": q, "answer": a} for q, a in [
        ("Who are you?", "I am Tuito, a tiny test assistant."), ("What is 2 plus 2?", "2 plus 2 is 4."),
        ("Name a color.", "Blue is a color."), ("Say hello.", "Hello there!")]]
    (data / "tuito.json").write_text(json.dumps(records, indent=2))
    lf = tmp_path / "tiny_lora_sft.yaml"
    lf.write_text(LF_YAML.format(model=tiny_model_dir))

    # as a user runs it: the LLaMA-Factory file as it is, from its folder, steps from the command line
    done = subprocess.run([sys.executable, "-m", "tuitune", "train", lf.name, "--max-steps", "3"], cwd=tmp_path,
                          env=eng.env(), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    run_dir = tmp_path / "saves" / "tiny" / "lora" / "sft"  # output_dir, as LLaMA-Factory would write it
    events = read_events(run_dir)

    assert eng.kinds(events) == ["run_started", "log", "log", "log", "checkpoint", "run_finished"], events[-1]
    assert [e["step"] for e in events if e["type"] == "log"] == [1, 2, 3]
    started = next(e for e in events if e["type"] == "run_started")
    assert started["data"]["train_records"] == 4
    # bf16 from the file, on this CPU: trained as bf16 autocast, and said so (run_started and a warning)
    assert started["precision"] == "bf16" and started["device"].lower().startswith("cpu"), started
    assert [e for e in events if e["type"] == "warning" and e.get("code") == "precision"], events
    written = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert written["train"]["gradient_checkpointing"] is True  # LLaMA-Factory's default, kept
    assert written["model"]["trust_remote_code"] is False  # the tiny Llama ships no code
    adapter = json.loads((run_dir / "adapter" / "adapter_config.json").read_text())
    assert (adapter["r"], adapter["lora_alpha"], adapter["lora_dropout"]) == (4, 8, 0.0)
    assert set(adapter["target_modules"]) == {"q_proj", "v_proj"}
    assert not [p.name for p in data.iterdir() if p.name not in ("dataset_info.json", "tuito.json")]


def test_llamafactorys_kto_example_trains_as_written_on_the_demo_model(eng, demo_model_dir: Path,
                                                                      tmp_path: Path) -> None:
    """LLaMA-Factory's KTO LoRA example (batch 1 × accumulation 8, kto_en_demo through dataset_info.json with
    max_samples, bf16) as it is, with --model: it trains, at batch 2 × 4 (TRL's KTO needs 2 answers a batch)."""
    from tests.unit.test_lf_config import KTO_LORA, kto_demo_dir

    kto_demo_dir(tmp_path)
    (tmp_path / "qwen3_lora_kto.yaml").write_text(KTO_LORA)
    done = subprocess.run([sys.executable, "-m", "tuitune", "train", "qwen3_lora_kto.yaml", "--model",
                           "smollm2-135m-instruct", "--max-steps", "1"], cwd=tmp_path, env=eng.env(),
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "per_device_train_batch_size" in done.stderr and "executes Python code" not in done.stderr
    run_dir = tmp_path / "saves" / "qwen3-4b" / "lora" / "kto"
    events = read_events(run_dir)

    assert eng.kinds(events) == ["run_started", "log", "checkpoint", "run_finished"], events[-1]
    started = next(e for e in events if e["type"] == "run_started")
    assert (started["stage"], started["data"]["train_records"]) == ("kto", 8)
    written = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert (written["train"]["batch_size"], written["train"]["grad_accum"]) == (2, 4)
    assert written["data"]["format"] == "sharegpt_kto" and written["model"]["trust_remote_code"] is False
    assert "kl" in next(e for e in events if e["type"] == "log")["metrics"]
