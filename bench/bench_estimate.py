"""Estimate vs measured peak memory: a few short real trainings through the engine.

Each case starts ``python -m engine launch`` through ``tuitune.runs.launch.start_run`` on the
demo model (2-3 optimizer steps, packed data so every batch is exactly batch x cutoff tokens),
waits for the terminal event and compares its ``peak_memory_bytes`` with the estimate:
the allocator peak (``Estimate.peak``) for ``cuda``, the whole process (``Estimate.total``) for
``rss``. Target: within ±15% on a GPU.

    .venv/bin/python bench/bench_estimate.py            # the default grid
    .venv/bin/python bench/bench_estimate.py --quick    # two cases
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.config import RunConfig
from engine.estimate.memory import estimate
from engine.machine.gpus import list_gpus
from engine.models.info import read_model_info
from engine.protocol import TERMINAL_TYPES, read_events_from
from engine.units import fmt_bytes
from tuitune.runs.launch import is_alive, start_run, stop_run

METHODS = {
    "lora": {},
    "qlora-4bit": {"quant": {"mode": "4bit"}},
    "full": {"adapter": {"method": "full"}},
}
GRID = [(1, 128), (4, 256)]


def bench_data(folder: Path) -> Path:
    """Enough varied chat records to fill every packed batch of the grid for three steps."""
    path = folder / "bench.jsonl"
    words = "the model learns to answer questions about memory estimates and training runs".split()
    with open(path, "w", encoding="utf-8") as out:
        for n in range(200):
            text = " ".join(words[(n + k) % len(words)] for k in range(120))
            out.write(json.dumps({"instruction": f"Question {n}: tell me something.", "output": text}) + "\n")
    return path


def case_config(method: str, batch: int, cutoff: int, data: Path, checkpointing: bool) -> RunConfig:
    """A 3-step run of the demo model for one grid point."""
    base = {"data": {"train": [str(data)], "cutoff_len": cutoff, "packing": True},
            "train": {"batch_size": batch, "max_steps": 3, "logging_steps": 1, "save_steps": 1000,
                      "gradient_checkpointing": checkpointing, "precision": "auto"}}
    for section, values in METHODS[method].items():
        base[section] = {**base.get(section, {}), **values}
    return RunConfig.model_validate(base)


def run_case(run_dir: Path, config: RunConfig, timeout: float) -> dict:
    """Start the run and wait for its terminal event."""
    start_run(run_dir, config)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done = [e for e in read_events_from(run_dir / "events.jsonl").events if e["type"] in TERMINAL_TYPES]
        if done:
            while is_alive(run_dir) and time.monotonic() < deadline:  # let the supervisor finish writing
                time.sleep(0.2)
            return done[-1]
        time.sleep(1.0)
    stop_run(run_dir, kill=True)  # never leave a run behind competing with the next case
    for _ in range(50):
        if not is_alive(run_dir):
            break
        time.sleep(0.2)
    return {"type": "timeout", "cause": f"no terminal event in {timeout:.0f} s (the CPU may be busy)"}


def main() -> int:
    """Run the grid and print estimate vs measured peak per case."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="only LoRA and QLoRA at batch 1 x 128")
    parser.add_argument("--methods", nargs="*", default=list(METHODS))
    parser.add_argument("--checkpointing", action="store_true", help="gradient checkpointing on")
    parser.add_argument("--timeout", type=float, default=900, help="seconds allowed per case")
    args = parser.parse_args()
    gpus, note = list_gpus()
    device = "cuda" if gpus else "cpu"
    print(f"device: {device} ({', '.join(g.name for g in gpus) or note})")
    info = read_model_info("smollm2-135m-instruct")
    cases = [(m, b, s) for m in args.methods for b, s in GRID]
    if args.quick:
        cases = [("lora", 1, 128), ("qlora-4bit", 1, 128)]
    print(f"{'method':<11}{'batch':>6}{'cutoff':>7}{'estimate':>11}{'measured':>11}{'kind':>6}{'error':>8}")
    errors = []
    with tempfile.TemporaryDirectory(prefix="bench-estimate-") as tmp:
        data = bench_data(Path(tmp))
        for method, batch, cutoff in cases:
            config = case_config(method, batch, cutoff, data, args.checkpointing)
            est = estimate(info, config, device=device)
            event = run_case(Path(tmp) / f"{method}-{batch}x{cutoff}", config, args.timeout)
            peak, kind = event.get("peak_memory_bytes"), event.get("peak_memory_kind")
            if not peak:
                print(f"{method:<11}{batch:>6}{cutoff:>7}  {event['type']}: {event.get('cause', '')}")
                continue
            expected = est.peak if kind == "cuda" else est.total
            error = (expected - peak) / peak
            errors.append(abs(error))
            print(f"{method:<11}{batch:>6}{cutoff:>7}{fmt_bytes(expected):>11}{fmt_bytes(peak):>11}{kind:>6}{error:>+8.0%}")
    if errors:
        print(f"mean |error| {sum(errors) / len(errors):.0%}, worst {max(errors):.0%} over {len(errors)} runs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
