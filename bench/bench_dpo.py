"""tuitune's DPO against a plain TRL ``DPOTrainer`` script on the same data: tokens/s and peak memory.

    .venv/bin/python bench/bench_dpo.py               # one round (about 5 minutes on 2 idle cores)
    .venv/bin/python bench/bench_dpo.py --rounds 3    # medians of 3 rounds

The setting: the embedded SmolLM2-135M-Instruct, LoRA r 16, alpha 32 on all linear layers, beta 0.1,
sigmoid loss, cutoff 128, batch 2 pairs, learning rate 5e-6 constant, STEPS steps, seed 42, fp32 on CPU
(bf16 on a capable GPU), on PAIRS generated preference pairs (English and Chinese, chat prompts). Two
runs, one after the other:

* ``trl``: a plain script as TRL's documentation writes it: ``DPOTrainer(model, args=DPOConfig(...),
  train_dataset=conversational pairs, processing_class=tokenizer, peft_config=LoraConfig(...))``, with
  TRL's own defaults (gradient checkpointing on; the reference is the base with the adapter off, since
  TRL makes the adapter itself), bf16 only where the hardware does it.
* ``tuitune``: ``python -m engine launch`` on a ``stage: dpo`` config with the same hyperparameters.

Tokens/s is TRL's own ``num_tokens`` count (non-padding tokens of both sides) over steps 2 to STEPS
divided by their wall time (step 1 warms up); memory is the training process's peak RSS on CPU, the
CUDA allocator's peak on GPU. The last line is ``speedup S memory M``: tuitune ÷ trl (medians); the
target is a speedup of at least 1.0.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from engine.protocol import read_events  # noqa: E402

PAIRS = 64
STEPS = 8
CUTOFF = 128
BATCH = 2
LEARNING_RATE = 5e-6
BETA = 0.1

PLAIN_TRL = textwrap.dedent('''
    import json, resource, sys, time
    import torch
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
    from trl import DPOConfig, DPOTrainer

    model_dir, data, out, steps, cutoff, batch, lr, beta = sys.argv[1:9]
    rows = [json.loads(line) for line in open(data, encoding="utf-8")]
    dataset = Dataset.from_list([{"prompt": [{"role": "user", "content": r["prompt"]}],
                                  "chosen": [{"role": "assistant", "content": r["chosen"]}],
                                  "rejected": [{"role": "assistant", "content": r["rejected"]}]} for r in rows])
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    bf16 = torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    marks = []

    class Clock(TrainerCallback):
        def on_log(self, args, state, control, logs=None, **kw):
            if logs and "num_tokens" in logs:
                marks.append((time.time(), logs["num_tokens"]))

    args = DPOConfig(output_dir=out, max_steps=int(steps), per_device_train_batch_size=int(batch),
                     learning_rate=float(lr), lr_scheduler_type="constant", beta=float(beta), max_length=int(cutoff),
                     logging_steps=1, save_strategy="no", report_to="none", seed=42, bf16=bf16,
                     use_cpu=not torch.cuda.is_available(), disable_tqdm=True)
    trainer = DPOTrainer(model, args=args, train_dataset=dataset, processing_class=tokenizer,
                         peft_config=LoraConfig(r=16, lora_alpha=32, lora_dropout=0.05, target_modules="all-linear",
                                                task_type="CAUSAL_LM"), callbacks=[Clock()])
    trainer.train()
    peak = torch.cuda.max_memory_allocated() if torch.cuda.is_available() else \\
        resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    (t1, n1), (tk, nk) = marks[0], marks[-1]
    print(json.dumps({"tokens_per_s": (nk - n1) / (tk - t1), "peak": peak}))
''')


def write_pairs(path: Path, count: int, seed: int = 0) -> Path:
    """``count`` prompt/chosen/rejected records, half English, half Chinese, answers of varied length."""
    rng = random.Random(seed)
    topics = ["rivers", "mountains", "bread", "music", "trains", "gardens", "rain", "libraries"]
    zh = ["河流", "高山", "面包", "音乐", "火车", "花园", "雨", "图书馆"]
    rows = []
    for i in range(count):
        k = rng.randrange(len(topics))
        words = rng.randint(8, 40)
        if i % 2:
            rows.append({"prompt": f"请简单介绍一下{zh[k]}。",
                         "chosen": f"{zh[k]}很有意思。" * (words // 6 + 1), "rejected": "不知道。"})
        else:
            rows.append({"prompt": f"Tell me something about {topics[k]}.",
                         "chosen": " ".join([f"{topics[k].capitalize()} are worth knowing about."] * (words // 6 + 1)),
                         "rejected": "I don't know."})
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


def run_trl(model_dir: str, data: Path, work: Path) -> dict[str, float]:
    script = work / "plain_trl.py"
    script.write_text(PLAIN_TRL)
    done = subprocess.run([sys.executable, str(script), model_dir, str(data), str(work / "trl-out"), str(STEPS),
                           str(CUTOFF), str(BATCH), str(LEARNING_RATE), str(BETA)],
                          capture_output=True, text=True, cwd=work)
    if done.returncode:
        raise SystemExit(f"plain TRL failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def run_tuitune(model_dir: str, data: Path, work: Path, n: int) -> dict[str, float]:
    import yaml

    run_dir = work / f"tuitune-{n}"
    run_dir.mkdir()
    config = {"stage": "dpo", "model": {"name_or_path": model_dir},
              "adapter": {"r": 16, "alpha": 32, "dropout": 0.05, "target_modules": "all-linear"},
              "data": {"train": [str(data)], "cutoff_len": CUTOFF},
              "preference": {"beta": BETA, "loss_type": "sigmoid"},
              "train": {"max_steps": STEPS, "batch_size": BATCH, "learning_rate": LEARNING_RATE,
                        "scheduler": "constant", "warmup_ratio": 0.0, "logging_steps": 1, "save_steps": 10_000,
                        "seed": 42}}
    (run_dir / "config.yaml").write_text(yaml.safe_dump(config))
    with open(run_dir / "engine.log", "ab") as log:
        subprocess.run([sys.executable, "-m", "engine", "launch", "--run-dir", str(run_dir)], cwd=REPO,
                       stdout=log, stderr=log, stdin=subprocess.DEVNULL, check=False)
    events = read_events(run_dir)
    end = events[-1]
    if end["type"] != "run_finished":
        raise SystemExit(f"tuitune failed: {end}")
    logs = [e for e in events if e["type"] == "log"]
    first, last = logs[0], logs[-1]
    tokens = last["metrics"]["num_tokens"] - first["metrics"]["num_tokens"]
    return {"tokens_per_s": tokens / (last["t"] - first["t"]), "peak": end["peak_memory_bytes"]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=1)
    args = parser.parse_args()
    from engine.models.demo import ensure_demo_model

    model_dir = str(ensure_demo_model())
    results: dict[str, list[dict[str, float]]] = {"trl": [], "tuitune": []}
    with tempfile.TemporaryDirectory(prefix="bench-dpo-") as tmp:
        work = Path(tmp)
        data = write_pairs(work / "pairs.jsonl", PAIRS)
        for n in range(args.rounds):
            results["trl"].append(run_trl(model_dir, data, work))
            results["tuitune"].append(run_tuitune(model_dir, data, work, n))
            for name in results:
                r = results[name][-1]
                print(f"round {n + 1} {name:8} {r['tokens_per_s']:8.1f} tokens/s  peak {r['peak'] / 2**20:7.0f} MiB")
    med = {name: {key: statistics.median(r[key] for r in rows) for key in ("tokens_per_s", "peak")}
           for name, rows in results.items()}
    speedup = med["tuitune"]["tokens_per_s"] / med["trl"]["tokens_per_s"]
    memory = med["tuitune"]["peak"] / med["trl"]["peak"]
    print(f"speedup {speedup:.2f} memory {memory:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
