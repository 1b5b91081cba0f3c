"""Bytes a second the dashboard sends to the terminal while it follows a live run, as over SSH (issue 25).

    PYTHONPATH=. .venv/bin/python bench/bench_ssh_bytes.py                  # 80x24, 30 s
    PYTHONPATH=. .venv/bin/python bench/bench_ssh_bytes.py --seconds 60 --size 120x40

A real run of a tiny random Llama (bench_app.tiny_model) on the cpu-first-try preset, which logs every step
(many steps a second here: the most events a run writes), with the app attached to it in a tmux pane of the
given size. After the first full paint, tmux's ``pipe-pane`` copies everything the app writes to the pane into
a file for ``--seconds``: that is what an SSH connection would carry. Prints ``KB/s`` (1 KB = 1,024 bytes) with
the events written meanwhile; the target is 1.5 KB/s at 80x24.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_app import APP, start_pane, tiny_model, tmux, wait_screen

from engine.protocol import read_events

TARGET_KB_S = 1.5


def measure(seconds: float, size: tuple[int, int], save: Path | None = None) -> float:
    """KB/s written to a pane of ``size`` by the dashboard following a live tiny-model run (the bytes kept in
    ``save`` when given, to see what was redrawn)."""
    from tuitune.runs import launch
    from tuitune.runs.draft import RunDraft, load_preset_values, resolve_draft

    with tempfile.TemporaryDirectory(prefix="tuitune-ssh-bytes-") as tmp_name:
        tmp = Path(tmp_name)
        model = tiny_model(tmp / "tiny-model")
        runs = tmp / "runs"
        draft = RunDraft(model=str(model), preset="cpu-first-try", max_steps="100000", cutoff="64")
        run_dir = launch.new_run_dir(runs, "live")
        launch.start_run(run_dir, resolve_draft(draft, load_preset_values("cpu-first-try")))
        socket = f"bench-ssh-{os.getpid()}"
        out = tmp / "pane.bytes"
        try:
            start_pane(socket, f"{APP} attach {runs} {run_dir.name}", size=size)
            wait_screen(socket, "step ", timeout=120)
            while not any(e["type"] == "log" for e in read_events(run_dir)):
                time.sleep(0.2)
            time.sleep(5)  # past the first full paint and the first chart
            before = len(read_events(run_dir))
            tmux(socket, "pipe-pane", "-o", "-t", "b", f"cat >> {out}")
            time.sleep(seconds)
            tmux(socket, "pipe-pane", "-t", "b")
            events = len(read_events(run_dir)) - before
            sent = out.stat().st_size if out.exists() else 0
            if save is not None and out.exists():
                save.write_bytes(out.read_bytes())
        finally:
            launch.stop_run(run_dir, kill=True)
            subprocess.run(["tmux", "-L", socket, "kill-server"], capture_output=True)
        rate = sent / seconds / 1024
        print(f"dashboard at {size[0]}x{size[1]} following a live tiny-model run ({events / seconds:.0f} events/s): "
              f"{sent:,} bytes in {seconds:.0f} s = {rate:.2f} KB/s [target <= {TARGET_KB_S} KB/s]")
        return rate


def main() -> int:
    """Measure once; exit 1 above the target."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--size", default="80x24", help="the pane's COLSxROWS")
    parser.add_argument("--save", type=Path, help="keep the bytes sent in this file")
    args = parser.parse_args()
    cols, rows = (int(n) for n in args.size.split("x"))
    return 1 if measure(args.seconds, (cols, rows), args.save) > TARGET_KB_S else 0


if __name__ == "__main__":
    raise SystemExit(main())
