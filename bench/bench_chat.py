"""Chat: generation tokens/s of the demo model and the time from opening the Chat screen to the first token.

    python bench/bench_chat.py [--run RUN] [--tokens 128] [--repeats 3]

Without --run it trains the identity demo first (tuitune train --preset cpu-first-try, about a
minute on an idle 2-core CPU) into a temporary runs folder. Figures: greedy generation through the
real chat service (python -m engine chat), tuned and base (adapter off); and the Chat screen in a
headless app, from pushing the screen to the first streamed piece of an answer (model load included).
Prints the device (cpu, or the GPU when there is one).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from engine.services.chat_protocol import DONE, READY, TOKEN, generate  # noqa: E402
from tuitune.services import EngineProcesses  # noqa: E402

QUESTION = "Tell me about the history of the city of Paris."


def train_demo(runs: Path) -> Path:
    run_dir = runs / "demo"
    subprocess.run([sys.executable, "-m", "tuitune", "train", "--preset", "cpu-first-try", "--run-dir", str(run_dir)],
                   check=True, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)}, stdin=subprocess.DEVNULL)
    return run_dir


def generation(run_dir: Path, tokens: int, repeats: int) -> None:
    processes = EngineProcesses()
    started = time.monotonic()
    process = processes.start("chat", "--run-dir", str(run_dir), "--adapter", str(run_dir / "adapter"), verb="chat")
    rates: dict[str, list[float]] = {"tuned": [], "base": []}
    asked = 0
    device = "?"
    for event in processes.events(process):
        if event["type"] == READY:
            device = event["device"]
            print(f"service ready in {time.monotonic() - started:.1f} s on {device}")
        elif event["type"] == DONE:
            rates[event["side"]].append(event["tokens"] / max(event["seconds"], 1e-9))
        elif event["type"] == TOKEN:
            continue
        if event["type"] in (READY, DONE) and (event["type"] == READY or event["side"] == "tuned"):
            if asked == repeats:
                break
            asked += 1
            # a fixed answer length: the question's answer may end early otherwise
            processes.send("chat", generate(asked, [{"role": "user", "content": QUESTION}], ["base", "tuned"],
                                            max_new_tokens=tokens, repetition_penalty=1.0))
    processes.stop_all()
    for side, values in rates.items():
        print(f"generation {side:<5} {statistics.median(values):7.1f} tokens/s (median of {len(values)}, up to "
              f"{tokens} new tokens, greedy, {device})")


async def first_token(run_dir: Path) -> float:
    from tuitune.app import TuituneApp
    from tuitune.screens.chat import ChatScreen
    from tuitune.settings import Settings

    app = TuituneApp(runs_dir=run_dir.parent, settings=Settings(preset="default"))
    async with app.run_test(size=(120, 40)) as pilot:
        started = time.monotonic()
        app.open_chat(run_dir)
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, ChatScreen)
        while not screen.ready:
            await pilot.pause(0.01)
        screen.prompt.value = "Who are you?"
        await pilot.press("enter")
        while not screen.exchanges or not screen.exchanges[0].answers.get("tuned"):
            await pilot.pause(0.01)
        return time.monotonic() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", type=Path, help="a trained run folder (default: train the demo first)")
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = args.run.resolve() if args.run else train_demo(Path(tmp))
        generation(run_dir, args.tokens, args.repeats)
        seconds = asyncio.run(first_token(run_dir))
        print(f"chat screen opened to first token: {seconds:.2f} s (model load included)")


if __name__ == "__main__":
    main()
