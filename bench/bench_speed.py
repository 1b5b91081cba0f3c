"""tuitune's default training speed and memory against a plain Trainer with and without gradient checkpointing.

    .venv/bin/python bench/bench_speed.py                 # the LoRA case once (about 6 minutes on 2 cores)
    .venv/bin/python bench/bench_speed.py --rounds 3      # medians of 3 rounds
    .venv/bin/python bench/bench_speed.py --qlora         # the QLoRA 4-bit case too (slow on CPU)
    .venv/bin/python bench/bench_speed.py --qlora --no-lora   # the QLoRA 4-bit case alone
    .venv/bin/python bench/bench_speed.py --cutoff 1024 --no-plain --steps 10   # longer records (their lengths x4)
    .venv/bin/python bench/bench_speed.py --bf16 --no-plain   # both in bf16 on a CPU that has it (a separate row)

The setting of issue 14: the embedded SmolLM2-135M-Instruct, LoRA r 16, alpha 32, dropout 0.05 on all
linear layers, cutoff 256, batch 4, learning rate 1e-4 linear without warmup, 30 steps, seed 42, fp32
on CPU (bf16 on a capable GPU), on 300 alpaca-style records this script writes (lengths after the chat
template about 66 to 232 tokens, median 116). Three runs, one after the other with all cores:

* ``reference``: a plain transformers Trainer with gradient checkpointing, padded batches and the
  model's own loss: the computation LLaMA-Factory runs by default (bit-identical losses, same speed,
  measured; /work/shared/FACTS.md). The ratios are taken against it.
* ``plain``: the same Trainer without checkpointing (faster, more memory).
* ``tuitune``: ``tuitune train CONFIG`` (the CLI, its supervisor and trainer: the path users run) on a config
  that sets only the hyperparameters above, so every technique tuitune turns on by default is on
  (padding-free batches, fused LoRA dropout with bit-packed masks, chunked loss, the SwiGLU MLP keeping
  gate and up only, and on CPU the trainer on tcmalloc where the machine has it, else glibc's malloc
  returning freed activations to the system: engine/machine/allocator.py).

Tokens/s counts real (non-padding) tokens over the training loop; memory is the training process's
peak RSS on CPU, the CUDA allocator's peak on GPU. Each round also compares tuitune's per-step losses
with the reference's and exits with status 1 beyond LOSS_TOLERANCE. The last line is
``speedup S memory M``: tuitune ÷ reference tokens/s and peak memory (medians over rounds).

``--bf16`` runs both in bf16 on CPU, as LLaMA-Factory's ``bf16: true`` does (bf16 base weights, float32 LoRA
weights, bf16 autocast; for tuitune ``model.dtype: bfloat16``, ``train.precision: bf16`` and, with QLoRA,
``quant.compute_dtype: bfloat16``): a row of its own, never mixed with the float32 figures. The CPU needs bf16
instructions (AVX512_BF16 or AMX; the bench sets the oneDNN cap the supervisor sets). On a GPU that has bf16
both contenders already run in it.
"""

from __future__ import annotations

import argparse
import json
import os
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

RECORDS = 300
STEPS = 30
CUTOFF = 256
BATCH = 4
LEARNING_RATE = 1e-4
LORA = {"r": 16, "alpha": 32, "dropout": 0.05, "target_modules": "all-linear"}
QLORA = {"mode": "4bit", "quant_type": "nf4", "double_quant": True}
LOSS_TOLERANCE = 0.01
"""Largest per-step loss difference to the reference accepted (float32, CPU). Not zero, because the runs
cannot be bit-identical: padding-free batches change the matmul shapes (float32 sums in another order)
and, above all, the LoRA dropout masks, which are drawn over the padded [batch, width, hidden] tensors in
the reference and over the real tokens only in tuitune: the same distribution, other draws. Step 1 is
exact to rounding (LoRA's B starts at zero, so the masks cannot matter yet); after it the two runs take
slightly different dropout noise. Measured here: 0.0055 at most over the 30 steps (losses about 6 to 7).
``--noise-floor`` measures the reference against itself with only its padding changed (same tokens, same
maths, other masks), the yardstick for this figure. A real error — a token trained twice or not at all, a
record attending to another, a wrong normalisation — moves the loss by far more than 0.01."""
BF16_LOSS_TOLERANCE = 0.01
"""In bf16 (a GPU, or --bf16 on CPU), the largest per-step difference accepted as a share of the reference's
loss: bf16 keeps 8 bits of mantissa (0.4% a rounding), so fp32's absolute bound cannot hold. Measured on CPU with
--bf16 (LoRA, 30 steps, losses about 7): 0.0111, against the 0.072 this allows; bench/gpu_check.sh prints the
figure on a GPU."""
SETTINGS = {"steps": STEPS, "model": "", "threads": 0, "cutoff": CUTOFF, "batch": BATCH, "bf16": False}
"""What the command line (or bench_scale.py) may change: the steps, the model (a local folder; empty: the demo
model), the CPU threads of each run (0: torch's default, all cores), the cutoff, the batch size and bf16 on CPU."""
WORDS = ("the a model data training step loss memory token batch layer adapter rank answer question explain "
         "describe list write summarise compare why how what when which small large fast slow learning rate "
         "gradient weight bias attention sequence record length value number result python code function "
         "example simple clear short long history science river mountain city").split()

REFERENCE_SCRIPT = textwrap.dedent("""
    import json, resource, sys
    import torch
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training
    from transformers import (AutoModelForCausalLM, AutoTokenizer, BitsAndBytesConfig, DataCollatorForSeq2Seq,
                              Trainer, TrainingArguments, set_seed)
    from engine.config import DataSection
    from engine.recipes.datasets import build_datasets
    from engine.models.demo import ensure_demo_model

    (data_path, checkpointing, qlora, out_dir, steps, cutoff, batch, lr, model_path, pad_multiple,
     cpu_bf16) = sys.argv[1:12]
    checkpointing, qlora = checkpointing == "1", qlora == "1"
    set_seed(42)  # as the engine does before loading: same adapter initialisation
    path = model_path or ensure_demo_model()
    tokenizer = AutoTokenizer.from_pretrained(path)
    bf16 = cpu_bf16 == "1" or torch.cuda.is_available() and torch.cuda.is_bf16_supported(including_emulation=False)
    dtype = torch.bfloat16 if bf16 else torch.float32
    kwargs = {"dtype": dtype}
    if qlora:
        kwargs["quantization_config"] = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4",
                                                           bnb_4bit_use_double_quant=True, bnb_4bit_compute_dtype=dtype)
        if torch.cuda.is_available():
            kwargs["device_map"] = {"": 0}
    model = AutoModelForCausalLM.from_pretrained(path, **kwargs)
    model.config.use_cache = False
    if qlora:
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=checkpointing,
                                                gradient_checkpointing_kwargs={"use_reentrant": False})
    model = get_peft_model(model, LoraConfig(task_type="CAUSAL_LM", r=16, lora_alpha=32, lora_dropout=0.05,
                                             target_modules="all-linear"))
    data = build_datasets(DataSection(train=[data_path], cutoff_len=int(cutoff)), tokenizer, 42).train
    args = TrainingArguments(output_dir=out_dir, max_steps=int(steps), per_device_train_batch_size=int(batch),
                             learning_rate=float(lr), lr_scheduler_type="linear", warmup_steps=0, logging_steps=1,
                             save_strategy="no", report_to="none", disable_tqdm=True, seed=42, bf16=bf16,
                             activation_checkpointing=checkpointing,
                             activation_checkpointing_kwargs={"use_reentrant": False} if checkpointing else None,
                             use_cpu=not torch.cuda.is_available(), remove_unused_columns=False,
                             include_num_input_tokens_seen="non_padding")
    trainer = Trainer(model=model, args=args, train_dataset=data,
                      data_collator=DataCollatorForSeq2Seq(tokenizer, label_pad_token_id=-100,
                                                           pad_to_multiple_of=int(pad_multiple) or None))
    out = trainer.train()
    losses = [row["loss"] for row in trainer.state.log_history if "loss" in row]
    peak = (torch.cuda.max_memory_allocated() if torch.cuda.is_available()
            else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
    print("RESULT " + json.dumps({"tokens": trainer.state.num_input_tokens_seen, "losses": losses,
                                  "seconds": out.metrics["train_runtime"], "peak": peak}))
""")


def records(count: int = RECORDS, seed: int = 0, scale: float = 1.0) -> list[dict[str, str]]:
    """Deterministic alpaca-style records whose lengths spread like real instruction data.

    Word counts are log-normal (median about 80 words, clipped to 10-190), split between question
    and answer at random: with SmolLM2's chat template (and its default system prompt) that is about
    66 to 232 tokens a record, median 116. ``scale`` multiplies every word count (for a longer cutoff).
    """
    rng = random.Random(seed)
    out = []
    for _ in range(count):
        total = int(scale * min(190, max(10, int(rng.lognormvariate(4.38, 0.42)))))
        question = max(4, int(total * rng.uniform(0.15, 0.4)))
        answer = max(4, total - question)
        out.append({"instruction": " ".join(rng.choice(WORDS) for _ in range(question)).capitalize() + "?",
                    "input": "",
                    "output": " ".join(rng.choice(WORDS) for _ in range(answer)).capitalize() + "."})
    return out


def env() -> dict[str, str]:
    """Our environment with the repository importable, the oneDNN cap the supervisor sets, and --threads."""
    variables = dict(os.environ)
    if SETTINGS["threads"]:
        variables["OMP_NUM_THREADS"] = str(SETTINGS["threads"])
    variables["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), variables.get("PYTHONPATH")) if p)
    variables.setdefault("ONEDNN_MAX_CPU_ISA", "AVX512_CORE_BF16")
    return variables


def run_reference(work: Path, data: Path, name: str, checkpointing: bool, qlora: bool, pad_multiple: int = 0) -> dict:
    """Run the plain Trainer script; its tokens/s, peak memory and per-step losses.

    ``pad_multiple`` pads batches to a multiple of it: the same tokens and maths, other dropout masks.
    """
    args = [str(data), "1" if checkpointing else "0", "1" if qlora else "0", str(work / name), str(SETTINGS["steps"]),
            str(SETTINGS["cutoff"]), str(SETTINGS["batch"]), str(LEARNING_RATE), SETTINGS["model"], str(pad_multiple),
            "1" if SETTINGS["bf16"] else "0"]
    done = subprocess.run([sys.executable, "-c", REFERENCE_SCRIPT, *args], cwd=REPO, env=env(),
                          capture_output=True, text=True, stdin=subprocess.DEVNULL)
    line = next((row for row in done.stdout.splitlines() if row.startswith("RESULT ")), None)
    if line is None:
        sys.exit(f"{name} failed:\n{done.stderr[-3000:]}")
    result = json.loads(line[len("RESULT "):])
    return {"rate": result["tokens"] / result["seconds"], "peak": result["peak"], "losses": result["losses"]}


def engine_config(data: Path, qlora: bool) -> dict:
    """The bench's hyperparameters and nothing else: every other setting is tuitune's default."""
    config = {"adapter": LORA,
              "data": {"train": [str(data)], "cutoff_len": SETTINGS["cutoff"]},
              "train": {"max_steps": SETTINGS["steps"], "batch_size": SETTINGS["batch"], "grad_accum": 1,
                        "learning_rate": LEARNING_RATE, "scheduler": "linear", "warmup_ratio": 0.0, "logging_steps": 1,
                        "save_steps": 10_000}}
    if qlora:
        config["quant"] = dict(QLORA)
    if SETTINGS["model"]:
        config["model"] = {"name_or_path": SETTINGS["model"]}
    if SETTINGS["bf16"]:
        config.setdefault("model", {})["dtype"] = "bfloat16"
        config["train"]["precision"] = "bf16"
        if qlora:
            config["quant"]["compute_dtype"] = "bfloat16"
    return config


def run_tuitune(work: Path, data: Path, name: str, qlora: bool) -> dict:
    """Run ``tuitune train CONFIG`` as users run it (the CLI following its detached supervisor and trainer, all
    on the same cores); its tokens/s, peak memory and losses from the run's events."""
    import yaml

    run_dir, config = work / name, work / f"{name}.yaml"
    config.write_text(yaml.safe_dump(engine_config(data, qlora)), encoding="utf-8")
    with open(work / f"{name}.out", "ab") as out:  # --force: a memory estimate never stops a bench half-way
        subprocess.run([sys.executable, "-m", "tuitune", "train", str(config), "--run-dir", str(run_dir), "--force"],
                       cwd=REPO, env=env(), stdin=subprocess.DEVNULL, stdout=out, stderr=out)
    events = read_events(run_dir) if (run_dir / "events.jsonl").is_file() else []
    if not events or events[-1]["type"] != "run_finished":
        said = (work / f"{name}.out").read_text(encoding="utf-8", errors="replace")[-2000:]
        sys.exit(f"tuitune run failed: {events[-1] if events else 'no events'}\n{said}")
    logs = [e for e in events if e["type"] == "log"]
    tokens, previous = 0.0, 0.0
    for event in logs:  # tokens of each log window (rate x window) over the time to the last log
        tokens += event["tokens_per_s"] * (event["elapsed_s"] - previous)
        previous = event["elapsed_s"]
    return {"rate": tokens / logs[-1]["elapsed_s"], "peak": events[-1]["peak_memory_bytes"],
            "losses": [e["loss"] for e in logs]}


def one_round(work: Path, data: Path, index: int, qlora: bool, plain: bool) -> dict[str, dict]:
    """The reference, tuitune and (optionally) the plain Trainer, in turns (the order flips each round)."""
    tag = "qlora" if qlora else "lora"
    runs = {
        "reference": lambda: run_reference(work, data, f"reference-{tag}-{index}", True, qlora),
        "tuitune": lambda: run_tuitune(work, data, f"tuitune-{tag}-{index}", qlora),
    }
    if plain:
        runs["plain"] = lambda: run_reference(work, data, f"plain-{tag}-{index}", False, qlora)
    order = list(runs) if index % 2 == 0 else list(reversed(runs))
    return {name: runs[name]() for name in order}


def loss_tolerance(reference_losses: list[float]) -> float:
    """LOSS_TOLERANCE in float32; in bf16 (a capable GPU, or --bf16) BF16_LOSS_TOLERANCE of the largest reference
    loss."""
    import torch

    if SETTINGS["bf16"] or torch.cuda.is_available() and torch.cuda.is_bf16_supported(including_emulation=False):
        return max(LOSS_TOLERANCE, BF16_LOSS_TOLERANCE * max(reference_losses))
    return LOSS_TOLERANCE


def loss_gap(a: list[float], b: list[float]) -> float:
    """Largest per-step difference of two loss curves of the same length."""
    if len(a) != len(b) or not a:
        sys.exit(f"loss curves differ in length: {len(a)} and {len(b)} steps")
    return max(abs(x - y) for x, y in zip(a, b))


def bench_case(work: Path, data: Path, rounds: int, qlora: bool, plain: bool) -> tuple[float, float]:
    """Run one case for ``rounds``; print each round and the medians; return (speedup, memory) medians."""
    name = ("QLoRA 4-bit" if qlora else "LoRA") + (" bf16" if SETTINGS["bf16"] else "")
    speedups, memories, vs_plain, gaps = [], [], [], []
    for i in range(rounds):
        got = one_round(work, data, i, qlora, plain)
        ref, ours = got["reference"], got["tuitune"]
        speedups.append(ours["rate"] / ref["rate"])
        memories.append(ours["peak"] / ref["peak"])
        gaps.append(loss_gap(ref["losses"], ours["losses"]))
        line = (f"{name} round {i + 1}: reference {ref['rate']:.1f} tok/s {ref['peak'] / 2**30:.2f} GiB, "
                f"tuitune {ours['rate']:.1f} tok/s {ours['peak'] / 2**30:.2f} GiB")
        if plain:
            vs_plain.append(ours["rate"] / got["plain"]["rate"])
            line += f", plain {got['plain']['rate']:.1f} tok/s {got['plain']['peak'] / 2**30:.2f} GiB"
        print(line + f"; largest per-step loss difference {gaps[-1]:.4f}", flush=True)
    summary = (f"{name}: tuitune/reference {statistics.median(speedups):.2f}x tokens/s (target >= 2.0), "
               f"{statistics.median(memories):.2f}x peak memory (target <= 1.0)")
    if vs_plain:
        summary += f", tuitune/plain {statistics.median(vs_plain):.2f}x tokens/s (target >= 1.0)"
    tolerance = loss_tolerance(ref["losses"])
    print(summary + f"; largest loss difference {max(gaps):.4f} (tolerance {tolerance:.4f})", flush=True)
    if max(gaps) > tolerance:
        print(f"FAIL: tuitune's losses differ from the reference's by {max(gaps):.4f} > {tolerance:.4f}",
              file=sys.stderr, flush=True)
        sys.exit(1)
    return statistics.median(speedups), statistics.median(memories)


def noise_floor(work: Path, data: Path) -> None:
    """How far the reference's losses move when only its padding (hence its dropout masks) changes."""
    one = run_reference(work, data, "reference-pad1", True, False)
    other = run_reference(work, data, "reference-pad64", True, False, pad_multiple=64)
    print(f"reference padded to 1 vs to 64 tokens: largest per-step loss difference "
          f"{loss_gap(one['losses'], other['losses']):.4f}")


def main() -> None:
    """Run the LoRA case (and the QLoRA one with --qlora) and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=1, help="repeat each case and report medians")
    parser.add_argument("--qlora", action="store_true", help="add the QLoRA 4-bit case")
    parser.add_argument("--no-plain", action="store_true", help="skip the plain Trainer without checkpointing")
    parser.add_argument("--no-lora", action="store_true", help="with --qlora: skip the LoRA case")
    parser.add_argument("--steps", type=int, default=STEPS, help="optimizer steps per run")
    parser.add_argument("--threads", type=int, default=0,
                        help="OMP_NUM_THREADS of each run; 1 keeps the ratios fair when other processes share the "
                             "cores (OpenMP threads spinning against each other slow a run 10-20x)")
    parser.add_argument("--noise-floor", action="store_true",
                        help="only run the reference twice, padded to 1 and to 64 tokens, and print their loss gap")
    parser.add_argument("--model", default="", help="a local model folder instead of the demo model (GPU check)")
    parser.add_argument("--cutoff", type=int, default=CUTOFF,
                        help="cutoff_len of both; the records' lengths are scaled by cutoff/256")
    parser.add_argument("--bf16", action="store_true",
                        help="both in bf16 on CPU (bf16 weights, bf16 autocast): needs a CPU with bf16 instructions")
    args = parser.parse_args()
    SETTINGS.update(steps=args.steps, model=str(Path(args.model).resolve()) if args.model else "",
                    threads=args.threads, cutoff=args.cutoff, bf16=args.bf16)
    with tempfile.TemporaryDirectory(prefix="bench-speed-") as tmp:
        work = Path(tmp)
        data = work / "alpaca.jsonl"
        rows = records(scale=args.cutoff / CUTOFF)
        data.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
        if args.noise_floor:
            noise_floor(work, data)
            return
        results = [] if args.no_lora and args.qlora else [bench_case(work, data, args.rounds, False, not args.no_plain)]
        if args.qlora:
            results.append(bench_case(work, data, args.rounds, True, not args.no_plain))
    speedup, memory = results[0]  # the LoRA case (the QLoRA one with --no-lora): the headline figure
    print(f"speedup {speedup:.2f} memory {memory:.2f}")


if __name__ == "__main__":
    main()
