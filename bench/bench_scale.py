"""How tokens/s and peak memory grow with sequence length: the reference against tuitune's defaults.

    .venv/bin/python bench/bench_scale.py                                   # every case (hours on 2 CPU cores)
    .venv/bin/python bench/bench_scale.py --cutoffs 256,1024 --methods lora --steps 8
    .venv/bin/python bench/bench_scale.py --models qwen2.5-0.5b --cutoffs 256 --methods lora,qlora
    .venv/bin/python bench/bench_scale.py --from-json bench/scale/scale.json   # redraw the table and image
    .venv/bin/python bench/bench_scale.py --cutoffs 2048 --steps 4 --merge      # add cases to the saved table

Cases are every combination of ``--models`` (``smollm2``: the embedded SmolLM2-135M-Instruct; ``qwen2.5-0.5b``,
``qwen2.5-1.5b``: those architectures built from their published config values with random weights and the
demo model's tokenizer, no download: speed and memory do not depend on the weights' values, and their
head-to-body ratio is not SmolLM2's), ``--methods`` (``lora``, ``qlora``: 4-bit NF4) and ``--cutoffs``. Each
case runs bench_speed.py's two contenders in turns, the order flipping each round:

* ``reference``: a plain transformers Trainer with gradient checkpointing (LLaMA-Factory's default
  computation; /work/shared/FACTS.md);
* ``tuitune``: ``tuitune train CONFIG``, the path users run (the CLI following its detached supervisor and
  trainer), on a config that sets only the bench's hyperparameters, so every default technique is on.

The data are alpaca-style records long enough that every one is cut at the cutoff: the batches are full
(``batch x cutoff`` real tokens), which is where padding-free batches gain nothing and the cost of length
shows alone. Hyperparameters as bench_speed.py (LoRA r 16 on all linear layers, batch 4, lr 1e-4) with
``--steps`` steps (default 8; the first step is in the rate, as a user's run pays it).

Writes ``OUT/scale.json`` (every round), ``OUT/scale.md`` (the table: medians per case, with the steps each ran) and
``OUT/scale.png`` (tokens/s and peak memory against cutoff, reference and tuitune, one colour per model and method),
and prints the table. With ``--merge`` the rows already in ``OUT/scale.json`` stay, except those of the cases run
again: a table too long for one sitting is built over several calls. Losses are checked against the reference's
as bench_speed.py checks them.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import textwrap
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_speed

CUTOFFS = (256, 512, 1024, 2048)
METHODS = ("lora", "qlora")
QWEN_CONFIGS = {
    "qwen2.5-0.5b": {"hidden_size": 896, "intermediate_size": 4864, "num_hidden_layers": 24,
                     "num_attention_heads": 14, "num_key_value_heads": 2, "tie_word_embeddings": True},
    "qwen2.5-1.5b": {"hidden_size": 1536, "intermediate_size": 8960, "num_hidden_layers": 28,
                     "num_attention_heads": 12, "num_key_value_heads": 2, "tie_word_embeddings": True},
}
"""The values of Qwen2.5-0.5B's and -1.5B's config.json (Hugging Face, Qwen/Qwen2.5-*) that set the shapes; the
rest is QWEN_COMMON. Written here so the bench needs no download."""
QWEN_COMMON = {"model_type": "qwen2", "vocab_size": 151936, "max_position_embeddings": 32768, "rope_theta": 1e6,
               "rms_norm_eps": 1e-6, "hidden_act": "silu", "attention_dropout": 0.0, "use_sliding_window": False,
               "bos_token_id": 151643, "eos_token_id": 151645}
MODELS = ("smollm2", *QWEN_CONFIGS)

BUILD_SCRIPT = textwrap.dedent("""
    import json, sys
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer
    from engine.models.demo import ensure_demo_model

    out, values = sys.argv[1], json.loads(sys.argv[2])
    torch.manual_seed(0)
    config = AutoConfig.for_model(**values)
    config.bos_token_id = config.eos_token_id = None  # the demo tokenizer's own ids hold instead
    dtype = torch.bfloat16 if torch.cuda.is_available() else torch.float32  # as the runs load it: half the disk
    model = AutoModelForCausalLM.from_config(config, dtype=dtype)
    tokenizer = AutoTokenizer.from_pretrained(ensure_demo_model())
    model.config.bos_token_id, model.config.eos_token_id = tokenizer.bos_token_id, tokenizer.eos_token_id
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
""")


def build_random_model(name: str, folder: Path) -> Path:
    """Write ``name``'s architecture with random weights and the demo model's tokenizer into ``folder``.

    The tokenizer's 49,152 ids fit in Qwen's 151,936-row embedding: the shapes (and so the cost) are Qwen's.
    """
    if (folder / "config.json").is_file():
        return folder
    import subprocess

    values = {**QWEN_COMMON, **QWEN_CONFIGS[name]}
    done = subprocess.run([sys.executable, "-c", BUILD_SCRIPT, str(folder), json.dumps(values)],
                          cwd=bench_speed.REPO, env=bench_speed.env(), capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"building {name} failed:\n{done.stderr[-3000:]}")
    return folder


def filled_records(cutoff: int, count: int, seed: int = 0) -> list[dict[str, str]]:
    """Alpaca-style records of more than ``cutoff`` tokens each (every word is at least one token), so each
    is cut to exactly the cutoff: a quarter question, the rest answer."""
    rng = random.Random(seed)
    words = bench_speed.WORDS
    out = []
    for _ in range(count):
        question, answer = cutoff // 4 + 8, cutoff + 8
        out.append({"instruction": " ".join(rng.choice(words) for _ in range(question)).capitalize() + "?",
                    "input": "",
                    "output": " ".join(rng.choice(words) for _ in range(answer)).capitalize() + "."})
    return out


def run_case(work: Path, model: str, method: str, cutoff: int, rounds: int) -> list[dict]:
    """Both contenders ``rounds`` times on one case; one row per round with both results."""
    data = work / f"filled-{cutoff}.jsonl"
    if not data.is_file():
        count = max(64, bench_speed.SETTINGS["steps"] * bench_speed.SETTINGS["batch"])
        data.write_text("".join(json.dumps(r) + "\n" for r in filled_records(cutoff, count)), encoding="utf-8")
    bench_speed.SETTINGS["cutoff"] = cutoff
    qlora = method == "qlora"
    rows = []
    for i in range(rounds):
        tag = f"{model}-{method}-{cutoff}-{i}"
        contenders = {
            "reference": lambda tag=tag: bench_speed.run_reference(work, data, f"reference-{tag}", True, qlora),
            "tuitune": lambda tag=tag: bench_speed.run_tuitune(work, data, f"tuitune-{tag}", qlora),
        }
        order = list(contenders) if i % 2 == 0 else list(reversed(contenders))
        got = {name: contenders[name]() for name in order}
        gap = bench_speed.loss_gap(got["reference"]["losses"], got["tuitune"]["losses"])
        row = {"model": model, "method": method, "cutoff": cutoff, "round": i + 1,
               "steps": bench_speed.SETTINGS["steps"], "loss_gap": gap,
               "tolerance": bench_speed.loss_tolerance(got["reference"]["losses"]),
               **{f"{name}_{key}": got[name][key] for name in got for key in ("rate", "peak")}}
        print(f"{model} {method} {cutoff}: reference {row['reference_rate']:.1f} tok/s "
              f"{row['reference_peak'] / 2**30:.2f} GiB, tuitune {row['tuitune_rate']:.1f} tok/s "
              f"{row['tuitune_peak'] / 2**30:.2f} GiB; loss gap {gap:.4f}", flush=True)
        rows.append(row)
    return rows


def medians(rows: list[dict]) -> list[dict]:
    """One row per (model, method, cutoff): medians over its rounds."""
    cases: dict[tuple, list[dict]] = {}
    for row in rows:
        cases.setdefault((row["model"], row["method"], row["cutoff"]), []).append(row)
    out = []
    for (model, method, cutoff), group in cases.items():
        med = {key: statistics.median(r[key] for r in group)
               for key in ("reference_rate", "reference_peak", "tuitune_rate", "tuitune_peak")}
        out.append({"model": model, "method": method, "cutoff": cutoff, "rounds": len(group),
                    "steps": "/".join(sorted({str(r["steps"]) for r in group})),
                    "loss_gap": max(r["loss_gap"] for r in group), **med})
    return sorted(out, key=lambda r: (MODELS.index(r["model"]), METHODS.index(r["method"]), r["cutoff"]))


def table(rows: list[dict]) -> str:
    """The Markdown table of the medians."""
    lines = ["| model | method | cutoff | rounds | steps | reference tok/s | tuitune tok/s | speedup | reference GiB | "
             "tuitune GiB | memory | loss gap |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in medians(rows):
        lines.append(f"| {r['model']} | {r['method']} | {r['cutoff']} | {r['rounds']} | {r['steps']} | "
                     f"{r['reference_rate']:.1f} | "
                     f"{r['tuitune_rate']:.1f} | {r['tuitune_rate'] / r['reference_rate']:.2f}x | "
                     f"{r['reference_peak'] / 2**30:.2f} | {r['tuitune_peak'] / 2**30:.2f} | "
                     f"{r['tuitune_peak'] / r['reference_peak']:.2f}x | {r['loss_gap']:.4f} |")
    return "\n".join(lines)


def draw(rows: list[dict], path: Path) -> None:
    """Tokens/s and peak memory against cutoff: solid tuitune, dashed reference, a colour per model and method."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (speed, memory) = plt.subplots(1, 2, figsize=(11, 4.8))
    cases: dict[tuple, list[dict]] = {}
    for r in medians(rows):
        cases.setdefault((r["model"], r["method"]), []).append(r)
    for index, ((model, method), group) in enumerate(cases.items()):
        colour, cutoffs = f"C{index}", [r["cutoff"] for r in group]
        for who, style in (("tuitune", "-"), ("reference", "--")):
            label = f"{model} {method} {who}"
            speed.plot(cutoffs, [r[f"{who}_rate"] for r in group], style, marker="o", color=colour, label=label)
            memory.plot(cutoffs, [r[f"{who}_peak"] / 2**30 for r in group], style, marker="o", color=colour)
    for axis, title in ((speed, "tokens/s"), (memory, "peak memory (GiB)")):
        axis.set_xscale("log", base=2)
        axis.set_xticks(CUTOFFS, [str(c) for c in CUTOFFS])
        axis.set_xlabel("cutoff (tokens a record)")
        axis.set_title(title)
        axis.grid(alpha=0.3)
    handles, labels = speed.get_legend_handles_labels()  # below both plots: inside, it hid lines
    fig.legend(handles, labels, loc="lower center", ncol=4, fontsize=7, frameon=False)
    fig.suptitle("tuitune defaults (solid) vs reference: Trainer with gradient checkpointing (dashed)")
    fig.tight_layout(rect=(0, 0.04 * (len(handles) // 4 + 1), 1, 1))
    fig.savefig(path, dpi=110)


def write_outputs(rows: list[dict], out: Path) -> None:
    """scale.json, scale.md and scale.png in ``out``; print the table."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "scale.json").write_text(json.dumps(rows, indent=1) + "\n", encoding="utf-8")
    text = table(rows)
    (out / "scale.md").write_text(text + "\n", encoding="utf-8")
    draw(rows, out / "scale.png")
    print(text)


def selection(value: str, allowed: tuple, kind=str) -> list:
    """A comma-separated choice among ``allowed``, refused in one line otherwise."""
    chosen = [kind(part) for part in value.split(",") if part]
    wrong = [c for c in chosen if c not in allowed]
    if wrong or not chosen:
        raise argparse.ArgumentTypeError(f"choose among {', '.join(map(str, allowed))}; got {value!r}")
    return chosen


def main() -> None:
    """Run the chosen cases (or redraw saved ones) and write the table and image."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="smollm2,qwen2.5-0.5b", type=lambda v: selection(v, MODELS))
    parser.add_argument("--methods", default="lora,qlora", type=lambda v: selection(v, METHODS))
    parser.add_argument("--cutoffs", default="256,512,1024,2048", type=lambda v: selection(v, CUTOFFS, int))
    parser.add_argument("--rounds", type=int, default=1, help="rounds per case, order alternating (medians)")
    parser.add_argument("--steps", type=int, default=8, help="optimizer steps per run")
    parser.add_argument("--batch", type=int, default=bench_speed.BATCH, help="records a step")
    parser.add_argument("--threads", type=int, default=0, help="OMP_NUM_THREADS of each run (0: all cores)")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "scale",
                        help="folder for scale.json, scale.md, scale.png")
    parser.add_argument("--models-dir", type=Path, default=None,
                        help="keep the random-weight models here between calls (default: a temporary folder)")
    parser.add_argument("--from-json", type=Path, help="only redraw the table and image from a saved scale.json")
    parser.add_argument("--budget-s", type=float, default=0,
                        help="start no case after this many seconds (0: no limit); what ran is written")
    parser.add_argument("--merge", action="store_true",
                        help="keep the rows of OUT/scale.json whose cases are not run again")
    args = parser.parse_args()
    if args.from_json:
        write_outputs(json.loads(args.from_json.read_text(encoding="utf-8")), args.out)
        return
    bench_speed.SETTINGS.update(steps=args.steps, threads=args.threads, batch=args.batch)
    saved = args.out / "scale.json"
    kept = json.loads(saved.read_text(encoding="utf-8")) if args.merge and saved.is_file() else []
    rows: list[dict] = []
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="bench-scale-") as tmp:
        work = Path(tmp)
        models_dir = args.models_dir or work / "models"
        for model in args.models:
            path = "" if model == "smollm2" else str(build_random_model(model, models_dir / model).resolve())
            bench_speed.SETTINGS["model"] = path
            for method in args.methods:
                for cutoff in args.cutoffs:
                    if args.budget_s and time.monotonic() - started > args.budget_s:
                        print(f"budget of {args.budget_s:.0f} s spent: {model} {method} {cutoff} not run", flush=True)
                        continue
                    rows += run_case(work, model, method, cutoff, args.rounds)
                    kept = [r for r in kept if (r["model"], r["method"], r["cutoff"]) != (model, method, cutoff)]
                    write_outputs(kept + rows, args.out)  # a long bench keeps what it has measured so far
    if not rows:
        sys.exit("no case ran")
    beyond = [r for r in rows if r["loss_gap"] > r["tolerance"]]
    for r in beyond:
        print(f"FAIL: {r['model']} {r['method']} {r['cutoff']}: tuitune's losses differ from the reference's by "
              f"{r['loss_gap']:.4f} > {r['tolerance']:.4f}", file=sys.stderr)
    if beyond:
        sys.exit(1)


if __name__ == "__main__":
    main()
