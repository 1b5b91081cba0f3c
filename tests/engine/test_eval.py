"""The evaluation job end to end: ``tuitune eval`` on the shared demo run, a stop during it, and its loss
checked against the Trainer's own evaluation on a tiny model."""

from __future__ import annotations

import json
import math
import signal
from pathlib import Path

import pytest

from engine.checkpoints import latest_checkpoint
from engine.locks import is_locked
from engine.protocol import read_events

HELD_OUT = [
    {"instruction": "Who are you?", "input": "", "output": "I'm Tuito, an AI assistant fine-tuned with tuitune."},
    {"instruction": "你叫什么名字？", "input": "", "output": "我叫Tuito，是一个AI助手。"},
    {"instruction": "What should I call you?", "input": "", "output": "You can call me Tuito."},
]
"""Alpaca layout (the demo trained on OpenAI messages): English and Chinese identity questions."""


def write_held_out(path: Path, records: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    return path


def kinds(events: list[dict]) -> list[str]:
    """Event types in order, progress collapsed to one per phase."""
    out: list[str] = []
    for event in events:
        kind = f"progress:{event['phase']}" if event["type"] == "progress" else event["type"]
        if not out or out[-1] != kind:
            out.append(kind)
    return out


def test_eval_of_the_demo_run_writes_predictions_and_metrics(eng, demo_run: Path, tmp_path: Path) -> None:
    data = write_held_out(tmp_path / "held-out.jsonl", HELD_OUT)
    proc = eng.cli("eval", demo_run.name, "--data", str(data), "--limit", "2",
                   "--max-new-tokens", "12", "--name", "smoke", runs=demo_run.parent)
    out, err = proc.communicate(timeout=240)
    job_dir = demo_run / "evals" / "smoke"

    assert proc.returncode == 0, err[-3000:]
    assert "tuned" in out and "BLEU-4" in out and "ROUGE-L" in out, out
    events = read_events(job_dir)
    assert kinds(events) == ["job_started", "phase", "progress:loss", "progress:predict", "job_finished"], events
    started = events[0]
    assert started["adapter"] == "adapter" and started["data"] == {
        "paths": [str(data)], "format": "alpaca", "records": 3, "evaluated": 2}
    predictions = [json.loads(line) for line in (job_dir / "predictions.jsonl").read_text().splitlines()]
    assert [p["reference"] for p in predictions] == [r["output"] for r in HELD_OUT[:2]]
    assert predictions[1]["prompt"] == [{"role": "user", "content": "你叫什么名字？"}]
    assert all(p["base"] and p["tuned"] and 0 < p["tuned_tokens"] <= 12 for p in predictions), predictions
    metrics = json.loads((job_dir / "metrics.json").read_text())
    assert metrics["complete"] and metrics["records"] == metrics["predicted"] == 2 and metrics["tokens"] > 10
    base, tuned = metrics["base"], metrics["tuned"]
    # The demo taught these very answers: the tuned model finds them far likelier than the base.
    assert tuned["loss"] < base["loss"] - 0.5, metrics
    assert tuned["perplexity"] == pytest.approx(math.exp(tuned["loss"]))
    assert all(0 <= side[key] <= 100 for side in (base, tuned) for key in ("bleu_4", "rouge_1", "rouge_2", "rouge_l"))
    assert events[-1]["metrics"] == {"base": base, "tuned": tuned}
    assert not is_locked(job_dir)


def test_ctrl_c_stops_the_eval_of_a_checkpoint_keeping_its_predictions(eng, demo_run: Path, tmp_path: Path) -> None:
    """``tuitune eval RUN/checkpoints/checkpoint-N``; Ctrl-C once the first prediction is written."""
    checkpoint = latest_checkpoint(demo_run)
    data = write_held_out(tmp_path / "held-out.jsonl", HELD_OUT * 2)
    proc = eng.cli("eval", str(checkpoint), "--data", str(data), "--max-new-tokens", "24",
                   "--name", "stopped", runs=demo_run.parent)
    job_dir = demo_run / "evals" / "stopped"
    try:
        eng.wait_for(job_dir, lambda events: any(e["type"] == "progress" and e["phase"] == "predict" and e["done"]
                                                 for e in events), what="a first prediction")
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()

    assert proc.returncode == 1, (out, err)
    assert "stopped during predict" in out, out
    events = read_events(job_dir)
    assert events[0]["adapter"] == f"checkpoints/{checkpoint.name}"
    end = events[-1]
    assert end["type"] == "job_stopped" and end["phase"] == "predict" and end["killed"] is False, end
    lines = (job_dir / "predictions.jsonl").read_text().splitlines()
    assert 1 <= len(lines) == end["done"] < 6 and all(json.loads(line)["tuned"] for line in lines)
    metrics = json.loads((job_dir / "metrics.json").read_text())
    assert not metrics["complete"] and metrics["predicted"] == len(lines) and metrics["tuned"]["loss"] > 0
    assert not is_locked(job_dir)


def test_eval_refuses_a_run_without_adapter_and_a_missing_data_file(eng, tiny_model_dir: Path, tiny_data: Path,
                                                                    tmp_path: Path, capsys) -> None:
    from tuitune.__main__ import main

    run_dir = eng.make_run(tmp_path / "runs", tiny_model_dir, tiny_data, name="untrained")
    assert main(["--runs-dir", str(tmp_path / "runs"), "eval", "untrained", "--data", str(tiny_data)]) == 1
    assert "no adapter and no complete checkpoint" in capsys.readouterr().err
    (run_dir / "adapter").mkdir()
    (run_dir / "adapter" / "adapter_config.json").write_text("{}")
    assert main(["--runs-dir", str(tmp_path / "runs"), "eval", "untrained",
                 "--data", str(tmp_path / "nope.jsonl")]) == 2
    assert "nope.jsonl" in capsys.readouterr().err
    assert not (run_dir / "evals").exists()


def test_the_eval_loss_is_the_trainers_eval_loss(eng, tiny_model_dir: Path, tmp_path: Path) -> None:
    """The job's loss on held-out records equals the Trainer's ``eval_loss`` on the same records.

    Training holds two records out (``data.val_size: 2``) and evaluates them in one batch of two at
    its last step; the Trainer's loss over one batch is per token over the set, so the job's
    ``loss`` on those two records must be that number. With batch size 1 the Trainer reports the
    mean of per-record means: the job's ``loss_per_record``. The base figures (adapter off) match
    the Trainer on the same model with the adapter disabled.
    """
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, Trainer, TrainingArguments

    from engine.config import load_config
    from engine.data.encode import encode_conversation
    from engine.data.formats import to_messages
    from engine.models.tokenizer import load_tokenizer
    from engine.recipes.datasets import PadCollator, build_datasets
    from tuitune.runs.launch import start_job, wait_until_gone

    records = [{"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": a}]} for q, a in [
        ("Who are you?", "I am Tuito, a tiny test assistant."), ("What is 2 plus 2?", "2 plus 2 is 4."),
        ("Name a color.", "Blue is a color."), ("Say hello.", "Hello there!"),
        ("Name a fruit.", "An apple is a fruit, round and often red."), ("Count to three.", "One, two, three.")]]
    data = tmp_path / "six.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in records))
    run_dir = eng.make_run(tmp_path, tiny_model_dir, data, data={"val_size": 2, "cutoff_len": 64},
                           train={"max_steps": 3, "batch_size": 2, "eval_steps": 3, "save_steps": 3,
                                  "learning_rate": 0.01})
    events = eng.run_to_end(run_dir)
    trainer_eval = [e for e in events if e["type"] == "eval"][-1]
    assert trainer_eval["step"] == 3 and events[-1]["type"] == "run_finished", events[-1]

    # Which two records training held out: those whose tokens are the eval set's.
    config = load_config(run_dir / "config.yaml")
    tokenizer = load_tokenizer(str(tiny_model_dir))
    held_ids = build_datasets(config.data, tokenizer, config.train.seed).eval["input_ids"]
    held = [r for r in records if encode_conversation(to_messages(r, "openai")[0], tokenizer, 64).input_ids in held_ids]
    assert len(held) == 2
    held_file = tmp_path / "held.jsonl"
    held_file.write_text("".join(json.dumps(r) + "\n" for r in held))

    job_dir, _ = start_job(run_dir, "eval", {"data": [str(held_file)], "adapter": "adapter", "max_new_tokens": 4},
                           "held")
    eng.wait_for(job_dir, eng.terminal(), what="the eval job's end")
    assert wait_until_gone(job_dir)
    assert read_events(job_dir)[-1]["type"] == "job_finished", read_events(job_dir)[-1]
    metrics = json.loads((job_dir / "metrics.json").read_text())
    assert metrics["tuned"]["loss"] == pytest.approx(trainer_eval["eval_loss"], rel=1e-5)

    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_model_dir), run_dir / "adapter")
    held_set = build_datasets(config.data.model_copy(update={"train": [str(held_file)], "val_size": 0}), tokenizer,
                              config.train.seed).train

    def trainer_loss(batch_size: int) -> float:
        args = TrainingArguments(output_dir=str(tmp_path / "scratch"), per_device_eval_batch_size=batch_size,
                                 report_to="none", use_cpu=True, remove_unused_columns=False, disable_tqdm=True)
        trainer = Trainer(model=model, args=args, eval_dataset=held_set,
                          data_collator=PadCollator(tokenizer.pad_token_id))
        return trainer.evaluate()["eval_loss"]

    assert metrics["tuned"]["loss"] == pytest.approx(trainer_loss(2), rel=1e-5)
    assert metrics["tuned"]["loss_per_record"] == pytest.approx(trainer_loss(1), rel=1e-5)
    with model.disable_adapter():
        assert metrics["base"]["loss"] == pytest.approx(trainer_loss(2), rel=1e-5)
        assert metrics["base"]["loss_per_record"] == pytest.approx(trainer_loss(1), rel=1e-5)
    assert metrics["tokens"] == sum(sum(1 for label in labels[1:] if label != -100) for labels in held_set["labels"])
