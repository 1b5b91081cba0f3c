"""LossChart: the dashboard's chart (and Compare's), drawn with textual-plot, with its controls.

The loss view draws the raw training loss dimmed, a smoothed line over it, evaluation points,
and a mark where a resumed attempt took over; the lr view the learning rate; the stage view the
stage's own metrics (DPO's reward margin and accuracy, KTO's KL…) when the run logs any; a picked
metric (``m``) any other series the run logs. ``set_lines`` draws one line per named series
(Compare: one per run).

The controls work wherever the chart is (its keys need it focused): ``+``/``-`` and the mouse
wheel zoom the steps, ``<``/``>`` and the sideways (or shift+) wheel pan them, and the view follows
the latest step until a pan leaves it (``f`` returns); ``l`` puts y on a log scale; ``[``/``]`` move
a cursor that reads every line at its step (a click puts it there, ``i`` hides it); ``w``/``W`` set the
smoothing weight; ``m`` lists the run's logged series to chart one.
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from textual import events, getters
from textual.app import ComposeResult
from textual.binding import Binding
from textual.message import Message
from textual.widget import Widget
from textual.widgets import OptionList, Static
from textual.widgets.option_list import Option
from textual_plot import AxisFormatter, HiResMode, NumericAxisFormatter, PlotWidget
from textual_plot.plot_widget import LegendLocation

Point = tuple[float, float]

SMOOTHING = 0.8
"""Weight of the past in the smoothed lines at first (TensorBoard's debiased moving average)."""
SMOOTHING_WEIGHTS = (0.0, 0.6, 0.8, 0.9, 0.95, 0.99)
"""The weights ``w`` steps through (0: no smoothing)."""
STAGE_METRICS = ("rewards/margins", "rewards/accuracies", "margin", "accuracy", "reward", "kl", "reward_std",
                 "rewards/chosen", "rewards/rejected")
"""Stage metrics the stage view prefers, in this order (the first two found are drawn)."""
COLOURS = ("bright_green", "bright_yellow", "bright_magenta", "bright_cyan", "bright_red", "bright_blue", "white",
           "green")
"""Line colours of a view of several named series, in order (Compare draws a run in each)."""
ZOOM = 1.5
"""How much one zoom step narrows (or widens) the steps shown."""
LEAST_SPAN = 4.0
"""The fewest steps a zoom shows."""


def smoothed(points: Sequence[Point], weight: float = SMOOTHING) -> list[Point]:
    """TensorBoard's smoothing of ``points``: a moving average debiased so the first value is not pulled to 0.

    As TensorBoard's line chart does (``resmoothDataset`` in vz_line_chart2): a value that is not
    finite stays as it is and does not count, and a constant series stays as it is.
    """
    values = [y for _, y in points]
    if all(v == values[0] for v in values):
        return list(points)
    out, last, counted = [], 0.0, 0
    for x, y in points:
        if not math.isfinite(y):
            out.append((x, y))
            continue
        last = last * weight + (1 - weight) * y
        counted += 1
        out.append((x, last / (1 - weight ** counted) if weight != 1 else last))
    return out


def stage_metrics(series: dict[str, Sequence[Point]]) -> list[str]:
    """The (at most two: the legend must leave room at 80x24) metric names the stage view draws."""
    names = [name for name in STAGE_METRICS if series.get(name)]
    names += [name for name in sorted(series) if name not in names and series[name]]
    return names[:2]


def step_ticks(low: float, high: float, columns: int) -> list[float]:
    """Whole-step ticks from ``low`` to ``high`` at 1, 2 or 5 times a power of ten, as many as
    ``columns`` hold with a space either side of each label."""
    if high <= low or columns <= 0:
        return [float(round(low))]
    label = len(f"{max(abs(low), abs(high)):.0f}") + 2
    room = max(1, columns // label)
    interval, power = 1.0, 1.0
    while True:
        for m in (1, 2, 5):
            interval = m * power
            first = math.ceil(low / interval) * interval
            if int((high - first) // interval) + 1 <= room:
                return [first + k * interval for k in range(int((high - first) // interval) + 1)]
        power *= 10


class StepAxisFormatter(NumericAxisFormatter):
    """The x axis of steps: whole numbers, only as many as the axis has room for (never run together)."""

    def __init__(self, columns: Callable[[], int]) -> None:
        self.columns = columns
        """How many columns the axis has now."""

    def get_ticks(self, min_: float, max_: float, max_ticks: int = 8) -> list[float]:
        """Whole-step ticks that fit the axis's width."""
        return step_ticks(min_, max_, self.columns())

    def get_labels_for_ticks(self, ticks: Sequence[float]) -> list[str]:
        """Steps as whole numbers."""
        return [f"{tick:.0f}" for tick in ticks]


class LogAxisFormatter(AxisFormatter):
    """A y axis drawn as log10 of the values, labelled with the values (1, 2, 5 times powers of ten)."""

    def get_ticks(self, min_: float, max_: float, max_ticks: int = 8) -> list[float]:
        """Ticks at round values, placed at their log10."""
        low, high = 10 ** min_, 10 ** max_
        if max_ - min_ < 1:
            values = NumericAxisFormatter().get_ticks(low, high, max_ticks)
        else:
            decades = range(math.floor(min_), math.ceil(max_) + 1)
            values = [m * 10.0 ** p for p in decades for m in (1, 2, 5)]
            if sum(low <= v <= high for v in values) > max_ticks:
                values = [10.0 ** p for p in decades]
        return [math.log10(v) for v in values if v > 0 and low <= v <= high]

    def get_labels_for_ticks(self, ticks: Sequence[float]) -> list[str]:
        """The values the ticks stand for."""
        return [f"{10 ** tick:.3g}" for tick in ticks]


class StepPlot(PlotWidget):
    """textual-plot's PlotWidget whose mouse wheel zooms the chart's steps (x) only, through the chart;
    a sideways wheel (or shift with the wheel) pans them."""

    @dataclass
    class Wheeled(Message):
        """The wheel turned over the plot: zoom in or out around ``step`` (None: the middle), or pan."""

        step: float | None
        zoom_in: bool
        pan: int = 0
        """-1 or 1 to pan to earlier or later steps instead of zooming."""

    def on_mouse_scroll_down(self, event: events.MouseScrollDown) -> None:
        """Wheel down: zoom in (textual-plot's direction); with shift, pan to later steps."""
        self._wheel(event, True, 1 if event.shift else 0)

    def on_mouse_scroll_up(self, event: events.MouseScrollUp) -> None:
        """Wheel up: zoom out; with shift, pan to earlier steps."""
        self._wheel(event, False, -1 if event.shift else 0)

    def on_mouse_scroll_right(self, event: events.MouseScrollRight) -> None:
        """Sideways wheel: pan to later steps."""
        self._wheel(event, False, 1)

    def on_mouse_scroll_left(self, event: events.MouseScrollLeft) -> None:
        """Sideways wheel: pan to earlier steps."""
        self._wheel(event, False, -1)

    def _wheel(self, event: events.MouseEvent, zoom_in: bool, pan: int) -> None:
        event.prevent_default()  # PlotWidget's own handler would zoom y too
        event.stop()
        self.post_message(self.Wheeled(self.step_at(event.screen_x, event.screen_y), zoom_in, pan))

    def step_at(self, screen_x: int, screen_y: int) -> float | None:
        """The step under a point of the screen, or None off the plot."""
        canvas = self.query_one("#plot")
        if not canvas.region.contains(screen_x, screen_y):
            return None
        return self.get_coordinate_from_pixel(screen_x - canvas.region.x, screen_y - canvas.region.y)[0]


class LossChart(Widget, can_focus=True):
    """A braille line chart of train loss (and eval loss when there is any), or of other series.

    Data is pushed with ``show``, ``set_series`` or ``set_lines``; the plot is redrawn only when
    the series or the controls change.
    """

    DEFAULT_CSS = """
    LossChart { height: 1fr; min-height: 6; border-top: solid $panel-lighten-2; border-title-color: $text-muted; }
    LossChart > StepPlot { height: 1fr; }
    LossChart > #reading { height: auto; max-height: 3; display: none; color: $text; padding: 0 1; }
    LossChart.-cursor > #reading { display: block; }
    LossChart > #picker { display: none; dock: top; height: auto; max-height: 12; width: 40; max-width: 100%; }
    LossChart.-picking > #picker { display: block; }
    """
    BINDINGS = [
        Binding("plus,equals_sign", "zoom(True)", "Zoom in (steps)", show=False),
        Binding("minus", "zoom(False)", "Zoom out (steps)", show=False),
        Binding("less_than_sign", "pan(-1)", "Pan to earlier steps", show=False),
        Binding("greater_than_sign", "pan(1)", "Pan to later steps", show=False),
        Binding("f", "follow", "Follow the latest step", show=False),
        Binding("l", "log_scale", "Log scale (y)", show=False),
        Binding("left_square_bracket", "move_cursor(-1)", "Cursor to the previous step", show=False),
        Binding("right_square_bracket", "move_cursor(1)", "Cursor to the next step", show=False),
        Binding("i", "hide_cursor", "Hide the cursor", show=False),
        Binding("m", "pick_metric", "Metric to chart", show=False),
        Binding("w", "next_smoothing(1)", "More smoothing", show=False),
        Binding("W", "next_smoothing(-1)", "Less smoothing", show=False),
        Binding("escape", "close_picker", "Close the metric list", show=False),
    ]
    VIEWS = ("loss", "lr", "stage")

    @dataclass
    class MetricPicked(Message):
        """A series was picked from the chart's list (``m``)."""

        chart: LossChart
        name: str

    plot_widget = getters.query_one(StepPlot)
    reading = getters.query_one("#reading", Static)
    picker = getters.query_one("#picker", OptionList)

    def __init__(self, *, view: str = "loss", cycles: bool = True, id: str | None = None,
                 classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self._shown: tuple = ()
        self._data: tuple = ((), (), (), {}, (), {})
        self._again: Callable[[], object] = lambda: self.show(*self._data)
        self._in_show = False
        self._lines: dict[str, Sequence[Point]] = {}
        self.view = view
        """The view on show: loss, lr, stage or metric (the picked one)."""
        self.metric: str | None = None
        """The series the metric view draws (picked with ``m``)."""
        self.stage_view_elsewhere = False
        """Whether another chart shows the stage view (this one then does not offer it)."""
        self.cycles = cycles
        """Whether ``v`` switches this chart's view (a chart beside the main one keeps its own)."""
        self.has_stage_metrics = False
        """Whether the run logs stage metrics (the stage view is offered only then)."""
        self.redraws = 0
        """How many times the plot was redrawn (for tests and benchmarks)."""
        self.smoothing = SMOOTHING
        """Weight of the past in the smoothed lines (0: none)."""
        self.log_y = False
        """Whether y is on a log scale."""
        self.span: float | None = None
        """How many steps the view shows (None: all of them)."""
        self.end: float | None = None
        """The last step shown when panned; None while following the latest step."""
        self.cursor: float | None = None
        """The step the cursor reads (None: no cursor)."""
        self.limits: tuple[float, float] = (0.0, 1.0)
        """The steps shown, first and last."""
        self.choices: list[str] | None = None
        """What ``m`` lists when the owner says (``offer_metrics``); None: the series pushed with ``show``."""
        self._shown = self._series_key((), (), (), "train")  # an empty chart is what shows at first

    def compose(self) -> ComposeResult:
        plot = StepPlot(allow_pan_and_zoom=False)
        plot.can_focus = False
        yield plot
        yield Static("", id="reading", markup=False)
        yield OptionList(id="picker")

    def on_mount(self) -> None:
        plot = self.plot_widget
        plot.margin_top = 0
        plot.margin_bottom = 1  # tick labels only: every row counts at 80x24
        plot.set_x_formatter(StepAxisFormatter(lambda: max(1, plot.size.width - plot.margin_left)))

    @property
    def following(self) -> bool:
        """Whether new steps keep the view at the end."""
        return self.end is None

    def next_view(self) -> str:
        """Switch to the next view (the stage view only when there are stage metrics); returns its name."""
        views = self._offered()
        self.view = views[(views.index(self.view) + 1) % len(views)] if self.view in views else "loss"
        self._shown = ()
        return self.view

    def show(self, train: Sequence[Point], evals: Sequence[Point] = (), lr: Sequence[Point] = (),
             metrics: dict[str, Sequence[Point]] | None = None, resumes: Sequence[int] = (),
             others: dict[str, Sequence[Point]] | None = None) -> bool:
        """Show the current view of a run's series; returns whether it redrew.

        ``others`` are the run's further logged series (grad_norm, tokens_per_s) a metric view can draw.
        """
        metrics, others = metrics or {}, others or {}
        self._data = (train, evals, lr, metrics, resumes, others)
        self._again = lambda: self.show(*self._data)
        self._in_show = True
        try:
            return self._show_view(train, evals, lr, metrics, resumes, others)
        finally:
            self._in_show = False

    def _show_view(self, train: Sequence[Point], evals: Sequence[Point], lr: Sequence[Point],
                   metrics: dict[str, Sequence[Point]], resumes: Sequence[int],
                   others: dict[str, Sequence[Point]]) -> bool:
        self.has_stage_metrics = bool(stage_metrics(metrics))
        if self.view == "metric":
            points = {**others, **metrics}.get(self.metric or "")
            self.border_title = self._title(self.metric or "")
            if points:
                return self.set_series(points, (), resumes, label=self.metric or "")
            return self.set_lines({}, resumes)
        others_offered = [v for v in self._offered() if v != self.view]
        title = {"stage": "stage metrics"}.get(self.view, self.view)
        self.border_title = self._title(
            f"{title} · v: {'/'.join(others_offered)}" if others_offered and self.view in self._offered() else title)
        if self.view == "lr" and lr:
            return self.set_lines({"lr": lr}, resumes)
        if self.view == "stage" and self.has_stage_metrics:
            return self.set_lines({name: metrics[name] for name in stage_metrics(metrics)}, resumes)
        return self.set_series(train, evals, resumes)

    def _title(self, what: str) -> str:
        """The border title: the view, then the controls that are not at their defaults."""
        notes = [what] if what else []
        if self.smoothing != SMOOTHING:
            notes.append(f"smooth {self.smoothing:g}")
        if self.log_y:
            notes.append("log")
        if self.span is not None or not self.following:
            notes.append("zoom" + ("" if self.following else " · f: follow"))
        return " · ".join(notes)

    def offer_metrics(self, names: Sequence[str]) -> None:
        """The names ``m`` lists on a chart fed with ``set_lines`` (Compare: the metrics its runs log);
        picking one posts ``MetricPicked`` for the owner to push that metric's lines."""
        self.choices = list(names)

    def metric_names(self) -> list[str]:
        """Every series the run logs, for the picker: loss, lr, then the others by name."""
        if self.choices is not None:
            return list(self.choices)
        train, _, lr, metrics, _, others = self._data
        names = ["loss"] * bool(train) + ["lr"] * bool(lr)
        return names + sorted(name for name, points in {**others, **metrics}.items() if points)

    def _offered(self) -> list[str]:
        """The views ``v`` cycles through on this chart."""
        if not self.cycles:
            return [self.view]
        return [v for v in self.VIEWS if v != "stage" or (self.has_stage_metrics and not self.stage_view_elsewhere)]

    def _controls(self) -> tuple:
        return (self.smoothing, self.log_y, self.span, self.end, self.cursor, self.view, self.metric)

    def _series_key(self, train: Sequence[Point], evals: Sequence[Point], resumes: Sequence[int], label: str) -> tuple:
        """What the loss view's look depends on: redrawn only when it changes."""
        return ("loss", len(train), len(evals), train[-1] if train else None, evals[-1] if evals else None,
                tuple(resumes), label, self._controls())

    def set_series(self, train: Sequence[Point], evals: Sequence[Point] = (), resumes: Sequence[int] = (),
                   label: str = "train") -> bool:
        """The loss view: raw ``train`` dimmed, smoothed over it, ``evals`` as points; returns whether it redrew."""
        key = self._series_key(train, evals, resumes, label)
        if key == self._shown:
            return False
        self._shown = key
        plot = self.plot_widget
        plot.clear()
        smooth = smoothed(train, self.smoothing) if train and self.smoothing else list(train)
        self._lines = {label: train, "smoothed": smooth} if self.smoothing else {label: train}
        if evals:
            self._lines["eval"] = evals
        self.limits = self.limits_for(max([x for x, _ in train] + [x for x, _ in evals] + [1.0]))
        if train:
            if self.smoothing:
                self._plot(plot, train, "grey50", None)  # raw, dimmed
            self._plot(plot, smooth, "bright_cyan", f"{label} (smoothed)" if self.smoothing else label)
        if evals:
            xs, ys = self._xy(evals)
            if xs:
                plot.scatter(xs, ys, marker="●", marker_style="bright_magenta", label="eval")
        plot.show_legend(LegendLocation.TOPRIGHT, is_visible=bool(evals))
        self._finish(plot, [y for _, y in train] + [y for _, y in evals], resumes)
        return True

    def set_lines(self, series: dict[str, Sequence[Point]], resumes: Sequence[int] = (), smooth: bool = False) -> bool:
        """One line per named series (lr, stage metrics, Compare's runs); returns whether it redrew.

        ``smooth`` draws each line smoothed with the chart's weight (the cursor reads both values).
        """
        if not self._in_show:  # Compare pushes its lines itself: the controls draw them again
            self._again = lambda: self.set_lines(series, resumes, smooth)
        key = (self.view, tuple((name, len(points), points[-1] if points else None) for name, points in series.items()),
               tuple(resumes), smooth, self._controls())
        if key == self._shown:
            return False
        self._shown = key
        plot = self.plot_widget
        plot.clear()
        self._lines = {}
        self.limits = self.limits_for(max([x for points in series.values() for x, _ in points] + [1.0]))
        for (name, points), colour in zip(series.items(), COLOURS * (1 + len(series) // len(COLOURS))):
            drawn = smoothed(points, self.smoothing) if smooth and points and self.smoothing else points
            self._lines[name] = points
            if drawn is not points:
                self._lines[f"{name} (smoothed)"] = drawn
            if points:
                self._plot(plot, drawn, colour, name)
        plot.show_legend(LegendLocation.BOTTOMLEFT if self.view == "lr" else LegendLocation.TOPLEFT,
                         is_visible=bool(series))
        values = [y for points in series.values() for _, y in points]
        self._finish(plot, values, resumes)
        return True

    def _xy(self, points: Sequence[Point]) -> tuple[list[float], list[float]]:
        """The points as drawn: y as log10 on a log scale (where positive), only finite ones."""
        shown = [(x, math.log10(y) if self.log_y else y) for x, y in points
                 if math.isfinite(y) and (y > 0 or not self.log_y)]
        return [x for x, _ in shown], [y for _, y in shown]

    def _plot(self, plot: PlotWidget, points: Sequence[Point], colour: str, label: str | None) -> None:
        """One line, only its points in and near the steps shown (a zoomed view costs no more than the whole)."""
        low, high = self.limits
        inside = [p for p in points if low - (high - low) / 4 <= p[0] <= high + (high - low) / 4] or list(points)
        xs, ys = self._xy(thin(inside, 2 * max(40, self.size.width)))
        if xs:
            plot.plot(xs, ys, line_style=colour, hires_mode=HiResMode.BRAILLE, label=label)

    def limits_for(self, last: float) -> tuple[float, float]:
        """The steps shown when the latest is ``last``: all from 0, or the zoomed window (at the end when following)."""
        if self.span is None or self.span >= last:
            return 0.0, last
        high = last if self.end is None else min(self.end, last)
        low = max(0.0, high - self.span)
        return low, low + self.span

    def _finish(self, plot: PlotWidget, ys: list[float], resumes: Sequence[int]) -> None:
        """Axes over the steps shown, a flat line kept off the edges, a yellow line at each resume and the cursor."""
        plot.set_xlimits(*self.limits)
        plot.set_y_formatter(LogAxisFormatter() if self.log_y else NumericAxisFormatter())
        ys = [math.log10(y) if self.log_y else y for y in ys if math.isfinite(y) and (y > 0 or not self.log_y)]
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
        if self.cursor is not None:
            plot.add_v_line(self.cursor, line_style="white")
        self.reading.update(self.read_cursor())
        self.set_class(self.cursor is not None, "-cursor")
        self.redraws += 1

    def steps(self) -> list[float]:
        """Every step a line has a point at, in order."""
        return sorted({x for points in self._lines.values() for x, _ in points})

    def values_at(self, step: float) -> dict[str, float]:
        """Each line's value at ``step`` (its latest point at or before it; none before its first)."""
        out = {}
        for name, points in self._lines.items():
            xs = [x for x, _ in points]
            at = bisect_left(xs, step + 1e-9) - 1
            if at >= 0:
                out[name] = points[at][1]
        return out

    def read_cursor(self) -> str:
        """What the cursor reads: its step and each line's value there; empty without a cursor."""
        if self.cursor is None:
            return ""
        values = "  ".join(f"{name} {value:.4g}" for name, value in self.values_at(self.cursor).items())
        return f"step {self.cursor:.0f}  {values}"

    def redraw(self) -> None:
        """Draw again with the current controls."""
        self._shown = ()
        self._again()

    def _last_step(self) -> float:
        return max([x for points in self._lines.values() for x, _ in points] + [1.0])

    def action_zoom(self, zoom_in: bool, around: float | None = None) -> None:
        """Show fewer (or more) steps, around ``around`` (the mouse) or keeping the end when following."""
        last = self._last_step()
        low, high = self.limits_for(last)
        span = high - low
        new = max(LEAST_SPAN, span / ZOOM) if zoom_in else span * ZOOM
        if new >= last:
            self.span, self.end = None, None
        else:
            if around is not None or not self.following:
                centre = (low + high) / 2 if around is None else around
                share = 0.5 if around is None or span <= 0 else (around - low) / span
                end = min(last, max(new, centre + new * (1 - share)))
                self.end = None if end >= last and self.following else end
            self.span = new
        self.redraw()

    def action_pan(self, direction: int) -> None:
        """Move the steps shown by a quarter of the view; back at the end it follows again."""
        last = self._last_step()
        low, high = self.limits_for(last)
        if self.span is None:
            return
        end = high + direction * self.span / 4
        self.end = None if end >= last else max(self.span, end)
        self.redraw()

    def action_follow(self) -> None:
        """Follow the latest step again (keeping the zoom)."""
        self.end = None
        self.redraw()

    def action_log_scale(self) -> None:
        """Switch y between linear and log scale."""
        self.log_y = not self.log_y
        self.redraw()

    def action_next_smoothing(self, direction: int = 1) -> None:
        """The next (or, with -1, the previous) smoothing weight of SMOOTHING_WEIGHTS, round the ends."""
        if direction > 0:
            after = [w for w in SMOOTHING_WEIGHTS if w > self.smoothing]
            self.smoothing = after[0] if after else SMOOTHING_WEIGHTS[0]
        else:
            before = [w for w in SMOOTHING_WEIGHTS if w < self.smoothing]
            self.smoothing = before[-1] if before else SMOOTHING_WEIGHTS[-1]
        self.notify(f"smoothing {self.smoothing:g}" if self.smoothing else "no smoothing", timeout=2)
        self.redraw()

    def action_move_cursor(self, direction: int) -> None:
        """Put the cursor on the previous or next step that has a point (first: the last step shown)."""
        steps = [s for s in self.steps() if self.limits[0] <= s <= self.limits[1]] or self.steps()
        if not steps:
            return
        if self.cursor is None:
            self.cursor = steps[-1]
        else:
            at = bisect_left(steps, self.cursor)
            at = at - 1 if direction < 0 else at + (at < len(steps) and steps[at] == self.cursor)
            self.cursor = steps[max(0, min(len(steps) - 1, at))]
        self.redraw()

    def action_hide_cursor(self) -> None:
        """Take the cursor away."""
        self.cursor = None
        self.redraw()

    def action_pick_metric(self) -> None:
        """List the run's logged series over the chart: Enter charts one, Esc closes the list."""
        names = self.metric_names()
        if not names:
            return
        current = self.metric if self.view == "metric" else self.view
        self.picker.set_options([Option(name, id=name) for name in names])
        self.picker.highlighted = names.index(current) if current in names else 0
        self.add_class("-picking")
        self.picker.focus()

    def action_close_picker(self) -> None:
        """Close the metric list and keep the chart as it is."""
        self.remove_class("-picking")
        self.focus()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Esc closes the metric list while it is open; otherwise it is the screen's (back)."""
        if action == "close_picker":
            return self.has_class("-picking")
        return True

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        """Chart the series picked from the list."""
        event.stop()
        self.action_close_picker()
        self.pick(event.option.id)

    def pick(self, name: str | None) -> None:
        """Chart ``name``: loss and lr are views of their own, any other series the metric view
        (on a chart whose owner offered the names, the owner draws it on ``MetricPicked``)."""
        if name is None:
            return
        self.post_message(self.MetricPicked(self, name))
        if self.choices is not None:
            self.metric = name
            return
        if name in ("loss", "lr"):
            self.view, self.metric = name, None
        else:
            self.view, self.metric = "metric", name
        self.cursor = None
        self.redraw()

    def on_step_plot_wheeled(self, message: StepPlot.Wheeled) -> None:
        """The wheel zooms the steps around the one under the mouse, or pans them."""
        if message.pan:
            self.action_pan(message.pan)
        else:
            self.action_zoom(message.zoom_in, message.step)

    def on_click(self, event: events.Click) -> None:
        """A click on the plot puts the cursor on the nearest step there."""
        step = self.plot_widget.step_at(event.screen_x, event.screen_y)
        steps = self.steps()
        if step is None or not steps:
            return
        self.cursor = min(steps, key=lambda s: abs(s - step))
        self.redraw()


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
