"""Training stages beyond SFT on the real engine processes: DPO, KTO, reward model, PT and ORPO.

Each stage trains the tiny model (the demo's tokenizer, so the Chinese and English records written
here are read as a real run reads them) for a few steps, logs its own metric and leaves an adapter
that loads back; DPO's reward margin rises on the demo model (SmolLM2-135M) on a toy set where it must;
bad or wrong data is refused before training with located, actionable messages; stop, save-now and
resume work for DPO as for SFT.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tuitune.runs.launch import is_alive, request_save, stop_run

SHORT = {"batch_size": 2, "logging_steps": 1, "save_steps": 100, "warmup_ratio": 0.0, "scheduler": "constant"}

# Chosen answers say something; rejected ones all dodge. One style to prefer, so what a step learns
# from one pair carries over to the others and the margin must rise step after step.
PAIRS = [
    ("What is the capital of France?", "The capital of France is Paris.", "I don't know."),
    ("中国的首都是哪里？", "中国的首都是北京。", "不知道。"),
    ("What colour is the sky on a clear day?", "On a clear day the sky is blue.", "I don't know."),
    ("一年有几个月？", "一年有十二个月。", "不知道。"),
]


def write_lines(path: Path, records: list[Any]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    return path


def trl_pairs(path: Path) -> Path:
    return write_lines(path, [{"prompt": q, "chosen": c, "rejected": r} for q, c, r in PAIRS])


def make_run(eng, parent: Path, model: Path | str, data: Path, stage: str, **sections: dict[str, Any]) -> Path:
    """eng.make_run's short run, for ``stage``."""
    run_dir = eng.make_run(parent, model, data, **sections)
    config = yaml.safe_load((run_dir / "config.yaml").read_text())
    (run_dir / "config.yaml").write_text(yaml.safe_dump({"stage": stage, **config}))
    return run_dir


def log_metrics(events: list[dict[str, Any]], name: str) -> list[float]:
    return [e["metrics"][name] for e in events if e["type"] == "log"]


def load_adapter(base: Path, adapter: Path, head: bool = False) -> Any:
    """The base with the run's adapter loaded (a reward model gets its one-output head first)."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification

    model = (AutoModelForSequenceClassification.from_pretrained(base, num_labels=1) if head
             else AutoModelForCausalLM.from_pretrained(base))
    return PeftModel.from_pretrained(model, adapter)


def trained_lora_b(model: Any) -> float:
    """The largest LoRA B weight: zero at initialisation, so anything else was trained and loaded."""
    return max(float(p.abs().max()) for name, p in model.named_parameters() if "lora_B" in name)


def test_dpo_reward_margin_rises_and_the_adapter_loads_back(eng, demo_model_dir: Path, tmp_path: Path) -> None:
    run_dir = make_run(eng, tmp_path, "smollm2-135m-instruct", trl_pairs(tmp_path / "pairs.jsonl"),
                           stage="dpo", train={**SHORT, "max_steps": 4, "learning_rate": 5e-4})
    events = eng.run_to_end(run_dir)

    assert eng.kinds(events) == ["run_started", "log", "log", "log", "log", "checkpoint", "run_finished"], events[-1]
    started = events[[e["type"] for e in events].index("run_started")]
    assert started["stage"] == "dpo" and started["data"]["train_records"] == 4
    margins = log_metrics(events, "rewards/margins")
    # At step 1 the policy is the reference (LoRA starts as the identity): no margin yet.
    assert margins[0] == pytest.approx(0.0, abs=1e-6)
    assert margins[-1] > 0.1 and margins[-1] == max(margins), margins
    assert log_metrics(events, "rewards/accuracies")[-1] == 1.0
    last = [e for e in events if e["type"] == "log"][-1]
    assert all(name in last["metrics"] for name in ("rewards/chosen", "rewards/rejected", "logps/chosen")), last
    # The reference was the base with the adapter off: no second adapter was trained or saved.
    config = json.loads((run_dir / "adapter" / "adapter_config.json").read_text())
    assert config["peft_type"] == "LORA" and not (run_dir / "adapter" / "ref").exists()
    assert trained_lora_b(load_adapter(demo_model_dir, run_dir / "adapter")) > 0


SHAREGPT_KTO = [{"conversations": [{"from": "human", "value": q}, {"from": "gpt", "value": a}], "kto_tag": tag}
                for (q, c, r), (a, tag) in zip(PAIRS, [(PAIRS[0][1], True), (PAIRS[1][2], False),
                                                       (PAIRS[2][1], True), (PAIRS[3][2], False)])]
ALPACA_PAIRS = [{"instruction": q, "input": "", "chosen": c, "rejected": r} for q, c, r in PAIRS]
SHAREGPT_RANKING = [{"conversations": [{"from": "human", "value": q}], "chosen": {"from": "gpt", "value": c},
                     "rejected": {"from": "gpt", "value": r}} for q, c, r in PAIRS]
PT_TEXT = ("The Eiffel Tower stands in Paris.\nIt was finished in 1889.\n\n"
           "长城是中国古代的军事防御工程。\n\n"
           "Rivers carry water from the mountains to the sea. " * 6)


@pytest.mark.parametrize(("stage", "data", "metric"), [
    ("kto", SHAREGPT_KTO, "kl"),
    ("rm", SHAREGPT_RANKING, "accuracy"),
    ("orpo", ALPACA_PAIRS, "log_odds_ratio"),
    ("pt", None, None),
], ids=["kto-sharegpt-kto_tag", "rm-sharegpt-ranking", "orpo-alpaca-pairs", "pt-txt"])
def test_each_stage_trains_and_its_adapter_loads_back(
        eng, tiny_model_dir: Path, tmp_path: Path, stage: str, data: Any, metric: str | None) -> None:
    if data is None:
        path = tmp_path / "corpus.txt"
        path.write_text(PT_TEXT, encoding="utf-8")
    else:
        path = write_lines(tmp_path / "data.jsonl", data)
    run_dir = make_run(eng, tmp_path, tiny_model_dir, path, stage=stage, train={**SHORT, "max_steps": 2})
    events = eng.run_to_end(run_dir)

    assert eng.kinds(events) == ["run_started", "log", "log", "checkpoint", "run_finished"], events[-1]
    logs = [e for e in events if e["type"] == "log"]
    assert all(0 < e["loss"] < 20 for e in logs) and logs[-1]["tokens_per_s"] > 0
    if metric:
        assert metric in logs[-1]["metrics"], logs[-1]["metrics"]
    model = load_adapter(tiny_model_dir, run_dir / "adapter", head=stage == "rm")
    assert trained_lora_b(model) > 0
    if stage == "rm":  # the score head was trained and saved with the adapter, and loads back as trained
        from safetensors.torch import load_file

        saved = load_file(run_dir / "adapter" / "adapter_model.safetensors")["base_model.model.score.weight"]
        head = model.base_model.model.score
        assert (head.modules_to_save["default"].weight.detach() == saved).all()
        assert not (head.original_module.weight.detach() == saved).all()  # not the fresh head of this load


def test_bad_preference_data_is_refused_before_training_with_record_locations(
        eng, tiny_model_dir: Path, tmp_path: Path) -> None:
    bad = write_lines(tmp_path / "bad.jsonl", [
        {"prompt": "Hi", "chosen": "Hello!", "rejected": "Go away."},
        {"prompt": "Hi", "chosen": "", "rejected": "Go away."},
        {"prompt": "你好", "chosen": "你好！", "rejected": "你好！"},
        {"prompt": "Hi", "rejected": "No."},
        {"chosen": [{"role": "user", "content": "A"}, {"role": "assistant", "content": "B"}],
         "rejected": [{"role": "user", "content": "X"}, {"role": "assistant", "content": "Y"}]},
    ])
    run_dir = make_run(eng, tmp_path, tiny_model_dir, bad, stage="dpo")
    events = eng.run_to_end(run_dir)

    failed = events[-1]
    assert failed["type"] == "run_failed" and "run_started" not in eng.kinds(events), failed
    assert failed["cause"] == "the training data has problems"
    assert failed["errors"] == [
        f"{bad}:2 record 1 field chosen: empty text",
        f"{bad}:3 record 2 field rejected: identical to chosen: the pair teaches no preference; "
        "drop it or fix one side",
        f"{bad}:4 record 3 field chosen: missing field",
        f"{bad}:5 record 4 field rejected: the prompt differs between the sides: the turns before the rejected "
        "answer are not those before the chosen one",
    ]


def test_kto_with_only_desirable_answers_is_refused_before_training(eng, tiny_model_dir: Path, tmp_path: Path) -> None:
    data = write_lines(tmp_path / "kto.jsonl", [{"prompt": q, "completion": c, "label": True} for q, c, _ in PAIRS])
    events = eng.run_to_end(make_run(eng, tmp_path, tiny_model_dir, data, stage="kto"))

    failed = events[-1]
    assert failed["type"] == "run_failed" and "run_started" not in eng.kinds(events), failed
    assert failed["errors"] == [f"{data}: every usable record is desirable (4): kto needs undesirable "
                                "(label/kto_tag false) examples too"]


def test_a_stage_given_the_wrong_kind_of_data_names_the_layouts_it_accepts(eng, tiny_model_dir: Path,
                                                                           tiny_data: Path, tmp_path: Path) -> None:
    # tuitune train refuses before a run folder exists ...
    cli = subprocess.run([sys.executable, "-m", "tuitune", "train", "--stage", "dpo", "--model", str(tiny_model_dir),
                          "--data", str(tiny_data), "--run-dir", str(tmp_path / "never")], cwd=eng.repo,
                         env=eng.env(), capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    assert cli.returncode == 2 and not (tmp_path / "never").exists()
    assert cli.stderr.strip() == (
        f"error: data: {tiny_data}:1 record 0: this file holds instruction data (openai), which stage dpo cannot "
        "train: stage dpo trains on preference pairs: alpaca_pairs {instruction, input, chosen, rejected}, "
        "sharegpt_pairs {conversations, chosen: {from, value}, rejected: {from, value}} or trl_pairs {prompt, "
        "chosen, rejected} (strings or message lists). This layout is for stage sft")
    # ... and the engine refuses a run folder that says so, with the same message.
    pairs = trl_pairs(tmp_path / "pairs.jsonl")
    events = eng.run_to_end(make_run(eng, tmp_path, tiny_model_dir, pairs, stage="pt"))
    failed = events[-1]
    assert failed["type"] == "run_failed", failed
    [error] = failed["errors"]
    assert error.startswith(f"{pairs}:1 record 0: this file holds preference pairs (trl_pairs), which stage pt "
                            "cannot train: stage pt trains on raw text: JSON Lines or a datasets folder with a "
                            "'text' field, or a .txt file")


def test_dpo_save_now_stop_and_resume_continue_from_the_checkpoint(eng, tiny_model_dir: Path, tmp_path: Path) -> None:
    run_dir = make_run(eng, tmp_path, tiny_model_dir, trl_pairs(tmp_path / "pairs.jsonl"), stage="dpo",
                           train={**SHORT, "max_steps": 1000})
    eng.launch(run_dir)
    eng.wait_for(run_dir, eng.first("log"), what="the first log event")
    assert request_save(run_dir)  # SIGUSR1: a checkpoint at the next step end, training goes on
    saved = eng.wait_for(run_dir, eng.first("checkpoint"), what="the requested checkpoint")
    assert (run_dir / saved["path"] / "tuitune-complete.json").is_file()
    eng.wait_for(run_dir, lambda events: any(e["type"] == "log" and e["step"] > saved["step"] for e in events),
                 what="training to go on after the checkpoint")

    assert stop_run(run_dir)  # SIGTERM: checkpoint and adapter at the end of the step, then run_stopped
    stopped = eng.wait_for(run_dir, eng.terminal(), what="run_stopped")
    assert stopped["type"] == "run_stopped" and stopped["step"] > saved["step"], stopped
    assert stopped["checkpoint_path"] == f"checkpoints/checkpoint-{stopped['step']}"
    assert (run_dir / "adapter" / "adapter_model.safetensors").is_file()
    eng.wait_for(run_dir, lambda events: not is_alive(run_dir), what="the attempt to end")

    # The resumed attempt trains two more steps from the stop's checkpoint and finishes.
    config = yaml.safe_load((run_dir / "config.yaml").read_text())
    config["train"]["max_steps"] = stopped["step"] + 2
    (run_dir / "config.yaml").write_text(yaml.safe_dump(config))
    before = stopped["seq"]
    events = eng.run_to_end(run_dir, "--resume")
    after = [e for e in events if e["seq"] > before]
    assert eng.kinds(after) == ["run_started", "log", "log", "checkpoint", "run_finished"], after[-1]
    assert after[[e["type"] for e in after].index("run_started")]["resumed_from_step"] == stopped["step"]
    assert [e["step"] for e in after if e["type"] == "log"] == [stopped["step"] + 1, stopped["step"] + 2]
    assert all("rewards/margins" in e["metrics"] for e in after if e["type"] == "log")
