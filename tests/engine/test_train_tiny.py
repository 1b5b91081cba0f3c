"""The training recipe end to end on a tiny random Llama, through the real supervisor process."""

from __future__ import annotations

import json
from pathlib import Path

from engine.machine.allocator import preload_env


def test_lora_run_writes_events_in_order_and_a_loadable_adapter(eng, tiny_model_dir: Path, tiny_data: Path,
                                                                tmp_path: Path) -> None:
    run_dir = eng.make_run(tmp_path, tiny_model_dir, tiny_data, data={"val_size": 1},
                           train={"max_steps": 3, "save_steps": 2, "eval_steps": 2})
    events = eng.run_to_end(run_dir)

    assert eng.kinds(events) == ["run_started", "log", "log", "eval", "checkpoint", "log", "eval", "checkpoint",
                                 "run_finished"]
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    started = events[[e["type"] for e in events].index("run_started")]
    assert started["total_steps"] == 3 and started["resumed_from_step"] is None
    assert started["method"] == "lora" and started["model"]["architecture"] == "LlamaForCausalLM"
    assert 0 < started["model"]["params_trainable"] < started["model"]["params_total"]
    assert started["data"]["train_records"] == 3 and started["data"]["eval_records"] == 1
    assert [(e["step"], e["eval_loss"] > 0) for e in events if e["type"] == "eval"] == [(2, True), (3, True)]
    logs = [e for e in events if e["type"] == "log"]
    assert [e["step"] for e in logs] == [1, 2, 3]
    assert all(e["tokens_per_s"] > 0 and e["loss"] > 0 and e["total_steps"] == 3 for e in logs)
    # SFT has no stage metrics: the Trainer's speed figures (train_runtime…) are not charted as such
    assert [e.get("metrics") for e in logs] == [None, None, None]
    assert [e["path"] for e in events if e["type"] == "checkpoint"] == ["checkpoints/checkpoint-2",
                                                                          "checkpoints/checkpoint-3"]
    finished = events[-1]
    assert finished["step"] == 3 and finished["adapter_path"] == "adapter"
    assert finished["peak_memory_kind"] == "rss" and finished["peak_memory_bytes"] > 50 * 2**20
    assert [e["name"] for e in events if e["type"] == "phase"] == ["loading_model", "loading_data", "training",
                                                                    "saving"]
    # The Trainer's printed log dicts repeated the log events in engine.log, burying what only it says.
    log = (run_dir / "engine.log").read_text()
    assert "'loss'" not in log
    # On CPU the trainer runs on tcmalloc where this machine has it (make test installs it), else on glibc
    allocator = "freed memory reused (tcmalloc)" if preload_env() else "freed memory returned (glibc mmap threshold)"
    assert allocator in log
    assert "large alloc" not in log

    # export --best reads these events and folders: it takes the checkpoint of the lowest eval loss
    evals = {e["step"]: e["eval_loss"] for e in events if e["type"] == "eval"}
    best = min(evals, key=lambda step: (evals[step], step))
    export = eng.cli("export", str(run_dir), "--best", "--adapter-only", str(tmp_path / "best"))
    _, err = export.communicate(timeout=120)
    assert export.returncode == 0, err
    chosen = run_dir / "checkpoints" / f"checkpoint-{best}" / "adapter_model.safetensors"
    assert (tmp_path / "best" / "adapter_model.safetensors").read_bytes() == chosen.read_bytes()

    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    adapter = run_dir / "adapter"
    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_model_dir), adapter)
    assert any("lora_A" in name for name, _ in model.named_parameters())
    assert AutoTokenizer.from_pretrained(adapter).chat_template


def test_dora_with_rslora_trains_and_saves(eng, tiny_model_dir: Path, tiny_data: Path, tmp_path: Path) -> None:
    run_dir = eng.make_run(tmp_path, tiny_model_dir, tiny_data,
                           adapter={"method": "dora", "r": 4, "rslora": True, "target_modules": ["q_proj", "v_proj"]},
                           train={"max_steps": 2})
    events = eng.run_to_end(run_dir)

    assert eng.kinds(events)[-1] == "run_finished", events[-1]
    model = next(e for e in events if e["type"] == "run_started")["model"]
    assert 0 < model["params_trainable"] < model["params_total"]
    config = json.loads((run_dir / "adapter" / "adapter_config.json").read_text())
    assert config["use_dora"] and config["use_rslora"]
    assert set(config["target_modules"]) == {"q_proj", "v_proj"}


def test_full_fine_tuning_overfits_a_tiny_dataset(eng, tiny_model_dir: Path, tiny_data: Path, tmp_path: Path) -> None:
    """Full fine-tuning (every weight trained) drives the loss down on four records.

    A random model's logits are near uniform (loss about ln(vocab) = 10.8); training the
    embeddings too lets it fit the answers quickly, so the fall is large and certain.
    """
    run_dir = eng.make_run(tmp_path, tiny_model_dir, tiny_data, adapter={"method": "full"},
                           train={"max_steps": 12, "batch_size": 4, "learning_rate": 0.003, "scheduler": "constant"})
    events = eng.run_to_end(run_dir)

    losses = [e["loss"] for e in events if e["type"] == "log"]
    assert len(losses) == 12, events[-1]
    assert losses[-1] < losses[0] - 2.0, losses
    model = next(e for e in events if e["type"] == "run_started")["model"]
    assert model["params_trainable"] == model["params_total"]
    assert (run_dir / "adapter" / "model.safetensors").is_file()


def test_a_bad_config_fails_naming_the_field(eng, tiny_model_dir: Path, tiny_data: Path, tmp_path: Path) -> None:
    run_dir = eng.make_run(tmp_path, tiny_model_dir, tiny_data, train={"learning_rate": "fast"})
    events = eng.run_to_end(run_dir)

    failed = events[-1]
    assert failed["type"] == "run_failed", events
    assert failed["cause"] == "the run config is invalid"
    assert any("config.yaml:" in err and "train.learning_rate" in err for err in failed["errors"]), failed
    assert "run_started" not in eng.kinds(events)


def test_bad_data_fails_with_file_line_and_field(eng, tiny_model_dir: Path, tmp_path: Path) -> None:
    data = tmp_path / "bad.jsonl"
    data.write_text('{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]}\n'
                    '{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant"}]}\n', encoding="utf-8")
    run_dir = eng.make_run(tmp_path, tiny_model_dir, data)
    events = eng.run_to_end(run_dir)

    failed = events[-1]
    assert failed["type"] == "run_failed" and failed["cause"] == "the training data has problems", failed
    assert any("bad.jsonl:2" in err for err in failed["errors"]), failed["errors"]


def test_a_missing_model_fails_with_a_cause_not_a_bare_traceback(eng, tiny_data: Path, tmp_path: Path) -> None:
    run_dir = eng.make_run(tmp_path, tmp_path / "no-such-model", tiny_data)
    events = eng.run_to_end(run_dir)

    failed = events[-1]
    assert failed["type"] == "run_failed" and failed["exit_code"] == 1, failed
    assert "no-such-model" in failed["cause"]
    assert failed["log_tail"] and "Traceback" in "\n".join(failed["log_tail"])


def test_a_model_needing_remote_code_is_refused_unless_the_run_opts_in(
    eng, tiny_model_dir: Path, tiny_data: Path, tmp_path: Path
) -> None:
    """The engine refuses with the same message the app's review shows, before loading anything."""
    import json
    import shutil

    model = tmp_path / "remote-code-model"
    shutil.copytree(tiny_model_dir, model)
    config = json.loads((model / "config.json").read_text())
    config["auto_map"] = {"AutoModelForCausalLM": "modeling_custom.CustomForCausalLM"}
    (model / "config.json").write_text(json.dumps(config))
    run_dir = eng.make_run(tmp_path, model, tiny_data)
    failed = eng.run_to_end(run_dir)[-1]

    assert failed["type"] == "run_failed", failed
    assert "needs remote code" in failed["cause"] and "trust_remote_code" in failed["cause"]
