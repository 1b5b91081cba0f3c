"""``tuitune plot RUN… [--metric M] [--out FILE]``: runs' curves of one metric as a PNG or SVG, with matplotlib
(imported here only: the app never loads it)."""

from __future__ import annotations

import argparse
import os
import re
import sys
import tempfile
from pathlib import Path

from tuitune.cli.common import Refusal, runs_root
from tuitune.cli.compare import chosen_runs

FORMATS = (".png", ".svg")
SIZE_IN = (8.0, 4.5)
DPI = 100
"""A PNG is SIZE_IN times DPI pixels (800x450)."""


def default_out(metric: str) -> Path:
    """``METRIC.png`` in the current folder, the metric's slashes and odd characters as ``_``."""
    return Path(re.sub(r"[^A-Za-z0-9._-]+", "_", metric) + ".png")


def run(args: argparse.Namespace) -> int:
    """Write the image; refused (exit 2) before drawing for a run not found, a metric no run logged, an
    unknown image type, a folder that is not there, or a file that exists already (never overwritten)."""
    from tuitune.runs.figures import load_run, logged_metrics

    out = Path(args.out).expanduser() if args.out else default_out(args.metric)
    if out.suffix.lower() not in FORMATS:
        raise Refusal(f"--out {out}: the image must end in .png or .svg")
    if not out.parent.absolute().is_dir():
        raise Refusal(f"--out {out}: no folder {out.parent.absolute()}")
    if os.path.lexists(out):
        raise Refusal(f"--out {out}: exists already (tuitune plot never overwrites a file; name another)")
    runs = [load_run(path) for path in chosen_runs(args.runs, runs_root(args))]
    drawn = [run for run in runs if args.metric in logged_metrics(run.summary.state)]
    if not drawn:
        there = list(dict.fromkeys(name for run in runs for name in logged_metrics(run.summary.state)))
        raise Refusal(f"no run logged metric {args.metric!r}; "
                      + (f"they logged: {', '.join(there)}" if there else "they logged none yet"))
    for run in runs:
        if run not in drawn:
            print(f"warning: {run.name} logged no {args.metric!r}: left out", file=sys.stderr)
    write_image(out, args.metric, [(run.name, run.curve(args.metric)) for run in drawn])
    print(f"wrote {out} ({args.metric} of {', '.join(run.name for run in drawn)})")
    return 0


def write_image(out: Path, metric: str, lines: list[tuple[str, list[tuple[float, float]]]]) -> None:
    """Draw one line per (name, points) against the step and write it to ``out`` (PNG or SVG by its suffix),
    whole or not at all, never over a file that appeared meanwhile. Each run's line carries its name as its
    SVG id."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=SIZE_IN, dpi=DPI, layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    for name, points in lines:
        xs, ys = zip(*points)
        (line,) = axes.plot(xs, ys, label=name, marker="o" if len(points) == 1 else None)
        line.set_gid(f"run:{name}")
    axes.set_xlabel("step")
    axes.set_ylabel(metric)
    axes.set_title(metric)
    axes.grid(True, alpha=0.3)
    axes.legend()
    fd, tmp = tempfile.mkstemp(dir=out.parent.absolute(), prefix=f".{out.name}.", suffix=out.suffix)
    try:
        with os.fdopen(fd, "wb") as file:
            figure.savefig(file, format=out.suffix.lower()[1:], dpi=DPI)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # as any file the user writes (mkstemp makes it 0600)
        os.link(tmp, out)  # fails if the file exists: a user's file is never replaced
    except FileExistsError:
        raise Refusal(f"--out {out}: exists already (tuitune plot never overwrites a file; name another)") from None
    finally:
        Path(tmp).unlink(missing_ok=True)
