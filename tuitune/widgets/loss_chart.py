"""LossChart: the dashboard's chart, drawn with textual-plot, in views switched with ``v``.

The loss view draws the raw training loss dimmed, a smoothed line over it, evaluation points,
and a mark where a resumed attempt took over; the lr view the learning rate; the stage view the
stage's own metrics (DPO's reward margin and accuracy, KTO's KL…) when the run logs any.
"""

from __future__ import annotations

from collections.abc import Sequence

from textual import getters
from textual.app import ComposeResult
from textual.widget import Widget
from textual_plot import HiResMode, PlotWidget
from textual_plot.plot_widget import LegendLocation

Point = tuple[float, float]

SMOOTHING = 0.8
"""Weight of the past in the smoothed loss (TensorBoard's debiased moving average)."""
STAGE_METRICS = ("rewards/margins", "rewards/accuracies", "margin", "accuracy", "reward", "kl", "reward_std",
                 "rewards/chosen", "rewards/rejected")
"""Stage metrics the stage view prefers, in this order (the first two found are drawn)."""
COLOURS = ("bright_green", "bright_yellow", "bright_magenta", "bright_cyan", "bright_red", "bright_blue", "white",
           "green")
"""Line colours of a view of several named series, in order (Compare draws a run in each)."""


def smoothed(points: Sequence[Point], weight: float = SMOOTHING) -> list[Point]:
    """The debiased exponential moving average of ``points`` (the first value is not pulled to 0)."""
    out, average = [], 0.0
    for n, (x, y) in enumerate(points, 1):
        average = weight * average + (1 - weight) * y
        out.append((x, average / (1 - weight ** n)))
    return out


def stage_metrics(series: dict[str, Sequence[Point]]) -> list[str]:
    """The (at most two: the legend must leave room at 80x24) metric names the stage view draws."""
    names = [name for name in STAGE_METRICS if series.get(name)]
    names += [name for name in sorted(series) if name not in names and series[name]]
    return names[:2]


class LossChart(Widget):
    """A braille line chart of train loss (and eval loss when there is any).

    Data is pushed with ``set_series``; the plot is redrawn only when the series change.
    """

    DEFAULT_CSS = """
    LossChart { height: 1fr; min-height: 6; border-top: solid $panel-lighten-2; border-title-color: $text-muted; }
    LossChart > PlotWidget { height: 1fr; }
    """
    VIEWS = ("loss", "lr", "stage")

    plot_widget = getters.query_one(PlotWidget)

    def __init__(self, *, view: str = "loss", cycles: bool = True, id: str | None = None,
                 classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self._shown: tuple = ("loss", 0, 0, None, None, ())  # an empty chart is what shows at first
        self.view = view
        """The view on show: loss, lr or stage."""
        self.stage_view_elsewhere = False
        """Whether another chart shows the stage view (this one then does not offer it)."""
        self.cycles = cycles
        """Whether ``v`` switches this chart's view (a chart beside the main one keeps its own)."""
        self.has_stage_metrics = False
        """Whether the run logs stage metrics (the stage view is offered only then)."""
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

    def next_view(self) -> str:
        """Switch to the next view (the stage view only when there are stage metrics); returns its name."""
        views = self._offered()
        self.view = views[(views.index(self.view) + 1) % len(views)] if self.view in views else "loss"
        self._shown = ()
        return self.view

    def show(self, train: Sequence[Point], evals: Sequence[Point] = (), lr: Sequence[Point] = (),
             metrics: dict[str, Sequence[Point]] | None = None, resumes: Sequence[int] = ()) -> bool:
        """Show the current view of a run's series; returns whether it redrew."""
        metrics = metrics or {}
        self.has_stage_metrics = bool(stage_metrics(metrics))
        others = [v for v in self._offered() if v != self.view]
        names = {"stage": "stage metrics"}
        title = names.get(self.view, self.view)
        self.border_title = f"{title} · v: {'/'.join(others)}" if others and self.view in self._offered() else title
        if self.view == "lr" and lr:
            return self.set_lines({"lr": lr}, resumes)
        if self.view == "stage" and self.has_stage_metrics:
            return self.set_lines({name: metrics[name] for name in stage_metrics(metrics)}, resumes)
        return self.set_series(train, evals, resumes)

    def _offered(self) -> list[str]:
        """The views ``v`` cycles through on this chart."""
        if not self.cycles:
            return [self.view]
        return [v for v in self.VIEWS if v != "stage" or (self.has_stage_metrics and not self.stage_view_elsewhere)]

    def set_series(self, train: Sequence[Point], evals: Sequence[Point] = (), resumes: Sequence[int] = ()) -> bool:
        """The loss view: raw ``train`` dimmed, smoothed over it, ``evals`` as points; returns whether it redrew."""
        key = ("loss", len(train), len(evals), train[-1] if train else None, evals[-1] if evals else None,
               tuple(resumes))
        if key == self._shown:
            return False
        self._shown = key
        plot = self.plot_widget
        plot.clear()
        if train:
            xs, ys = zip(*thin(train, 2 * max(40, self.size.width)))
            plot.plot(xs, ys, line_style="grey50", hires_mode=HiResMode.BRAILLE)  # raw, dimmed
            xs, ys = zip(*thin(smoothed(train), 2 * max(40, self.size.width)))
            plot.plot(xs, ys, line_style="bright_cyan", hires_mode=HiResMode.BRAILLE, label="train (smoothed)")
        if evals:
            xs, ys = zip(*evals)
            plot.scatter(xs, ys, marker="●", marker_style="bright_magenta", label="eval")
        plot.show_legend(LegendLocation.TOPRIGHT, is_visible=bool(evals))
        self._finish(plot, [y for _, y in train] + [y for _, y in evals],
                     max([x for x, _ in train] + [x for x, _ in evals] + [1.0]), resumes)
        return True

    def set_lines(self, series: dict[str, Sequence[Point]], resumes: Sequence[int] = ()) -> bool:
        """A view of one line per named series (lr, stage metrics); returns whether it redrew."""
        key = (self.view, tuple((name, len(points), points[-1] if points else None) for name, points in series.items()),
               tuple(resumes))
        if key == self._shown:
            return False
        self._shown = key
        plot = self.plot_widget
        plot.clear()
        for (name, points), colour in zip(series.items(), COLOURS):
            if points:
                xs, ys = zip(*thin(points, 2 * max(40, self.size.width)))
                plot.plot(xs, ys, line_style=colour, hires_mode=HiResMode.BRAILLE, label=name)
        plot.show_legend(LegendLocation.BOTTOMLEFT if self.view == "lr" else LegendLocation.TOPLEFT, is_visible=True)
        values = [y for points in series.values() for _, y in points]
        self._finish(plot, values, max([x for points in series.values() for x, _ in points] + [1.0]), resumes)
        return True

    def _finish(self, plot: PlotWidget, ys: list[float], last: float, resumes: Sequence[int]) -> None:
        """Axes from step 0 (readable while there are few points), a flat line kept off the edges,
        and a yellow line at each resume."""
        plot.set_xlimits(0.0, last)
        low, high = (min(ys), max(ys)) if ys else (0.0, 1.0)
        if high - low <= 1e-3 * max(abs(low), abs(high)):  # flat (relative: a learning rate is ~1e-4)
            pad = abs(high) / 2 or 0.5
            low, high = low - pad, high + pad
            plot.set_ylimits(low, high)
        else:
            plot.set_ylimits(None, None)
        if ys:
            for step in resumes:
                if step:
                    plot.plot([float(step), float(step)], [low, high], line_style="yellow", label=None)
        self.redraws += 1


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
