"""Data benchmark: first page of a 1M-record (about 1 GB) JSON Lines file, and check/token throughput.

Run: ``.venv/bin/python bench/bench_data.py [--records 1000000] [--token-records 20000]``

Prints:
- generation time of the file (kept in /tmp for reruns),
- first page (100 records) time straight from RecordIndex, and in the Data screen (headless
  Textual app: path set → first page in the table),
- background index time (all record offsets),
- structural validation throughput (records/s) of ``engine.data.checks``,
- token statistics throughput (records/s) of ``python -m engine data --model`` (demo model).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from engine.data.checks import check_paths
from engine.data.index import RecordIndex

WORDS = "the model learns to answer questions about data training tokens with care and good style".split()


def generate(path: Path, records: int) -> float:
    """Write ``records`` openai-format records of about 1 KB each; returns seconds (0 if reused)."""
    if path.exists() and path.stat().st_size > records * 500:
        return 0.0
    started = time.perf_counter()
    rng = random.Random(0)
    phrases = [" ".join(rng.choice(WORDS) for _ in range(40)) for _ in range(997)]
    with path.open("w", encoding="utf-8") as file:
        for i in range(records):
            record = {"messages": [
                {"role": "system", "content": "You are a careful assistant."},
                {"role": "user", "content": f"Question {i}: {phrases[i % 997]}"},
                {"role": "assistant", "content": f"Answer {i}: {phrases[(i * 7) % 997]} {phrases[(i * 13) % 997]}"},
                {"role": "user", "content": f"And then? {phrases[(i * 3) % 997]}"},
                {"role": "assistant", "content": f"Then {i}: {phrases[(i * 5) % 997]}"},
            ]}
            file.write(json.dumps(record) + "\n")
    return time.perf_counter() - started


def bench_index(path: Path) -> None:
    started = time.perf_counter()
    index = RecordIndex(str(path))
    rows = index.first_page(100)
    first = time.perf_counter() - started
    started = time.perf_counter()
    index.build()
    built = time.perf_counter() - started
    started = time.perf_counter()
    middle = index.page(index.count // 2, 100)
    seek = time.perf_counter() - started
    print(f"first page (100 records, RecordIndex): {first * 1000:.1f} ms ({len(rows)} rows)")
    print(f"full index of {index.count:,} records: {built:.2f} s ({index.count / built:,.0f} records/s)")
    print(f"page in the middle once indexed: {seek * 1000:.1f} ms ({len(middle)} rows)")


async def bench_screen(path: Path) -> None:
    """Time from starting an app on the Data screen for ``path`` to the first page in its table."""
    from textual.app import App
    from textual.widgets import DataTable

    from tuitune.screens.data import DataScreen

    class BenchApp(App):
        def on_mount(self) -> None:
            self.push_screen(DataScreen(path=str(path), model=None))

    def first_cell(app: App) -> str | None:
        tables = app.screen.query("#data-table")
        table = tables.first(DataTable) if tables else None
        return str(table.get_row_at(0)[0]) if table is not None and table.row_count else None

    started = time.perf_counter()
    app = BenchApp()
    async with app.run_test(size=(120, 40)):
        while first_cell(app) is None and time.perf_counter() - started < 30:
            await asyncio.sleep(0.002)
        print("first page in the Data screen (app start → rows in table): "
              f"{(time.perf_counter() - started) * 1000:.0f} ms")
        await asyncio.sleep(3)  # let the index get past the next page
        for page in ("100", "200", "300"):
            started = time.perf_counter()
            app.screen.action_page(1)
            while first_cell(app) != page and time.perf_counter() - started < 30:
                await asyncio.sleep(0.002)
            print(f"next page ({page}) in the Data screen: {(time.perf_counter() - started) * 1000:.0f} ms")
        app.screen.processes.stop_all()


def bench_check(path: Path, records: int) -> None:
    sample = path.with_name(f"sample_{records}.jsonl")
    with path.open("rb") as source, sample.open("wb") as target:
        for _ in range(records):
            target.write(source.readline())
    started = time.perf_counter()
    summary = check_paths([str(sample)])
    elapsed = time.perf_counter() - started
    print(f"structural validation: {summary.records / elapsed:,.0f} records/s ({summary.records:,} records, "
          f"{elapsed:.2f} s, {summary.errors} errors)")


def bench_tokens(path: Path, records: int) -> None:
    """Token statistics of ``python -m engine data --model``: the token pass alone and overall."""
    started = time.perf_counter()
    command = [sys.executable, "-m", "engine", "data", str(path), "--model", "smollm2-135m-instruct",
               "--cutoff", "512", "--limit", str(records)]
    first = stats = None
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True) as process:
        for line in process.stdout:
            event = json.loads(line)
            if event["type"] == "progress" and event["phase"] == "tokens" and first is None:
                first = (time.perf_counter(), event["records"])
            elif event["type"] == "token_stats":
                stats, ended = event, time.perf_counter()
    rate = (records - first[1]) / (ended - first[0])
    print(f"token statistics (tokens pass): {rate:,.0f} records/s; whole command {ended - started:.1f} s for "
          f"{records:,} records incl. tokenizer load and check pass; p50 {stats['p50']}, p95 {stats['p95']}, "
          f"max {stats['max']} tokens")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--check-records", type=int, default=100_000)
    parser.add_argument("--token-records", type=int, default=20_000)
    parser.add_argument("--dir", default=os.environ.get("TMPDIR", "/tmp"))
    args = parser.parse_args()
    path = Path(args.dir) / f"tuitune_bench_{args.records}.jsonl"
    made = generate(path, args.records)
    print(f"file: {path} ({path.stat().st_size / 1e9:.2f} GB, {args.records:,} records; "
          f"{f'generated in {made:.1f} s' if made else 'reused'})")
    bench_index(path)
    asyncio.run(bench_screen(path))
    bench_check(path, args.check_records)
    bench_tokens(path, args.token_records)


if __name__ == "__main__":
    main()
