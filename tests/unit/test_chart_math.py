"""The chart's numbers: TensorBoard's smoothing, whole-step x labels that never run together, summary figures
kept out of the stage metrics."""

from __future__ import annotations

import math

import pytest

from tuitune.runs.state import RunState, fold
from tuitune.widgets.loss_chart import LogAxisFormatter, smoothed, step_ticks

SERIES = [3.2, 2.9, float("nan"), 3.1, 2.4, float("inf"), 2.2, 1.9, 2.05, 1.7, 1.75, 1.5]


def tensorboard(values: list[float], weight: float) -> list[float]:
    """TensorBoard's smoothed value, written in closed form (tensorflow/tensorboard, vz_line_chart2
    ``resmoothDataset``): the weighted sum of the finite values so far over the sum of their weights
    ``(1 - w) * w**age``, i.e. ``1 - w**n``; a value that is not finite is shown as it is and skipped;
    a constant series is shown as it is."""
    if all(v == values[0] for v in values):
        return list(values)
    out, finite = [], []
    for value in values:
        if not math.isfinite(value):
            out.append(value)
            continue
        finite.append(value)
        n = len(finite)
        total = sum((1 - weight) * weight ** (n - 1 - k) * v for k, v in enumerate(finite))
        out.append(total / (1 - weight ** n))
    return out


@pytest.mark.parametrize("weight", [0.0, 0.3, 0.6, 0.9, 0.99])
def test_smoothing_gives_the_numbers_tensorboard_shows(weight: float) -> None:
    points = [(float(step), value) for step, value in enumerate(SERIES, 1)]
    got = [y for _, y in smoothed(points, weight)]
    want = tensorboard(SERIES, weight)
    assert [x for x, _ in smoothed(points, weight)] == [x for x, _ in points]
    for g, w in zip(got, want, strict=True):
        assert repr(g) == repr(w) if not math.isfinite(w) else g == pytest.approx(w, rel=1e-12)
    if weight == 0.0:  # no smoothing: the values themselves
        assert [y for y in got if math.isfinite(y)] == pytest.approx([v for v in SERIES if math.isfinite(v)])


def test_smoothing_leaves_a_constant_series_and_an_empty_one() -> None:
    assert smoothed([(1.0, 0.5), (2.0, 0.5), (3.0, 0.5)], 0.99) == [(1.0, 0.5), (2.0, 0.5), (3.0, 0.5)]
    assert smoothed([], 0.6) == []


def layout(ticks: list[float], low: float, high: float, columns: int) -> str:
    """The labels placed as textual-plot places them: centred on their column, the last right-aligned."""
    row = [" "] * (columns + 8)
    for tick in ticks:
        label = f"{tick:.0f}"
        x = round((tick - low) / (high - low) * (columns - 1)) if high > low else 0
        start = x - len(label) + 1 if tick == high else x - len(label) // 2
        for i, char in enumerate(label):
            assert row[max(0, start + i)] == " ", f"labels run together: {''.join(row)!r} + {label}"
            row[max(0, start + i)] = char
    return "".join(row)


@pytest.mark.parametrize("columns", [6, 12, 16, 26, 36, 50, 80, 120])
@pytest.mark.parametrize("high", [1.0, 3.0, 45.0, 120.0, 1000.0, 12345.0])
def test_step_labels_are_whole_steps_that_never_run_together(columns: int, high: float) -> None:
    """At 60x20 the labels of an empty chart read 0.00.20.40.60.1.0: fractions of a step, no room between."""
    ticks = step_ticks(0.0, high, columns)
    assert step_ticks(0.0, 1.0, 16) == [0.0, 1.0]  # an empty chart's axis: steps 0 and 1, nothing between
    assert ticks and all(t == int(t) for t in ticks) and ticks == sorted(ticks)
    assert all(0 <= t <= high for t in ticks)
    row = layout(ticks, 0.0, high, columns)
    words = row.split()
    assert words == [f"{t:.0f}" for t in ticks]  # every label placed whole, apart from its neighbours


def test_log_axis_ticks_are_round_values() -> None:
    axis = LogAxisFormatter()
    ticks = axis.get_ticks(math.log10(0.02), math.log10(30.0))
    assert axis.get_labels_for_ticks(ticks) == ["0.1", "1", "10"]  # decades: 1, 2, 5 of each are too many
    narrow = axis.get_ticks(math.log10(1.4), math.log10(2.1))
    assert axis.get_labels_for_ticks(narrow) == ["1.4", "1.5", "1.6", "1.7", "1.8", "1.9", "2"]


def test_the_trainers_speed_figures_are_not_stage_metrics() -> None:
    """The stage view charted train_runtime and train_tokens_per_second (the Trainer's own figures)."""
    state = fold(RunState(), [
        {"type": "run_started", "total_steps": 4},
        {"type": "log", "step": 1, "loss": 2.0, "grad_norm": 0.5, "tokens_per_s": 100.0,
         "metrics": {"train_runtime": 0.05, "train_tokens_per_second": 1324.4, "kl": 0.1}},
        {"type": "log", "step": 2, "loss": 1.0, "metrics": {"train_runtime": 0.07, "total_flos": 1e9}},
    ])
    assert state.metric_series == {"kl": ((1.0, 0.1),)}
    assert state.log_series == {"grad_norm": ((1.0, 0.5),), "tokens_per_s": ((1.0, 100.0),)}
