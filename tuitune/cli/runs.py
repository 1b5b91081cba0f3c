"""``tuitune runs [--json]``: the runs of the runs folder, newest first, for a person or a script."""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from typing import Any

from tuitune import fmt
from tuitune.cli.common import runs_root
from tuitune.runs.figures import figures_of
from tuitune.runs.folder import RunSummary, list_run_dirs, summarize

COLUMNS = ("name", "state", "step", "loss", "started", "duration")


def run(args: argparse.Namespace) -> int:
    """Print one line per run (a table, or with ``--json`` one JSON object per line); exit 0, also for none."""
    root = runs_root(args)
    runs = sorted((summarize(path) for path in list_run_dirs(root)),
                  key=lambda run: (run.state.started_t or 0.0, run.path.name), reverse=True)
    if args.json:
        for summary in runs:
            print(json.dumps(record_of(summary), ensure_ascii=False))
        return 0
    if not runs:
        print(f"no runs in {root}")
        return 0
    rows = [COLUMNS] + [cells_of(summary) for summary in runs]
    widths = [max(len(row[column]) for row in rows) for column in range(len(COLUMNS))]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())
    return 0


def cells_of(summary: RunSummary) -> tuple[str, ...]:
    """A run's cells of COLUMNS, as text."""
    state = summary.state
    total = state.total_steps or summary.meta.max_steps
    return (summary.name, summary.status, f"{state.step}/{total or '?'}", fmt.num(state.loss),
            fmt.clock(state.started_t), fmt.duration(state.duration_s))


def record_of(summary: RunSummary) -> dict[str, Any]:
    """A run as ``tuitune runs --json`` prints it (README says each key)."""
    state = summary.state
    started = state.started_t
    return {
        "name": summary.name,
        "path": str(summary.path),
        "state": summary.status,
        "step": state.step,
        "total_steps": state.total_steps or summary.meta.max_steps,
        "loss": state.loss,
        "eval_loss": state.eval_loss,
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)) if started is not None else None,
        "started_t": started,
        "duration_s": state.duration_s,
        "model": state.model or summary.meta.model or None,
        "method": state.method or summary.meta.method or None,
        **dataclasses.asdict(figures_of(state)),
    }
