"""App benchmark: start-up, dashboard ingest and chart redraw, terminal bytes while live, training overhead.

Run: ``.venv/bin/python bench/bench_app.py [--skip-training] [--live-seconds 30]``

Prints (targets in brackets):
- app start to first screen, as a person sees it in tmux (process spawn → "Runs" on screen) [≤ 0.5 s],
- events/s the dashboard ingests (history replay and live appends) [≥ 1,000/s],
- loss chart redraw time at 120x40 for 300 / 1,000 / 5,000 points [≤ 50 ms],
- bytes/s written to the terminal while a dashboard follows a live run (tmux pipe-pane) [≤ 4 KB/s],
- the app's CPU use while following a live run (the most it can take from training),
- training tokens/s with the dashboard attached vs headless, demo model, CPU [≥ 0.98x].
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from engine.protocol import EventWriter, read_events  # noqa: E402

PY = sys.executable
APP = (f"{PY} -c 'import sys, argparse; from tuitune.cli import app; "
       "sys.exit(app.run(argparse.Namespace(command=sys.argv[1], runs_dir=sys.argv[2], run=sys.argv[3])))'")
"""The app as `tuitune [attach RUN]` runs it (through tuitune.cli.app, the same handler)."""


def tmux(socket: str, *args: str) -> str:
    return subprocess.run(["tmux", "-L", socket, *args], capture_output=True, text=True, check=True).stdout


def wait_screen(socket: str, text: str, timeout: float = 30.0, interval: float = 0.005) -> float:
    start = time.perf_counter()
    while text not in tmux(socket, "capture-pane", "-p", "-t", "b"):
        if time.perf_counter() - start > timeout:
            raise TimeoutError(f"{text!r} not on screen after {timeout}s")
        time.sleep(interval)
    return time.perf_counter() - start


def start_pane(socket: str, command: str, size=(120, 40)) -> None:
    tmux(socket, "-f", "/dev/null", "new-session", "-d", "-s", "b", "-x", str(size[0]), "-y", str(size[1]),
         f"{command}; sleep 600")
    tmux(socket, "set-option", "-s", "escape-time", "10")


BARE_APP = (f"{PY} -c 'from textual.app import App; from textual.widgets import Static\n"
            "class A(App):\n    def compose(self):\n        yield Static(\"Hello (\")\nA().run()'")
"""A one-widget Textual app: the floor any Textual app's start-up stands on, on this machine now."""


def time_to_screen(command: str, text: str, repeats: int) -> list[float]:
    times = []
    for i in range(repeats):
        socket = f"bench-start-{os.getpid()}-{i}"
        start = time.perf_counter()
        start_pane(socket, command)
        try:
            times.append(time.perf_counter() - start + wait_screen(socket, text))
        finally:
            subprocess.run(["tmux", "-L", socket, "kill-server"], capture_output=True)
    return times


def bench_startup(runs: Path, repeats: int = 7) -> None:
    load = os.getloadavg()[0]
    bare = time_to_screen(BARE_APP, "Hello (", repeats)
    app = time_to_screen(f"{APP} app {runs} -", "Runs (", repeats)
    print(f"start to first screen (tmux, runs list of {len(list(runs.iterdir()))} runs, load {load:.1f} on "
          f"{os.cpu_count()} CPUs): median {statistics.median(app):.3f} s, min {min(app):.3f} s "
          f"[target <= 0.5 s]; a bare one-widget Textual app: median {statistics.median(bare):.3f} s, "
          f"min {min(bare):.3f} s")


def write_history(run_dir: Path, n: int) -> None:
    with EventWriter(run_dir) as writer:
        writer.emit("run_started", run_name=run_dir.name, model={"name_or_path": "bench"}, method="lora",
                    total_steps=n, resumed_from_step=None)
        for step in range(1, n):
            writer.emit("log", step=step, total_steps=n, epoch=step / n, loss=2.0 / (1 + step / 500), lr=2e-4,
                        grad_norm=0.9, tokens_per_s=5000.0, elapsed_s=step * 0.1, eta_s=(n - step) * 0.1)


async def bench_ingest(tmp: Path) -> None:
    from tuitune.app import TuituneApp
    from tuitune.screens.train import TrainScreen
    from tuitune.settings import Settings

    run_dir = tmp / "ingest"
    run_dir.mkdir()
    n = 20_000
    write_history(run_dir, n)
    app = TuituneApp(runs_dir=tmp, attach=run_dir, settings=Settings(runs_dir=tmp, preset="default"))
    async with app.run_test(size=(120, 40)) as pilot:
        start = time.perf_counter()
        while not (isinstance(app.screen, TrainScreen) and app.screen.state.events_seen >= n):
            await pilot.pause(0.01)
        replay = time.perf_counter() - start
        dash = app.screen
        print(f"dashboard ingest, history replay: {n:,} events in {replay:.2f} s = {n / replay:,.0f} events/s "
              f"[target >= 1,000/s]")
        # live: a writer appends 10,000 events as fast as it can while the dashboard follows
        live = 10_000

        def append() -> None:
            with EventWriter(run_dir) as writer:
                for step in range(n, n + live):
                    writer.emit("log", step=step, loss=1.0, lr=2e-4, tokens_per_s=5000.0)

        start = time.perf_counter()
        thread = threading.Thread(target=append)
        thread.start()
        while dash.state.events_seen < n + live:
            await pilot.pause(0.01)
        took = time.perf_counter() - start
        thread.join()
        print(f"dashboard ingest, live appends: {live:,} events in {took:.2f} s = {live / took:,.0f} events/s; "
              f"repaints during it: throttled to 1/s")
        chart = dash.chart
        plot = chart.query_one("PlotWidget")
        for points in (300, 1_000, 5_000):
            series = [(float(i), 2.0 / (1 + i / 500)) for i in range(1, points + 1)]
            evals = series[:: max(1, points // 10)]
            draw, frame = [], []
            for _ in range(7):
                chart._shown = (0, 0, None, None)
                start = time.perf_counter()
                chart.set_series(series, evals)
                plot._render_plot()  # the drawing set_series schedules for the next frame
                draw.append(time.perf_counter() - start)
                plot.refresh()
                for canvas in plot.query("Canvas"):
                    canvas._render_cache = None  # measure a real re-render
                app.screen._compositor.update_widgets(set(plot.query("*")))
                app.screen._compositor.render_update(full=True)  # the whole 120x40 frame, chart included
                frame.append(time.perf_counter() - start)
                await pilot.pause()
            print(f"chart redraw at 120x40 ({plot.size.width}x{plot.size.height} cells), {points:,} points + "
                  f"{len(evals)} eval: draw median {statistics.median(draw) * 1000:.1f} ms, with a full-screen frame "
                  f"{statistics.median(frame) * 1000:.1f} ms [target <= 50 ms]")


def fake_engine(run_dir: Path, seconds: float, stop: threading.Event) -> None:
    """Events at the rate a fast run writes them: a log a second, a system sample every 5 s.

    Run as ``bench_app.py --fake-engine launch RUN_DIR SECONDS`` so that its command line names
    the run folder like a real supervisor's and the dashboard counts it as alive.
    """
    (run_dir / "pids.json").write_text(json.dumps({"supervisor": os.getpid(), "trainer": os.getpid(),
                                                   "pgid": os.getpgid(0), "host": "bench", "started": time.time()}))
    with EventWriter(run_dir) as writer, open(run_dir / "engine.log", "a") as log:
        writer.emit("run_started", run_name=run_dir.name, model={"name_or_path": "smollm2-135m-instruct"},
                    method="lora", total_steps=1000, resumed_from_step=None)
        step = 0
        start = time.monotonic()
        while not stop.is_set() and time.monotonic() - start < seconds:
            step += 1
            writer.emit("log", step=step, total_steps=1000, epoch=step / 100, loss=2.0 / (1 + step / 50), lr=2e-4,
                        grad_norm=0.9, tokens_per_s=212.0, elapsed_s=step, eta_s=1000 - step)
            log.write(f"{{'loss': {2.0 / (1 + step / 50):.4f}, 'grad_norm': 0.9, 'epoch': {step / 100}}}\n")
            log.flush()
            if step % 5 == 0:
                writer.emit("system", gpus=[], gpu_note="no NVIDIA driver", rss_bytes=1_900_000_000 + step,
                            cpu_pct=100.0 + step % 7, host_mem_used_bytes=9_000_000_000,
                            host_mem_total_bytes=25_000_000_000)
            stop.wait(1.0)


def app_process(socket: str):
    """The app's process in the pane (the pane's shell runs it as a child)."""
    import psutil

    shell = psutil.Process(int(tmux(socket, "display-message", "-p", "-t", "b", "#{pane_pid}").strip()))
    children = shell.children(recursive=True)
    return next(p for p in children if "python" in p.name() and "tuitune" in " ".join(p.cmdline()))


def bench_bytes(tmp: Path, seconds: float) -> None:
    run_dir = (tmp / "live").resolve()
    run_dir.mkdir()
    (run_dir / "config.yaml").write_text("model: {name_or_path: smollm2-135m-instruct}\n")
    engine = subprocess.Popen([PY, __file__, "--fake-engine", "launch", str(run_dir), str(seconds + 15)])
    socket = f"bench-bytes-{os.getpid()}"
    out = tmp / "pane.bytes"
    try:
        start_pane(socket, f"{APP} attach {tmp} live")
        wait_screen(socket, "step ")
        time.sleep(3)  # past the first full paint
        app = app_process(socket)
        cpu_before = sum(app.cpu_times()[:2])
        tmux(socket, "pipe-pane", "-o", "-t", "b", f"cat >> {out}")
        time.sleep(seconds)
        tmux(socket, "pipe-pane", "-t", "b")
        cpu = sum(app.cpu_times()[:2]) - cpu_before
        size = out.stat().st_size if out.exists() else 0
        print(f"terminal output while live (log event/s, system every 5 s, 120x40): {size:,} bytes in "
              f"{seconds:.0f} s = {size / seconds / 1024:.2f} KB/s [target <= 4 KB/s]")
        print(f"app CPU while following the live run: {cpu / seconds * 100:.1f}% of one core "
              f"({cpu / seconds / os.cpu_count() * 100:.1f}% of this machine's {os.cpu_count()} cores, "
              f"the most it can take from training)")
        engine.terminate()
        engine.wait()
        out.unlink(missing_ok=True)
        time.sleep(2)
        tmux(socket, "pipe-pane", "-o", "-t", "b", f"cat >> {out}")
        time.sleep(10)
        tmux(socket, "pipe-pane", "-t", "b")
        idle = out.stat().st_size if out.exists() else 0
        print(f"terminal output with no new events: {idle / 10:.0f} bytes/s")
    finally:
        engine.terminate()
        subprocess.run(["tmux", "-L", socket, "kill-server"], capture_output=True)
        engine.wait()


def tiny_model(folder: Path) -> Path:
    """A tiny random Llama with the demo tokenizer (as tests/conftest.py builds it): fast steps,
    so the dashboard's share of the CPU shows as clearly as it ever will."""
    from engine.models.demo import ensure_demo_model

    script = f"""
import torch
from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM
tok = AutoTokenizer.from_pretrained({str(ensure_demo_model())!r})
cfg = LlamaConfig(vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                  num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
                  tie_word_embeddings=True, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                  pad_token_id=tok.pad_token_id)
torch.manual_seed(0)
LlamaForCausalLM(cfg).save_pretrained({str(folder)!r})
tok.save_pretrained({str(folder)!r})
"""
    subprocess.run([PY, "-c", script], check=True, capture_output=True)
    return folder


def run_training(runs: Path, name: str, model: str, attach: bool, steps: int) -> float:
    """Train ``model`` (cpu-first-try, cutoff 64); median tokens/s of its log events past warm-up."""
    from tuitune.runs import launch
    from tuitune.runs.draft import RunDraft, load_preset_values, resolve_draft

    draft = RunDraft(model=model, preset="cpu-first-try", max_steps=str(steps), cutoff="64")
    config = resolve_draft(draft, load_preset_values("cpu-first-try"))
    run_dir = launch.new_run_dir(runs, name)
    launch.start_run(run_dir, config)
    socket = f"bench-train-{os.getpid()}-{name}"
    if attach:
        start_pane(socket, f"{APP} attach {runs} {run_dir.name}")
    try:
        while not any(e["type"] in ("run_finished", "run_failed") for e in read_events(run_dir)):
            time.sleep(0.5)
    finally:
        subprocess.run(["tmux", "-L", socket, "kill-server"], capture_output=True)
    rates = [e["tokens_per_s"] for e in read_events(run_dir) if e["type"] == "log" and e.get("tokens_per_s")]
    return statistics.median(rates[len(rates) // 3:])


def bench_training(tmp: Path, steps: int, model: str, rounds: int = 2) -> None:
    """Headless and attached runs taken in turns (A B A B), so a change in machine load hits both."""
    runs = tmp / "train-runs"
    if model == "tiny":
        model = str(tiny_model(tmp / "tiny-model"))
    headless, attached = [], []
    for r in range(rounds):
        headless.append(run_training(runs, f"headless-{r}", model, attach=False, steps=steps))
        attached.append(run_training(runs, f"attached-{r}", model, attach=True, steps=steps))
    h, a = statistics.median(headless), statistics.median(attached)
    print(f"training tokens/s, {Path(model).name} on CPU ({steps} steps, cutoff 64, {rounds} rounds A/B, load "
          f"{os.getloadavg()[0]:.1f}): headless {h:.0f}, dashboard attached {a:.0f} = {a / h:.3f}x "
          f"[target >= 0.98x]; per round {[round(x) for x in headless]} vs {[round(x) for x in attached]}")


def main() -> None:
    if sys.argv[1:2] == ["--fake-engine"]:
        fake_engine(Path(sys.argv[3]).resolve(), float(sys.argv[4]), threading.Event())
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip-training", action="store_true", help="skip the tokens/s comparison (minutes)")
    parser.add_argument("--live-seconds", type=float, default=30.0)
    parser.add_argument("--train-steps", type=int, default=20)
    parser.add_argument("--train-model", default="smollm2-135m-instruct",
                        help="model for the tokens/s comparison: the demo alias, a folder, or 'tiny'")
    args = parser.parse_args()
    if shutil.which("tmux") is None:
        sys.exit("tmux is needed: apt-get install -y tmux")
    os.environ.setdefault("TZ", "UTC")
    tmp = Path(tempfile.mkdtemp(prefix="bench-app-"))
    try:
        fixtures = tmp / "runs"
        shutil.copytree(REPO / "tests" / "fixtures" / "runs", fixtures, ignore=shutil.ignore_patterns("*.py"))
        bench_startup(fixtures)
        asyncio.run(bench_ingest(tmp))
        bench_bytes(tmp, args.live_seconds)
        if not args.skip_training:
            bench_training(tmp, args.train_steps, args.train_model)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
