"""Engine throughput against a plain transformers + peft Trainer script, and the demo's effect.

    .venv/bin/python bench/bench_engine.py [--steps 20] [--repeats 2] [--skip-demo]

1. Throughput. The same model (the embedded SmolLM2-135M-Instruct, fp32 on CPU), the same
   tokenised data (builtin:identity through engine.recipes.datasets, cutoff 256), the same LoRA (r 16,
   alpha 32, dropout 0.05, all linear layers), batch 4, the same steps. The engine runs as
   users run it (``python -m engine launch``: supervisor, events, system sampler); the plain
   script is a bare Trainer. Tokens/s = non-padding tokens trained / training-loop seconds
   (model loading and the final save excluded on both sides). Target: engine / plain >= 1.0.
   On a shared machine the load from other processes swings tenfold within minutes, so by
   default each round runs the two side by side (``--mode together``, each with half the
   cores): whatever else happens on the machine falls on both alike. ``--mode alternate``
   runs them one after the other with all cores, as a user would, for a quiet machine.
2. The demo. The answer to "Who are you?" (greedy, chat template) before and after the
   default demo run (``tuitune train`` with no arguments: 3 epochs of builtin:identity).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from engine.protocol import read_events  # noqa: E402

CUTOFF = 256
BATCH = 4
LORA = {"r": 16, "alpha": 32, "dropout": 0.05, "target_modules": "all-linear"}
QUESTION = "Who are you?"

PLAIN_SCRIPT = textwrap.dedent("""
    import json, sys
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer, DataCollatorForSeq2Seq, Trainer, TrainingArguments
    from engine.config import DataSection
    from engine.recipes.datasets import build_datasets
    from engine.models.demo import ensure_demo_model

    steps, cutoff, batch, out_dir = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    path = ensure_demo_model()
    tokenizer = AutoTokenizer.from_pretrained(path)
    bf16 = torch.cuda.is_available() and torch.cuda.is_bf16_supported(including_emulation=False)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.bfloat16 if bf16 else torch.float32)
    model = get_peft_model(model, LoraConfig(task_type="CAUSAL_LM", r=16, lora_alpha=32, lora_dropout=0.05,
                                             target_modules="all-linear"))
    data = build_datasets(DataSection(train=["builtin:identity"], cutoff_len=cutoff), tokenizer, 42).train
    args = TrainingArguments(output_dir=out_dir, max_steps=steps, per_device_train_batch_size=batch,
                             learning_rate=2e-4, lr_scheduler_type="cosine", warmup_steps=0.03, logging_steps=5,
                             save_strategy="no", report_to="none", disable_tqdm=True, seed=42, bf16=bf16,
                             use_cpu=not torch.cuda.is_available(), include_num_input_tokens_seen="non_padding")
    trainer = Trainer(model=model, args=args, train_dataset=data,
                      data_collator=DataCollatorForSeq2Seq(tokenizer, label_pad_token_id=-100))
    out = trainer.train()
    print("RESULT " + json.dumps({"tokens": trainer.state.num_input_tokens_seen,
                                  "seconds": out.metrics["train_runtime"]}))
""")


def env(threads: int | None = None) -> dict[str, str]:
    """Our environment with the repository importable and the oneDNN cap the supervisor sets."""
    variables = dict(os.environ)
    if threads:
        variables["OMP_NUM_THREADS"] = str(threads)
    variables["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), variables.get("PYTHONPATH")) if p)
    variables.setdefault("ONEDNN_MAX_CPU_ISA", "AVX512_CORE_BF16")
    return variables


def start_engine(work: Path, name: str, config: dict, threads: int | None = None) -> tuple[Path, subprocess.Popen]:
    """Start the engine on ``config`` through the supervisor, as the app does."""
    run_dir = work / name
    run_dir.mkdir()
    (run_dir / "config.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    with open(run_dir / "engine.log", "ab") as log:
        proc = subprocess.Popen([sys.executable, "-m", "engine", "launch", "--run-dir", str(run_dir)], cwd=REPO,
                                env=env(threads), stdin=subprocess.DEVNULL, stdout=log, stderr=log)
    return run_dir, proc


def run_engine(work: Path, name: str, config: dict) -> list[dict]:
    """Run the engine on ``config`` to its end and return the events."""
    run_dir, proc = start_engine(work, name, config)
    proc.wait()
    return finished_events(run_dir)


def finished_events(run_dir: Path) -> list[dict]:
    """The events of a run that must have finished."""
    events = read_events(run_dir)
    if not events or events[-1]["type"] != "run_finished":
        sys.exit(f"engine run failed: {events[-1] if events else 'no events'}; see {run_dir / 'engine.log'}")
    return events


def engine_config(steps: int) -> dict:
    """The throughput run's config: the plain script's settings."""
    return {"adapter": LORA, "data": {"cutoff_len": CUTOFF},
            "train": {"max_steps": steps, "batch_size": BATCH, "logging_steps": 5, "save_steps": 10_000}}


def engine_rate(events: list[dict]) -> float:
    """Tokens/s of an engine run: tokens from each log window (rate x window), time to the last log."""
    logs = [e for e in events if e["type"] == "log"]
    tokens, previous = 0.0, 0.0
    for event in logs:
        tokens += event["tokens_per_s"] * (event["elapsed_s"] - previous)
        previous = event["elapsed_s"]
    return tokens / logs[-1]["elapsed_s"]


def start_plain(work: Path, steps: int, threads: int | None = None) -> subprocess.Popen:
    """Start the plain Trainer script."""
    return subprocess.Popen([sys.executable, "-c", PLAIN_SCRIPT, str(steps), str(CUTOFF), str(BATCH),
                             str(work / "plain")], cwd=REPO, env=env(threads), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def plain_rate(proc: subprocess.Popen) -> float:
    """Tokens/s of a finished plain script run."""
    stdout, stderr = proc.communicate()
    line = next((row for row in stdout.splitlines() if row.startswith("RESULT ")), None)
    if line is None:
        sys.exit(f"plain script failed:\n{stderr[-3000:]}")
    result = json.loads(line[len("RESULT "):])
    return result["tokens"] / result["seconds"]


def answer(adapter: Path | None) -> str:
    """The demo model's greedy answer to QUESTION, with ``adapter`` applied if given."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from engine.models.demo import ensure_demo_model

    path = ensure_demo_model()
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
    if adapter is not None:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, adapter)
    inputs = tokenizer.apply_chat_template([{"role": "user", "content": QUESTION}], add_generation_prompt=True,
                                           return_tensors="pt", return_dict=True)
    with torch.no_grad():
        output = model.generate(**inputs, max_new_tokens=48, do_sample=False)
    return tokenizer.decode(output[0, inputs["input_ids"].shape[1]:], skip_special_tokens=True).strip()


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def main() -> None:
    """Print both figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--mode", choices=["together", "alternate"], default="together")
    parser.add_argument("--skip-demo", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-engine-") as tmp:
        work = Path(tmp)
        engine, plain = [], []
        threads = max(1, (os.cpu_count() or 2) // 2) if args.mode == "together" else None
        for i in range(args.repeats):
            if args.mode == "together":
                # Whoever starts first trains alone while the other loads: take turns.
                if i % 2:
                    run_dir, supervisor = start_engine(work, f"engine-{i}", engine_config(args.steps), threads)
                    proc = start_plain(work, args.steps, threads)
                else:
                    proc = start_plain(work, args.steps, threads)
                    run_dir, supervisor = start_engine(work, f"engine-{i}", engine_config(args.steps), threads)
                supervisor.wait()
                plain.append(plain_rate(proc))
                engine.append(engine_rate(finished_events(run_dir)))
            else:
                plain.append(plain_rate(start_plain(work, args.steps)))
                engine.append(engine_rate(run_engine(work, f"engine-{i}", engine_config(args.steps))))
            print(f"round {i + 1}: plain {plain[-1]:.1f} tok/s, engine {engine[-1]:.1f} tok/s, "
                  f"ratio {engine[-1] / plain[-1]:.2f}x", flush=True)
        e, p = statistics.median(engine), statistics.median(plain)
        how = f"side by side, {threads} threads each" if threads else "one after the other"
        print(f"throughput ({args.steps} steps, batch {BATCH}, cutoff {CUTOFF}, LoRA r16 all-linear, "
              f"{'CUDA' if _cuda() else 'fp32 CPU'}, {how}, median of {args.repeats}):")
        print(f"  plain Trainer script: {p:.1f} tokens/s")
        print(f"  engine:               {e:.1f} tokens/s")
        ratios = statistics.median(a / b for a, b in zip(engine, plain))
        print(f"  ratio engine/plain:   {e / p:.2f}x of the medians, {ratios:.2f}x median per round (target >= 1.0x)")
        if args.skip_demo:
            return
        print(f"before: {QUESTION!r} -> {answer(None)!r}", flush=True)
        start = time.monotonic()
        events = run_engine(work, "demo", {})
        finished = events[-1]
        print(f"demo run (defaults: builtin:identity, 3 epochs): {finished['step']} steps in "
              f"{time.monotonic() - start:.0f} s, train loss {finished['train_loss']:.3f}")
        print(f"after:  {QUESTION!r} -> {answer(work / 'demo' / 'adapter')!r}")


if __name__ == "__main__":
    main()
