"""Where one training step of tuitune's defaults spends its time: torch.profiler's table of operators.

    .venv/bin/python bench/profile_step.py --cutoff 256            # LoRA, the demo model, batch 4
    .venv/bin/python bench/profile_step.py --cutoff 1024 --qlora --rows 30
    .venv/bin/python bench/profile_step.py --cutoff 1024 --model /path/to/model --trace /tmp/step.json

The model, adapter, techniques, data and collator are the engine's own (engine.models.loading,
engine.recipes.techniques, engine.recipes.datasets), built from a run config that sets only bench_speed.py's
hyperparameters, on records that fill the cutoff (bench_scale.py's). The optimizer is the one the engine's
Trainer uses (fused AdamW). Warm-up steps run first, then one step (forward, loss, backward, optimizer step) is
profiled; the table is sorted by self CPU time (CUDA time on a GPU), with the step's wall time, the share
of each phase (forward, backward, optimizer) and the step's minor page faults printed above it. On CPU it
runs on the C allocator the trainer gets (engine/machine/allocator.py: it starts itself again with tcmalloc
preloaded where the machine has it; TUITUNE_MALLOC=glibc for glibc with the trainer's fixed mmap threshold).
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import bench_scale
import bench_speed


def build(cutoff: int, batch: int, qlora: bool, model_path: str, data: Path):
    """The engine's model (adapter and techniques on) and one collated batch of ``batch`` full records."""
    import torch
    from transformers import AutoTokenizer, set_seed

    from engine.config import RunConfig
    from engine.models.demo import ensure_demo_model
    from engine.models.loading import apply_adapter, load_model
    from engine.recipes.datasets import build_datasets
    from engine.recipes.techniques import apply_techniques, collator

    bench_speed.SETTINGS.update(cutoff=cutoff, batch=batch, model=model_path)
    config = RunConfig.model_validate(bench_speed.engine_config(data, qlora))
    path = model_path or str(ensure_demo_model())
    set_seed(config.train.seed)
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = apply_adapter(load_model(config, path, pad_token_id=tokenizer.pad_token_id), config)
    techniques = apply_techniques(model, config)
    built = build_datasets(config.data, tokenizer, config.train.seed, stage=config.stage)
    collate = collator(model, config, tokenizer.pad_token_id, torch.cuda.is_available())
    device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not qlora:
        model.to(device)
    model.train()
    batch_rows = collate([built.train[i] for i in range(batch)])
    tensors = {k: v.to(device) for k, v in batch_rows.items() if hasattr(v, "to")}
    return model, tensors, techniques


def on_the_trainers_allocator() -> None:
    """Start this script again in the environment the supervisor gives a one-process trainer, when it lacks it
    (on CPU, tcmalloc preloaded where the machine has it)."""
    import os

    from engine.supervisor.launch import Processes, train_command

    _, extra = train_command(Path(), False, Processes(nproc=1))
    if any(os.environ.get(name) != value for name, value in extra.items()):
        os.execve(sys.executable, [sys.executable, *sys.argv], {**os.environ, **extra})


def main() -> None:
    """Warm up, profile one step, print the table."""
    on_the_trainers_allocator()
    import torch
    from torch.profiler import ProfilerActivity, profile, record_function

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cutoff", type=int, default=256)
    parser.add_argument("--batch", type=int, default=bench_speed.BATCH)
    parser.add_argument("--qlora", action="store_true")
    parser.add_argument("--model", default="", help="a local model folder (default: the demo model)")
    parser.add_argument("--warmup", type=int, default=2, help="steps before the profiled one")
    parser.add_argument("--rows", type=int, default=25, help="operators in the table")
    parser.add_argument("--shapes", action="store_true", help="one row per operator and input shapes")
    parser.add_argument("--trace", type=Path, help="also write a Chrome trace of the step here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="profile-step-") as tmp:
        data = Path(tmp) / "filled.jsonl"
        rows = bench_scale.filled_records(args.cutoff, max(16, args.batch))
        data.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
        model, batch, techniques = build(args.cutoff, args.batch, args.qlora,
                                         str(Path(args.model).resolve()) if args.model else "", data)
    cuda = torch.cuda.is_available()
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=bench_speed.LEARNING_RATE, fused=True)
    phases: dict[str, float] = {}
    faults = [0]  # minor page faults of the profiled step, set by step()

    def step(timed: bool) -> None:
        faulted = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        marks = [time.perf_counter()]
        with record_function("forward"):
            loss = model(**batch).loss
        if cuda:
            torch.cuda.synchronize()
        marks.append(time.perf_counter())
        with record_function("backward"):
            loss.backward()
        if cuda:
            torch.cuda.synchronize()
        marks.append(time.perf_counter())
        with record_function("optimizer"):
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
        if cuda:
            torch.cuda.synchronize()
        marks.append(time.perf_counter())
        if timed:
            phases.update(zip(("forward", "backward", "optimizer"), (b - a for a, b in zip(marks, marks[1:]))))
            faults[0] = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faulted

    for _ in range(args.warmup):
        step(False)
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    with profile(activities=activities, record_shapes=args.shapes) as prof:
        step(True)
    tokens = int(batch["labels"].numel()) if "labels" in batch else 0
    total = sum(phases.values())
    print(f"cutoff {args.cutoff}, batch {args.batch}, {'QLoRA' if args.qlora else 'LoRA'}, {tokens} tokens; "
          f"techniques: {', '.join(techniques) or 'none'}; torch threads {torch.get_num_threads()}")
    print(f"step {total:.3f} s ({tokens / total:.0f} tokens/s): "
          + ", ".join(f"{name} {seconds:.3f} s ({seconds / total:.0%})" for name, seconds in phases.items())
          + f"; {faults[0] / 1e6:.2f} million minor page faults")
    averages = prof.key_averages(group_by_input_shape=args.shapes)
    print(averages.table(sort_by="self_cuda_time_total" if cuda else "self_cpu_time_total", row_limit=args.rows,
                         max_name_column_width=48))
    if args.trace:
        prof.export_chrome_trace(str(args.trace))


if __name__ == "__main__":
    main()
