"""DataStats: progress and statistics of a data report (records, turns, token lengths vs cutoff)."""

from __future__ import annotations

from typing import Any

from textual import getters
from textual.containers import Vertical
from textual.widgets import ProgressBar, Static

from engine.data.report import summary_lines

BAR_WIDTH = 24


def histogram_lines(tokens: dict[str, Any]) -> list[str]:
    """Token-length histogram as text bars, one bin a line, the over-cutoff bin last."""
    top = max((b["count"] for b in tokens["histogram"]), default=0) or 1
    lines = []
    for bin_ in tokens["histogram"]:
        label = f"> {tokens['cutoff']}" if bin_["upto"] is None else f"≤ {bin_['upto']}"
        bar = "█" * round(BAR_WIDTH * bin_["count"] / top)
        lines.append(f"{label:>8} {bar:<{BAR_WIDTH}} {bin_['count']:,}")
    return lines


class DataStats(Vertical):
    """Progress bar and summary of the background report; data is pushed in by the screen."""

    DEFAULT_CSS = """
    DataStats { height: auto; }
    DataStats > ProgressBar { margin: 0 0 1 0; }
    DataStats > #stats-phase, DataStats > #stats-text { height: auto; }
    """

    phase_line = getters.query_one("#stats-phase", Static)
    progress_bar = getters.query_one("#stats-progress", ProgressBar)
    stats_text = getters.query_one("#stats-text", Static)

    def compose(self):
        """Phase line, progress bar, statistics text."""
        yield Static("Statistics appear once a file is open.", id="stats-phase", markup=False)
        yield ProgressBar(total=1.0, show_eta=False, id="stats-progress")
        yield Static("", id="stats-text", markup=False)

    def show_progress(self, phase: str, fraction: float, records: int) -> None:
        """The report is at ``fraction`` of the ``phase`` pass after ``records`` records."""
        what = "checking records" if phase == "check" else "tokenising with the chat template"
        self.phase_line.update(f"{what}: {records:,} records")
        self.progress_bar.update(total=1.0, progress=fraction)

    def show_stats(self, checked: dict[str, Any] | None, tokens: dict[str, Any] | None, note: str = "") -> None:
        """Show the summary lines of the ``checked`` and ``token_stats`` events, and ``note``."""
        lines = summary_lines(checked, tokens)[:2]
        if tokens:
            lines += ["", "token lengths:", *histogram_lines(tokens)]
        if note:
            lines += ["", note]
        self.stats_text.update("\n".join(lines))

    def finish(self, message: str) -> None:
        """The report ended: say how."""
        self.phase_line.update(message)
        self.progress_bar.update(total=1.0, progress=1.0)
