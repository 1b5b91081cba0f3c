"""CompareScreen: two or more runs side by side, their curves overlaid, their figures and the config keys that
differ between them.

Opened from the runs list on the runs marked with space (``c``) or by ``tuitune compare RUN RUN…``. Everything is
read from the run folders (tuitune.runs.figures) in a thread worker and read again every few seconds, so a run
still training moves. At 120x40 and larger the first view holds all three; on a smaller terminal they are tabs
(``tab`` or clicking a tab switches).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.text import Text
from textual import getters, on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.events import Resize
from textual.message import Message
from textual.widgets import DataTable, Footer, Static, Tab, Tabs
from textual.worker import get_current_worker

from engine.units import fmt_bytes
from tuitune import fmt
from tuitune.runs.figures import AXES, BUILTIN_METRICS, ComparedRun, config_diff, load_run, logged_metrics
from tuitune.screens.base import AppScreen
from tuitune.widgets.loss_chart import COLOURS, STAGE_METRICS, LossChart

TABS_BELOW = (120, 40)
"""A terminal narrower or shorter than this (columns, rows) shows the curves, figures and config diff as tabs."""
PANES = ("curves", "figures", "diff")
RELOAD_S = 5.0
"""Seconds between two readings of the run folders (a run that trains goes on)."""
MOST_STAGE_METRICS = 6
"""Stage metrics the figures table shows at most (GRPO logs twenty; ``tuitune runs --json`` has them all)."""
VALUE_WIDTH = 20
"""Widest config value shown (three runs' values fit beside the figures at 120 columns)."""
AXIS_NAMES = {"step": "step", "tokens": "tokens seen", "time": "seconds"}


def figure_rows(runs: list[ComparedRun]) -> list[tuple[str, list[str]]]:
    """The figures table: a label and one cell per run for each row."""
    def each(cell: Any) -> list[str]:
        return [cell(run) for run in runs]

    def at(value: float | None, step: int | None) -> str:
        return fmt.DASH if value is None else f"{fmt.num(value)} @{step}"

    rows = [
        ("state", each(lambda run: run.summary.status)),
        ("step", each(lambda run: f"{run.summary.state.step}/{run.summary.state.total_steps or '?'}")),
        ("final loss", each(lambda run: fmt.num(run.figures.final_loss))),
        ("best loss", each(lambda run: at(run.figures.best_loss, run.figures.best_loss_step))),
        ("best eval loss", each(lambda run: at(run.figures.best_eval_loss, run.figures.best_eval_step))),
        ("tokens/s", each(lambda run: fmt.num(run.figures.tokens_per_s, 5))),
        ("peak memory", each(lambda run: fmt_bytes(run.figures.peak_memory_bytes, fmt.DASH)
                             + (f" {run.figures.peak_memory_kind}" if run.figures.peak_memory_kind else ""))),
        ("duration", each(lambda run: fmt.duration(run.figures.duration_s))),
    ]
    names = {name for run in runs for name in run.figures.stage_metrics}
    ordered = [name for name in STAGE_METRICS if name in names] + sorted(names - set(STAGE_METRICS))
    for name in ordered[:MOST_STAGE_METRICS]:
        rows.append((name, each(lambda run, name=name: fmt.num(run.figures.stage_metrics.get(name)))))
    return rows


def shown_value(value: Any) -> str:
    """A config value in a cell: a dash when the run's config lacks the key, lists comma-joined, a long value cut
    at its start to VALUE_WIDTH (the end of a path or a hub id says the most)."""
    if value is None:
        return fmt.DASH
    text = (", ".join(map(str, value)) or "[]") if isinstance(value, list) else str(value)
    return text if len(text) <= VALUE_WIDTH else "…" + text[-(VALUE_WIDTH - 1):]


class CompareScreen(AppScreen):
    """Runs side by side: curves overlaid (one colour and a legend name each), figures, differing config keys.

    Args:
        runs: The run folders, two or more, in the order their columns show.
    """

    CSS_PATH = "compare.tcss"
    BINDINGS = [
        Binding("m", "next_metric", "Metric"),
        Binding("x", "next_axis", "Along"),
        Binding("tab", "next_tab", "Next tab", priority=True),  # only as tabs (check_action)
        Binding("shift+tab", "next_tab(-1)", "Previous tab", show=False, priority=True),
        Binding("r", "reload", "Reload", show=False),
        Binding("escape,b", "back", "Back"),
    ]

    title_line = getters.query_one("#title", Static)
    tabs = getters.query_one("#tabs", Tabs)
    chart = getters.query_one("#curves", LossChart)
    figures = getters.query_one("#figures", DataTable)
    diff = getters.query_one("#diff", DataTable)
    lower = getters.query_one("#lower", Vertical)

    @dataclass
    class Loaded(Message):
        """The run folders were read."""

        runs: list[ComparedRun]
        """The runs, in the screen's order."""

    def __init__(self, runs: list[Path]) -> None:
        super().__init__()
        self.run_dirs = list(runs)
        """The run folders compared."""
        self.runs: list[ComparedRun] = []
        """As last read."""
        self.metric = "loss"
        """The metric the curves show."""
        self.axis = "step"
        """What the curves are drawn against: one of tuitune.runs.figures.AXES."""
        self.pane = "curves"
        """The tab on show when the panes are tabs."""
        self.lines: dict[str, list[tuple[float, float]]] = {}
        """The curves drawn, by the legend's names."""
        self.loads = 0
        """Readings shown (tests wait on it)."""
        self._tables: tuple = ()

    def compose(self) -> ComposeResult:
        yield Static("Compare", id="title")
        yield Tabs(Tab("Curves", id="curves-tab"), Tab("Figures", id="figures-tab"),
                   Tab("Config diff", id="diff-tab"), id="tabs")
        yield LossChart(id="curves", cycles=False)
        with Vertical(id="lower"):
            yield DataTable(id="figures", cursor_type="none", zebra_stripes=True, classes="-focus-first")
            yield DataTable(id="diff", cursor_type="none", zebra_stripes=True)
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.lay_out()
        self.load_runs()

    @property
    def as_tabs(self) -> bool:
        """Whether the panes are tabs (the terminal is smaller than TABS_BELOW)."""
        width, height = self.app.size
        return width < TABS_BELOW[0] or height < TABS_BELOW[1]

    @on(Resize)
    def lay_out(self) -> None:
        """All three panes at TABS_BELOW and larger, else the chosen tab's alone."""
        tabs = self.as_tabs
        self.set_class(tabs, "-tabs")
        self.tabs.display = tabs
        self.chart.display = not tabs or self.pane == "curves"
        self.lower.display = not tabs or self.pane != "curves"
        self.figures.display = not tabs or self.pane == "figures"
        self.diff.display = not tabs or self.pane == "diff"
        self.refresh_bindings()

    @on(Tabs.TabActivated, "#tabs")
    def show_tab(self, event: Tabs.TabActivated) -> None:
        """A tab clicked (or chosen with the keys) shows its pane."""
        self.pane = (event.tab.id or "curves-tab").removesuffix("-tab")
        self.lay_out()
        if self.pane != "curves":
            (self.figures if self.pane == "figures" else self.diff).focus()

    def action_next_tab(self, by: int = 1) -> None:
        """The next (or with ``by`` -1 the previous) tab."""
        self.tabs.active = f"{PANES[(PANES.index(self.pane) + by) % len(PANES)]}-tab"

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Tab switches panes only while they are tabs (else it moves the focus, as everywhere)."""
        if action == "next_tab":
            return self.as_tabs
        return super().check_action(action, parameters)

    def action_back(self) -> None:
        """Back to the runs list."""
        self.dismiss()

    def action_reload(self) -> None:
        """Read the run folders now."""
        self.load_runs()

    @work(thread=True, exclusive=True, group="compare-read", exit_on_error=False, description="reading the runs")
    def load_runs(self) -> None:
        """Read the run folders, then again every RELOAD_S seconds until the screen goes."""
        worker = get_current_worker()
        while not worker.is_cancelled:
            self.post_message(self.Loaded([load_run(path) for path in self.run_dirs]))
            for _ in range(int(RELOAD_S / 0.1)):
                if worker.is_cancelled:
                    return
                time.sleep(0.1)

    @on(Loaded)
    def show_runs(self, message: Loaded) -> None:
        """Bring the curves and tables up to date."""
        self.runs = message.runs
        if self.metric not in self.metrics():
            self.metric = "loss"
        self.draw_curves()
        self.fill_tables()
        self.loads += 1

    def metrics(self) -> list[str]:
        """Every metric some compared run logged, the built-in ones first."""
        names = {name for run in self.runs for name in logged_metrics(run.summary.state)}
        return [name for name in BUILTIN_METRICS if name in names] + sorted(names - set(BUILTIN_METRICS))

    def action_next_metric(self) -> None:
        """Show the next metric some run logged."""
        metrics = self.metrics() or ["loss"]
        self.metric = metrics[(metrics.index(self.metric) + 1) % len(metrics)] if self.metric in metrics else "loss"
        self.draw_curves()

    def action_next_axis(self) -> None:
        """Draw the curves against the next of step, tokens seen and time."""
        self.axis = AXES[(AXES.index(self.axis) + 1) % len(AXES)]
        self.draw_curves()

    def colour(self, index: int) -> str:
        """The colour of the ``index``-th run's line, column headings and legend entry."""
        return COLOURS[index % len(COLOURS)]

    def draw_curves(self) -> None:
        """The chosen metric of every run against the chosen axis, one colour each, named in the legend."""
        names = [run.name if [r.name for r in self.runs].count(run.name) == 1 else str(run.summary.path)
                 for run in self.runs]
        self.lines = {name: run.curve(self.metric, self.axis) for name, run in zip(names, self.runs)}
        self.chart.set_lines(self.lines)
        self.chart.border_title = f"{self.metric} against {AXIS_NAMES[self.axis]} · m: metric · x: along"
        title = Text.assemble(("Compare ", "bold"), f"{len(self.runs)} runs: ")
        for index, name in enumerate(names):
            title.append_text(Text.assemble(", " if index else "", (name, self.colour(index))))
        self.title_line.update(title)

    def fill_tables(self) -> None:
        """The figures and the differing config keys, a column per run (rebuilt only when they changed)."""
        figures = figure_rows(self.runs)
        diff = config_diff([run.config for run in self.runs])
        shown = (tuple(run.name for run in self.runs), repr(figures), repr(diff))
        if shown == self._tables:
            return
        self._tables = shown
        diff_rows = [(key, [shown_value(value) for value in values]) for key, values in diff]
        self._fill(self.figures, "figure", figures)
        self._fill(self.diff, f"config ({len(diff)} keys differ)",
                   diff_rows or [("the configs are the same", ["" for _ in self.runs])])

    def _fill(self, table: DataTable, first: str, rows: list[tuple[str, list[str]]]) -> None:
        """Rows of a label and a cell per run under the runs' names in their colours; each column as wide as
        its widest cell (the table scrolls sideways when they do not fit)."""
        table.clear(columns=True)
        headings = [first] + [run.name for run in self.runs]
        for index, heading in enumerate(headings):
            cells = [label if index == 0 else values[index - 1] for label, values in rows]
            style = "bold" if index == 0 else f"bold {self.colour(index - 1)}"
            table.add_column(Text(heading, style=style), width=max(len(text) for text in [heading, *cells]))
        for label, cells in rows:
            table.add_row(Text(label, style="bold"), *cells)
