"""Seconds a step of each stage's CPU first try (``Stage.cpu_preset``) on the demo model, one measured run each.

    PYTHONPATH=. .venv/bin/python bench/bench_cpu_presets.py              # every stage, 6 steps each
    PYTHONPATH=. .venv/bin/python bench/bench_cpu_presets.py dpo grpo     # some stages

Each run is ``tuitune train --preset P --stage S --data D --max-steps N`` on the stage's demo data, in a
temporary runs folder, as a user on a machine without a GPU would start it. The step time is taken from the
events: the last ``log``'s ``elapsed_s`` less the first's, over the steps between them (so model loading and the
first step's warm-up are left out). Prints one line a stage and the slowest as ``slowest S s/step (STAGE)``;
exits 1 when a stage's step takes more than LIMIT_S.

Measured here (2026-12-07, 2 shared cores, OMP_NUM_THREADS=1, other engineers' tests running): sft 1.8 s/step,
pt 2.1, rm 1.7, dpo 2.7, kto 3.7, orpo 4.1, grpo 6.2, rloo 7.3 (dpo-lora took 110 s a step). The RL stages are
bound by sampling: ``generate`` of 4 answers of 16 tokens takes 4.8 s on one thread with the KV cache (9.2 s
without), about 0.3 s a token, hence their 8-token answers (16 tokens: 9.8 and 13.0 s a step).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from engine.protocol import read_events
from engine.stages import STAGES

LIMIT_S = 10.0
"""A few seconds a step at most: what "a first try on CPU" promises."""


def measure(stage: str, steps: int, runs: Path) -> tuple[float, float, int]:
    """(seconds a step after the first, wall seconds of the whole command, peak RSS bytes) of one run."""
    row = STAGES[stage]
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "tuitune", "train", "--preset",
                           row.cpu_preset, "--stage", stage, "--data", row.demo_data, "--max-steps", str(steps),
                           "--run-dir", str(runs / f"cpu-{stage}")], capture_output=True, text=True, env=os.environ)
    wall = time.monotonic() - started
    events = read_events(runs / f"cpu-{stage}")
    if done.returncode != 0:
        raise SystemExit(f"{stage}: exit {done.returncode}: {done.stderr[-2000:]}")
    logs = [e for e in events if e["type"] == "log"]
    first, last = logs[0], logs[-1]
    per_step = (last["elapsed_s"] - first["elapsed_s"]) / max(1, last["step"] - first["step"])
    peak = next(e for e in events if e["type"] == "run_finished").get("peak_memory_bytes") or 0
    return per_step, wall, peak


def main() -> int:
    """Measure the stages named (every stage by default)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("stages", nargs="*", default=list(STAGES))
    parser.add_argument("--steps", type=int, default=6)
    args = parser.parse_args()
    results = {}
    with tempfile.TemporaryDirectory(prefix="tuitune-cpu-presets-") as tmp:
        for stage in args.stages:
            per_step, wall, peak = measure(stage, args.steps, Path(tmp))
            results[stage] = per_step
            print(f"{stage:5} {STAGES[stage].cpu_preset:22} {per_step:6.2f} s/step  {wall:6.1f} s in all  "
                  f"peak RSS {peak / 2**30:.2f} GiB", flush=True)
    slowest = max(results, key=results.get)
    print(f"slowest {results[slowest]:.2f} s/step ({slowest})")
    return 1 if results[slowest] > LIMIT_S else 0


if __name__ == "__main__":
    raise SystemExit(main())
