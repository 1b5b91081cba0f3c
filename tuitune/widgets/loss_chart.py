"""LossChart: training and evaluation loss against step, drawn with textual-plot."""

from __future__ import annotations

from collections.abc import Sequence

from textual import getters
from textual.app import ComposeResult
from textual.widget import Widget
from textual_plot import HiResMode, PlotWidget

Point = tuple[float, float]


class LossChart(Widget):
    """A braille line chart of train loss (and eval loss when there is any).

    Data is pushed with ``set_series``; the plot is redrawn only when the series change.
    """

    DEFAULT_CSS = """
    LossChart { height: 1fr; min-height: 6; }
    LossChart > PlotWidget { height: 1fr; }
    """

    plot_widget = getters.query_one(PlotWidget)

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self._shown: tuple[int, int, Point | None, Point | None] = (0, 0, None, None)
        self.redraws = 0
        """How many times the plot was redrawn (for tests and benchmarks)."""

    def compose(self) -> ComposeResult:
        plot = PlotWidget(allow_pan_and_zoom=False)
        plot.can_focus = False
        yield plot

    def on_mount(self) -> None:
        plot = self.plot_widget
        plot.margin_top = 0
        plot.margin_bottom = 1  # tick labels only: every row counts at 80x24

    def set_series(self, train: Sequence[Point], evals: Sequence[Point] = ()) -> bool:
        """Show ``train`` and ``evals`` as (step, loss) points; returns whether it redrew."""
        key = (len(train), len(evals), train[-1] if train else None, evals[-1] if evals else None)
        if key == self._shown:
            return False
        self._shown = key
        plot = self.plot_widget
        plot.clear()
        if train:
            xs, ys = zip(*thin(train, 2 * max(40, self.size.width)))
            plot.plot(xs, ys, line_style="bright_cyan", hires_mode=HiResMode.BRAILLE, label="train")
        if evals:
            xs, ys = zip(*evals)
            plot.scatter(xs, ys, marker="●", marker_style="bright_magenta", label="eval")
        plot.show_legend(is_visible=bool(evals))
        # Steps from 0 keep the axis readable while there are only a few points.
        last = max([x for x, _ in train] + [x for x, _ in evals] + [1.0])
        plot.set_xlimits(0.0, last)
        ys = [y for _, y in train] + [y for _, y in evals]
        flat = ys and max(ys) - min(ys) < 1e-3
        plot.set_ylimits(*((min(ys) - 0.5, max(ys) + 0.5) if flat else (None, None)))
        self.redraws += 1
        return True


def thin(points: Sequence[Point], buckets: int) -> list[Point]:
    """At most about ``2 * buckets`` points with the same look: each bucket keeps its low and high.

    A braille chart has two dots per cell across, so more points than that only cost time;
    keeping each bucket's extremes keeps loss spikes visible.
    """
    if len(points) <= 2 * buckets:
        return list(points)
    size = len(points) / buckets
    out: list[Point] = []
    for b in range(buckets):
        chunk = points[int(b * size): int((b + 1) * size)]
        if chunk:
            low, high = min(chunk, key=lambda p: p[1]), max(chunk, key=lambda p: p[1])
            out.extend(sorted({low, high}))
    if out[-1] != points[-1]:
        out.append(points[-1])
    return out
