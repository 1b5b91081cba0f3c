"""What Compare, ``tuitune runs --json`` and ``tuitune plot`` say about a run, in one place. No Textual.

A run's figures (:func:`figures_of`) come from its folded state alone, so the runs list, the JSON list and
Compare give the same numbers. Its curves can be drawn against the step, the tokens trained on so far or
the seconds since it started (:class:`Timeline`), and the config keys that differ between runs come from
:func:`config_diff`. Everything is rebuilt from the run folder.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine import protocol as p
from tuitune.runs.folder import RunSummary, read_config_mapping, summarize
from tuitune.runs.state import Point, RunState
from tuitune.runs.tail import EventTail

AXES = ("step", "tokens", "time")
"""What a curve can be drawn against: the optimizer step, tokens trained on so far, seconds since the start."""
BUILTIN_METRICS = ("loss", "eval_loss", "lr")
"""Metrics every run may log (train loss, evaluation loss, learning rate), before the stage's own."""


@dataclass(frozen=True)
class RunFigures:
    """A run's figures as of its last event; None where the run has not logged what one needs."""

    final_loss: float | None = None
    """The last logged train loss."""
    best_loss: float | None = None
    """The lowest logged train loss."""
    best_loss_step: int | None = None
    """The step of ``best_loss``."""
    best_eval_loss: float | None = None
    """The lowest evaluation loss."""
    best_eval_step: int | None = None
    """The step of ``best_eval_loss``."""
    tokens_per_s: float | None = None
    """Training throughput as last logged."""
    peak_memory_bytes: int | None = None
    """Peak memory the trainer reported at its end (the CUDA allocator's peak, or the process RSS on a CPU)."""
    peak_memory_kind: str | None = None
    """``cuda`` or ``rss``: what ``peak_memory_bytes`` measured."""
    duration_s: float | None = None
    """Seconds from the first event to the last."""
    stage_metrics: dict[str, float] = field(default_factory=dict)
    """The stage's own metrics (TRL's names: ``rewards/margins``…), each as last logged."""


def figures_of(state: RunState) -> RunFigures:
    """The figures of a run whose events folded into ``state``."""
    best = min(state.train_series, key=lambda point: point[1], default=None)
    best_eval = min(state.eval_series, key=lambda point: point[1], default=None)
    terminal = state.terminal or {}
    peak = terminal.get("peak_memory_bytes")
    return RunFigures(
        final_loss=state.train_series[-1][1] if state.train_series else None,
        best_loss=best[1] if best else None,
        best_loss_step=int(best[0]) if best else None,
        best_eval_loss=best_eval[1] if best_eval else None,
        best_eval_step=int(best_eval[0]) if best_eval else None,
        tokens_per_s=state.tokens_per_s,
        peak_memory_bytes=peak if isinstance(peak, int) else None,
        peak_memory_kind=terminal.get("peak_memory_kind") if isinstance(peak, int) else None,
        duration_s=state.duration_s,
        stage_metrics={name: points[-1][1] for name, points in state.metric_series.items() if points},
    )


def series(state: RunState, metric: str) -> tuple[Point, ...]:
    """(step, value) of ``metric``: ``loss``, ``eval_loss``, ``lr`` or a stage metric; empty when not logged."""
    builtin = {"loss": state.train_series, "eval_loss": state.eval_series, "lr": state.lr_series}
    return builtin.get(metric) or state.metric_series.get(metric) or ()


def logged_metrics(state: RunState) -> list[str]:
    """The metrics a run logged at least once: the built-in ones first, then the stage's by name."""
    return [name for name in (*BUILTIN_METRICS, *sorted(state.metric_series)) if series(state, name)]


@dataclass(frozen=True)
class Timeline:
    """Where each logged step of a run falls in time and in tokens (a resumed attempt's steps replace the
    earlier attempt's after its checkpoint, as in :class:`RunState`)."""

    seconds: dict[float, float] = field(default_factory=dict)
    """Step to seconds since the run's first event."""
    tokens: dict[float, float] = field(default_factory=dict)
    """Step to tokens trained on so far (``tokens_per_s`` times the seconds between logs, summed)."""

    def x_of(self, axis: str) -> dict[float, float] | None:
        """Step to x along ``axis`` (one of AXES); None for ``step`` itself."""
        return {"tokens": self.tokens, "time": self.seconds}.get(axis)


def timeline(events: Iterable[Any]) -> Timeline:
    """The timeline of a run from its events, oldest first (events of the wrong shape are skipped)."""
    seconds: dict[float, float] = {}
    tokens: dict[float, float] = {}
    first_t: float | None = None
    total = previous_elapsed = 0.0
    for raw in events:
        if not isinstance(raw, dict):
            continue
        event, _ = p.checked_fields(raw)
        t = event.get("t")
        if first_t is None and t is not None:
            first_t = float(t)
        kind = event.get("type")
        if kind == p.RUN_STARTED:  # a new attempt logs again from its checkpoint's step (0 when none)
            start = event.get("resumed_from_step") or 0
            for step in [step for step in seconds if step > start]:
                del seconds[step]
            for step in [step for step in tokens if step > start]:
                del tokens[step]
            total = tokens[max(tokens)] if tokens else 0.0
            previous_elapsed = 0.0
        elif kind == p.LOG and event.get("step") is not None:
            step = float(event["step"])
            elapsed, speed = event.get("elapsed_s"), event.get("tokens_per_s")
            if elapsed is not None:
                gap = elapsed - previous_elapsed if elapsed >= previous_elapsed else elapsed  # restarts at a resume
                if speed is not None and math.isfinite(speed):
                    total += max(0.0, speed * gap)
                    tokens[step] = total
                previous_elapsed = elapsed
            if t is not None and first_t is not None:
                seconds[step] = float(t) - first_t
    return Timeline(seconds, tokens)


def along(points: Sequence[Point], steps_to_x: dict[float, float] | None) -> list[Point]:
    """``points`` (step, value) with each step turned into x by ``steps_to_x`` (None: left as steps); a step
    between two known ones is placed linearly between them, one outside them is left out."""
    if steps_to_x is None:
        return list(points)
    known = sorted(steps_to_x)
    out = []
    for step, value in points:
        if step in steps_to_x:
            out.append((steps_to_x[step], value))
            continue
        at = bisect.bisect(known, step)
        if 0 < at < len(known):
            low, high = known[at - 1], known[at]
            share = (step - low) / (high - low)
            out.append((steps_to_x[low] + share * (steps_to_x[high] - steps_to_x[low]), value))
    return out


@dataclass(frozen=True)
class ComparedRun:
    """One run read whole for comparing: its summary, figures, timeline and config."""

    summary: RunSummary
    """Its folder, config summary, folded state and status."""
    figures: RunFigures
    """Its figures."""
    timeline: Timeline
    """Where its steps fall in time and tokens."""
    config: dict[str, Any]
    """Its ``config.yaml`` as a mapping over the defaults of every key (see :func:`with_defaults`)."""

    @property
    def name(self) -> str:
        """The run's name (its folder's)."""
        return self.summary.name

    def curve(self, metric: str, axis: str = "step") -> list[Point]:
        """``metric``'s points against ``axis`` (one of AXES)."""
        return along(series(self.summary.state, metric), self.timeline.x_of(axis))


def load_run(run_dir: str | Path) -> ComparedRun:
    """Read a run folder whole for Compare and ``tuitune plot``."""
    summary = summarize(run_dir)
    config, _ = read_config_mapping(run_dir)
    return ComparedRun(summary, figures_of(summary.state), timeline(EventTail(run_dir).read_all()),
                       with_defaults(config))


def with_defaults(config: dict[str, Any]) -> dict[str, Any]:
    """``config`` over the defaults of every config key: a key a run's config.yaml lacks (one written before the
    key existed) counts as its default, so only settings that differ show as differences."""
    from engine.config import RunConfig

    def merged(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
        out = dict(base)
        for key, value in over.items():
            both = isinstance(value, dict) and isinstance(base.get(key), dict)
            out[key] = merged(base[key], value) if both else value
        return out

    return merged(RunConfig().model_dump(mode="json"), config)


def flatten(config: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """A nested mapping as dotted keys (``train.lr``); lists stay values."""
    out: dict[str, Any] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            out.update(flatten(value, name + "."))
        else:
            out[name] = value
    return out


def config_diff(configs: Sequence[dict[str, Any]]) -> list[tuple[str, list[Any]]]:
    """The dotted config keys whose values are not the same in every config, each with its value per config
    (None where a config lacks the key or leaves it unset: the two are alike), in the order the keys first appear."""
    flat = [flatten(config) for config in configs]
    keys = list(dict.fromkeys(key for config in flat for key in config))
    out = []
    for key in keys:
        values = [config.get(key) for config in flat]
        if any(value != values[0] for value in values[1:]):
            out.append((key, values))
    return out
