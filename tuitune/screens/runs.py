"""RunsScreen, the home screen: every run in the runs folder, refreshed in the background.

Enter opens a run's dashboard; R resumes a stopped, failed or lost run that has a checkpoint
and opens its dashboard to follow it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from rich.text import Text
from textual import getters, on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.message import Message
from textual.widgets import DataTable, Footer, Static
from textual.worker import get_current_worker

from tuitune.runs.folder import RunsIndex, RunSummary
from tuitune.runs.state import describe_end
from tuitune.controllers.resume import RESUMABLE, Resumer, has_checkpoint
from tuitune.screens.base import AppScreen
from tuitune import fmt

COLUMNS = ("name", "model", "method", "state", "step", "loss", "started", "duration")
STATE_STYLE = {
    "running": "bold green", "finished": "cyan", "stopped": "yellow", "failed": "bold red", "lost": "magenta",
}
SCAN_INTERVAL = 2.0
"""Seconds between rescans of the runs folder."""


def row_of(run: RunSummary) -> tuple[str, ...]:
    """The table cells of one run, as plain strings."""
    state = run.state
    total = state.total_steps or run.meta.max_steps
    model = state.model or run.meta.model or fmt.DASH
    return (
        run.name if len(run.name) <= 30 else run.name[:29] + "…",
        model if len(model) <= 24 else "…" + model[-23:],
        state.method or run.meta.method or fmt.DASH,
        run.status,
        f"{state.step}/{total or '?'}",
        fmt.num(state.loss),
        fmt.clock(state.started_t, year=False),
        fmt.duration(state.duration_s),
    )


def detail_of(run: RunSummary) -> Text:
    """One or two lines about the selected run: its cause when failed, else where it stands."""
    out = Text()
    out.append(f"{run.name}: ", style="bold")
    terminal = run.state.terminal or {}
    if run.status == "failed":
        out.append(f"{terminal.get('cause') or 'failed'}", style="red")
        if terminal.get("hint"):
            out.append(f"\nhint: {terminal['hint']}", style="yellow")
    elif run.status == "running":
        out.append(run.state.phase_message or run.state.phase or "running")
    elif run.status == "lost":
        out.append("no terminal event and no live engine (machine restarted or engine killed)")
    elif terminal.get("killed"):
        out.append(describe_end(terminal, run.path))
    else:
        out.append(f"{run.status}; adapter in {run.path / (terminal.get('adapter_path') or 'adapter')}")
    for error in (run.events_error, run.meta.error):
        if error:
            out.append(f"\n{error}", style="red")
    return out


def resumable(runs: list[RunSummary]) -> frozenset[str]:
    """Folders (as strings) of the runs that R can resume: ended early, engine not alive, a checkpoint kept."""
    return frozenset(str(run.path) for run in runs
                     if run.status in RESUMABLE and run.alive is not True and has_checkpoint(run.path))


class RunsScreen(AppScreen):
    """Lists every run; Enter opens its dashboard, R resumes it when it can be."""

    CSS_PATH = "runs.tcss"
    APP_KEYS_IN_FOOTER = True  # the home screen: its footer shows where else to go

    BINDINGS = [
        # priority: shown in the footer even though the focused table has its own enter key
        Binding("enter", "open_run", "Open", priority=True),
        Binding("r", "rescan", "Refresh"),
        Binding("R", "resume", "Resume"),
        Binding("C", "chat", "Chat"),
        Binding("E", "evals", "Evals", show=False),
    ]

    @dataclass
    class Scanned(Message):
        """A scan of the runs folder finished."""

        runs: list[RunSummary]
        """Every run, newest first."""
        resumable: frozenset[str] = field(default_factory=frozenset)
        """Row keys of the runs R can resume (see ``resumable``)."""

    table = getters.query_one("#runs", DataTable)
    detail = getters.query_one("#detail", Static)
    heading = getters.query_one("#heading", Static)

    def __init__(self) -> None:
        super().__init__()
        self.runs: dict[str, RunSummary] = {}
        """The last scan's runs by row key (the folder path)."""
        self.resumable: frozenset[str] = frozenset()
        """Row keys of the runs R can resume, as of the last scan."""
        self.resuming: str | None = None
        """Row key of the run being resumed (R is hidden until its engine started or failed)."""
        self._resume_offered = (False, False)
        self.scans = 0
        """Completed scans (tests wait on it)."""
        self._widths: list[int] = []
        self._index: RunsIndex | None = None
        self.resumer = Resumer(self, self.run_resumed, self.resume_failed)
        """Starts a run again from its checkpoint."""

    def compose(self) -> ComposeResult:
        yield Static("Runs", id="heading")
        yield DataTable(id="runs", cursor_type="row", zebra_stripes=True)
        yield Static("", id="detail")
        yield Footer(compact=True)

    def on_screen_resume(self) -> None:
        """Scan (again) whenever the list is on show."""
        self.scan_runs()

    def on_screen_suspend(self) -> None:
        """Stop scanning while another screen covers the list: no work, no repaints."""
        self.workers.cancel_group(self, "runs-scan")

    @property
    def runs_dir(self) -> Path:
        """The runs folder of the app."""
        return self.tuitune_app.runs_dir

    @work(thread=True, exclusive=True, group="runs-scan", exit_on_error=False, description="reading the runs folder")
    def scan_runs(self) -> None:
        """Rescan the runs folder every SCAN_INTERVAL seconds until the screen goes away."""
        worker = get_current_worker()
        if self._index is None:
            self._index = RunsIndex(self.runs_dir)
        index = self._index
        if self.scans == 0:
            self.post_message(self.Scanned(index.scan(check_alive=False)))  # the list first, liveness next
        while not worker.is_cancelled:
            runs = index.scan()
            self.post_message(self.Scanned(runs, resumable(runs)))
            for _ in range(int(SCAN_INTERVAL / 0.1)):
                if worker.is_cancelled:
                    return
                time.sleep(0.1)

    @on(Scanned)
    def show_runs(self, message: Scanned) -> None:
        """Bring the table up to date, changing only the cells that changed."""
        table = self.table
        rows = {str(run.path): run for run in message.runs}
        texts = {key: row_of(run) for key, run in rows.items()}
        # Fixed column widths from the content: the table never re-measures lazily, so a
        # frame shows the same layout whenever it is taken.
        widths = [max([len(name)] + [len(row[i]) for row in texts.values()]) for i, name in enumerate(COLUMNS)]
        if list(rows) != [key.value for key in table.rows] or widths != self._widths:
            self._rebuild(rows, widths)
        else:
            for key, run in rows.items():
                if row_of(self.runs[key]) != texts[key]:
                    for column, value in zip(table.columns, self._cells(run)):
                        table.update_cell(key, column, value)
        self.runs = rows
        self.resumable = message.resumable
        self.heading.update(f"Runs ({len(rows)})" if rows else self._empty_text())
        self.show_detail()
        self.scans += 1

    def _rebuild(self, rows: dict[str, RunSummary], widths: list[int]) -> None:
        table, selected = self.table, self._selected_key()
        table.clear(columns=True)
        for name, width in zip(COLUMNS, widths):
            table.add_column(name, width=width, key=name)
        for key, run in rows.items():
            table.add_row(*self._cells(run), key=key)
        if selected in rows:
            table.move_cursor(row=list(rows).index(selected))
        self._widths = widths

    def _cells(self, run: RunSummary) -> list[Text]:
        cells = [Text(cell) for cell in row_of(run)]  # Text: a name like "[x]" is not markup
        cells[3].stylize(STATE_STYLE.get(run.status, ""))
        return cells

    def _empty_text(self) -> str:
        return f"No runs yet in {self.runs_dir}. Press n to start one."

    def _selected_key(self) -> str | None:
        table = self.table
        if not table.row_count:
            return None
        return table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value

    @on(DataTable.RowHighlighted)
    def show_detail(self) -> None:
        """Say more about the highlighted run."""
        key = self._selected_key()
        run = self.runs.get(key) if key else None
        self.detail.update(detail_of(run) if run else "")
        self._offer_resume()

    def _offer_resume(self) -> None:
        """Show or hide R and C in the footer when that changes (a footer redraw costs a recompose)."""
        offered = (bool(self.check_action("resume", ())), bool(self.check_action("chat", ())))
        if offered != self._resume_offered:
            self._resume_offered = offered
            self.refresh_bindings()

    @on(DataTable.RowSelected)
    def open_selected(self) -> None:
        """Enter on a row opens it."""
        self.action_open_run()

    def action_open_run(self) -> None:
        """Open the highlighted run's dashboard."""
        key = self._selected_key()
        if key:
            self.tuitune_app.open_dashboard(Path(key))

    def action_rescan(self) -> None:
        """Rescan now."""
        self.scan_runs()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """R shows only on a run it can resume; C on a run that has ended (the Chat screen says when
        there is nothing trained to talk to)."""
        if action == "resume":
            return self.resuming is None and self._selected_key() in self.resumable
        if action == "chat":
            run = self.runs.get(self._selected_key() or "")
            return run is not None and run.status not in ("running", "lost")
        return super().check_action(action, parameters)

    def action_evals(self) -> None:
        """See the highlighted run's evaluations."""
        key = self._selected_key()
        if key:
            self.tuitune_app.open_evals(Path(key))

    def action_chat(self) -> None:
        """Talk to what the highlighted run trained."""
        key = self._selected_key()
        if key and self.check_action("chat", ()):
            self.tuitune_app.open_chat(Path(key))

    def action_resume(self) -> None:
        """Resume the highlighted run from its latest checkpoint, then follow it on its dashboard."""
        key = self._selected_key()
        if key and self.check_action("resume", ()):
            self.resuming = key
            self._offer_resume()
            self.resumer.resume(Path(key))

    def run_resumed(self, run_dir: Path) -> None:
        """Open the resumed run's dashboard, which follows the new attempt."""
        self.resuming = None
        self.resumable = self.resumable - {str(run_dir)}  # live now, whatever the last scan said
        self._offer_resume()
        self.notify(f"resuming {run_dir.name} from its latest checkpoint")
        self.tuitune_app.open_dashboard(run_dir)

    def resume_failed(self, run_dir: Path) -> None:
        """R applies again (the error dialog says what went wrong)."""
        self.resuming = None
        self._offer_resume()
