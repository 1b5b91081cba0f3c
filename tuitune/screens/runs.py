"""RunsScreen, the home screen: every run in the runs folder, refreshed in the background.

Enter opens a run's dashboard; R resumes a stopped, failed or lost run that has a checkpoint
and opens its dashboard to follow it. Space marks runs (their names start with MARK) and c compares the marked runs
(two or more) on the Compare screen. The runs folder's queue (tuitune.runs.queue) comes first, in the order its
runs start, each row's state ``queued #N``: shift+up and shift+down (or K and J) move one sooner or later, d takes it
out of the queue.
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

from engine.units import fmt_bytes
from tuitune import fmt
from tuitune.controllers.export_start import ExportStarter
from tuitune.controllers.resume import RESUMABLE, Resumer, has_checkpoint, why_not_resumable
from tuitune.runs.folder import RunsIndex, RunSummary, nothing_to_chat, trained_weights
from tuitune.runs.queue import Queue, QueuedRun, QueueError, move_run, read_queue, remove_run, runner_alive
from tuitune.runs.state import describe_end
from tuitune.screens.base import AppScreen

COLUMNS = ("name", "model", "method", "state", "step", "loss", "started", "duration")
COMPACT_COLUMNS = ("name", "state", "step", "loss")
"""Below WIDE_AT columns the list keeps what tells runs apart and how they stand."""
WIDE_AT = 100
DROP_FIRST = ("model", "method", "duration")
"""Columns that give way, in this order, when names would be cut."""
MODEL_WIDTH = 24
"""Longest model cell (the end of a hub id says the most: ``…a/Llama-3.2-1B-Instruct``)."""
STATE_STYLE = {
    "running": "bold green", "paused": "bold blue", "finished": "cyan", "stopped": "yellow", "failed": "bold red",
    "lost": "magenta", "queued": "italic",
}
QUEUED_KEY = "queue:"
"""Row keys of queued runs start with this (a run's row key is its folder's absolute path)."""
MARK = "● "
"""What a marked run's name starts with in the list (readable without colour)."""
SCAN_INTERVAL = 2.0
"""Seconds between rescans of the runs folder."""


def row_of(run: RunSummary, marked: bool = False) -> tuple[str, ...]:
    """The table cells of one run (every column of COLUMNS), as plain strings, the name whole (after MARK when
    the run is marked for Compare)."""
    state = run.state
    total = state.total_steps or run.meta.max_steps
    model = state.model or run.meta.model or fmt.DASH
    return (
        (MARK if marked else "") + run.name,
        model if len(model) <= MODEL_WIDTH else "…" + model[-(MODEL_WIDTH - 1):],
        state.method or run.meta.method or fmt.DASH,
        run.status + (" ⚠" if run.state.alerts else ""),  # the watchdog raised alerts in this attempt
        f"{state.step}/{total or '?'}",
        fmt.num(state.loss),
        fmt.clock(state.started_t, year=False),
        fmt.duration(state.duration_s),
    )


def queued_row(run: QueuedRun, place: int) -> tuple[str, ...]:
    """The table cells of a queued run (every column of COLUMNS): what it will train, and its place."""
    model = str((run.config.get("model") or {}).get("name_or_path") or fmt.DASH).rstrip("/")
    train = run.config.get("train") or {}
    steps = train.get("max_steps") if isinstance(train.get("max_steps"), int) and train["max_steps"] > 0 else None
    return (
        run.name,
        model if len(model) <= MODEL_WIDTH else "…" + model[-(MODEL_WIDTH - 1):],
        str((run.config.get("adapter") or {}).get("method") or fmt.DASH),
        f"queued #{place}",
        f"0/{steps or '?'}",
        fmt.DASH,
        fmt.DASH,
        fmt.DASH,
    )


def queued_detail(run: QueuedRun, place: int, queue: Queue, runner: bool) -> Text:
    """What the highlighted queued run waits for, and the keys that move or remove it."""
    out = Text()
    out.append(f"{run.name}: ", style="bold")
    out.append("queued, starts next" if place == 1 else f"queued, starts after {place - 1} queued run(s)")
    if queue.paused:
        out.append("; the queue is paused (tuitune queue resume goes on)", style="blue")
    elif not runner:
        out.append("; nothing works the queue (tuitune queue resume starts it)", style="yellow")
    out.append("\nshift+↑/↓ (K/J) moves it, d takes it out of the queue", style="dim")
    return out


def layout(texts: list[tuple[str, ...]], width: int) -> tuple[tuple[str, ...], list[int]]:
    """The columns to show at ``width`` terminal columns and their widths.

    Names come whole where they can: columns the detail line repeats give way first (DROP_FIRST),
    and the name takes what is left.
    """
    columns = list(COLUMNS if width >= WIDE_AT else COMPACT_COLUMNS)

    def widths_of(names: list[str]) -> list[int]:
        return [max([len(name)] + [len(row[COLUMNS.index(name)]) for row in texts]) for name in names]

    widths = widths_of(columns)
    for name in DROP_FIRST:
        if sum(widths) + 2 * len(columns) + 2 <= width or name not in columns:
            continue
        columns.remove(name)
        widths = widths_of(columns)
    others = sum(widths[1:]) + 2 * len(columns) + 2  # cell padding and the scrollbar
    widths[0] = max(len("name"), min(widths[0], width - others))
    return tuple(columns), widths


def fit(text: str, width: int) -> str:
    """``text`` cut to ``width`` with an ellipsis."""
    return text if len(text) <= width else text[: max(1, width - 1)] + "…"


def detail_of(run: RunSummary) -> Text:
    """One or two lines about the selected run: its cause when failed, else where it stands."""
    out = Text()
    out.append(f"{run.name}: ", style="bold")
    terminal = run.state.terminal or {}
    if run.status == "failed":
        out.append(f"{terminal.get('cause') or 'failed'}", style="red")
        if terminal.get("hint"):
            out.append(f"\nhint: {terminal['hint']}", style="yellow")
    elif run.status in ("running", "paused"):
        out.append(run.state.phase_message or run.state.phase or "running")
        if run.status == "paused":
            out.append(" · paused: p on its dashboard (or tuitune continue) goes on", style="blue")
    elif run.status == "lost":
        out.append("no terminal event and no live engine (machine restarted or engine killed)")
    elif terminal.get("killed"):
        out.append(describe_end(terminal, run.path))
    else:
        out.append(f"{run.status}; adapter in {run.path / (terminal.get('adapter_path') or 'adapter')}")
    if run.state.alerts:
        alert = run.state.alerts[-1]
        out.append(f"\n⚠ {alert.get('kind')}: {alert.get('message')}", style="yellow")
    for error in (run.events_error, run.meta.error):
        if error:
            out.append(f"\n{error}", style="red")
    return out


def trained(runs: list[RunSummary]) -> frozenset[str]:
    """Folders (as strings) of the runs with an adapter or a complete checkpoint: something to chat with."""
    return frozenset(str(run.path) for run in runs if not run.lf and trained_weights(run.path) is not None)


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
        Binding("R", "why_no_resume", "Resume", show=False),  # where R does not apply: says why
        Binding("R", "resume", "Resume"),
        Binding("C", "why_no_chat", "Chat", show=False),  # where C does not apply: says why
        Binding("C", "chat", "Chat"),
        Binding("x", "export", "Export", show=False),  # the footer is full at 80 columns; ? and the palette list it
        Binding("E", "evals", "Evals", show=False),
        Binding("N", "new_from_config", "New from this", show=False),
        Binding("f2", "rename", "Rename", show=False),
        Binding("d", "delete", "Delete", show=False),
        # shown on a queued row only (check_action), where Open is not
        Binding("shift+up,K", "queue_move(-1)", "Sooner", key_display="⇧↑"),
        Binding("shift+down,J", "queue_move(1)", "Later", key_display="⇧↓"),
        Binding("space", "mark", "Mark", show=False),  # the heading says it once a run is marked
        Binding("c", "compare", "Compare"),  # shown once two runs are marked (check_action)
    ]

    @dataclass
    class Scanned(Message):
        """A scan of the runs folder finished."""

        runs: list[RunSummary]
        """Every run, newest first."""
        resumable: frozenset[str] = field(default_factory=frozenset)
        """Row keys of the runs R can resume (see ``resumable``)."""
        queue: Queue = field(default_factory=Queue)
        """The runs folder's queue."""
        runner: bool = False
        """Whether a runner works the queue."""
        queue_problem: str | None = None
        """Why the queue could not be read, or None."""
        trained: frozenset[str] = field(default_factory=frozenset)
        """Row keys of the runs with something to chat with (see ``trained``)."""

    table = getters.query_one("#runs", DataTable)
    detail = getters.query_one("#detail", Static)
    heading = getters.query_one("#heading", Static)

    def __init__(self) -> None:
        super().__init__()
        self.runs: dict[str, RunSummary] = {}
        """The last scan's runs by row key (the folder path)."""
        self.queued: dict[str, tuple[QueuedRun, int]] = {}
        """The last scan's queued runs (and their places, from 1) by row key (QUEUED_KEY + name)."""
        self.queue = Queue()
        """The queue as the last scan read it."""
        self.runner = False
        """Whether a runner worked the queue at the last scan."""
        self.resumable: frozenset[str] = frozenset()
        """Row keys of the runs R can resume, as of the last scan."""
        self.trained: frozenset[str] | None = None
        """Row keys of the runs with something to chat with, as of the last scan (None: not known yet)."""
        self.resuming: str | None = None
        """Row key of the run being resumed (R is hidden until its engine started or failed)."""
        self._resume_offered = (False, False, False)
        self.marked: list[str] = []
        """Row keys of the runs marked for Compare, in the order they were marked."""
        self.scans = 0
        """Completed scans (tests wait on it)."""
        self._layout: tuple[tuple[str, ...], list[int]] = ((), [])
        self._index: RunsIndex | None = None
        self.resumer = Resumer(self, self.run_resumed, self.resume_failed)
        """Starts a run again from its checkpoint."""
        self.exporter = ExportStarter(self)
        """Asks what to export and starts the export job."""

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
            self._index = RunsIndex(self.runs_dir, self.tuitune_app.settings.llamafactory_dirs)
        index = self._index
        if self.scans == 0:  # the list first, liveness next
            self.post_message(self.Scanned(index.scan(check_alive=False), frozenset(), *self._read_queue()))
        while not worker.is_cancelled:
            runs = index.scan()
            self.post_message(self.Scanned(runs, resumable(runs), *self._read_queue(), trained=trained(runs)))
            for _ in range(int(SCAN_INTERVAL / 0.1)):
                if worker.is_cancelled:
                    return
                time.sleep(0.1)

    def _read_queue(self) -> tuple[Queue, bool, str | None]:
        """The queue, whether a runner works it, and why it could not be read (in the scan's thread)."""
        try:
            return read_queue(self.runs_dir), runner_alive(self.runs_dir), None
        except (QueueError, OSError) as exc:
            return Queue(), False, str(exc)

    @on(Scanned)
    def show_runs(self, message: Scanned) -> None:
        """Bring the table up to date, changing only the cells that changed."""
        table = self.table
        queued = {QUEUED_KEY + run.name: (run, place) for place, run in enumerate(message.queue.runs, 1)}
        rows = {str(run.path): run for run in message.runs}
        self.marked = [key for key in self.marked if key in rows]  # a run deleted or renamed meanwhile
        texts = {key: queued_row(*entry) for key, entry in queued.items()} | {
            key: row_of(run, key in self.marked) for key, run in rows.items()}
        # Fixed column widths from the content and the screen: the table never re-measures
        # lazily, so a frame shows the same layout whenever it is taken.
        shape = layout(list(texts.values()), self.size.width or 80)
        old = {key: queued_row(*entry) for key, entry in self.queued.items()} | {
            key: row_of(run, key in self.marked) for key, run in self.runs.items()}
        self.queued, self.queue, self.runner = queued, message.queue, message.runner
        if list(texts) != [key.value for key in table.rows] or shape != self._layout:
            self._rebuild(rows, shape)
        else:
            for key, text in texts.items():
                if old.get(key) != text:
                    for column, value in zip(table.columns, self._cells_of(key, rows)):
                        table.update_cell(key, column, value)
        self.runs = rows
        self.resumable = message.resumable
        self.trained = message.trained if self.scans else None  # the first scan checks no folder
        self.heading.update(self._heading(message.queue_problem) if texts else self._empty_text())
        self.show_detail()
        self.scans += 1

    def _rebuild(self, rows: dict[str, RunSummary], shape: tuple[tuple[str, ...], list[int]]) -> None:
        table, selected = self.table, self._selected_key()
        self._layout = shape
        table.clear(columns=True)
        for name, width in zip(*shape):
            table.add_column(name, width=width, key=name)
        keys = [*self.queued, *rows]
        for key in keys:
            table.add_row(*self._cells_of(key, rows), key=key)
        if selected in keys:
            table.move_cursor(row=keys.index(selected))

    def on_resize(self) -> None:
        """Lay the columns out again for the new width."""
        if self.runs or self.queued:
            texts = [queued_row(*entry) for entry in self.queued.values()] + [
                row_of(run, key in self.marked) for key, run in self.runs.items()]
            self._rebuild(self.runs, layout(texts, self.size.width))

    def _cells_of(self, key: str, rows: dict[str, RunSummary]) -> list[Text]:
        if key in self.queued:
            return self._cells(queued_row(*self.queued[key]), "queued")
        return self._cells(row_of(rows[key], key in self.marked), rows[key].status)

    def _cells(self, row: tuple[str, ...], status: str) -> list[Text]:
        columns, widths = self._layout
        cells = [Text(fit(row[COLUMNS.index(name)], width)) for name, width in zip(columns, widths)]
        cells[columns.index("state")].stylize(STATE_STYLE.get(status, ""))  # Text: "[x]" is not markup
        return cells

    def _heading(self, queue_problem: str | None) -> str:
        heading = f"Runs ({len(self.runs)})"
        if self.marked:
            heading += f" · {len(self.marked)} marked: " + (
                "c compares them" if len(self.marked) > 1 else "space marks another to compare")
        if self.queued:
            how = "paused" if self.queue.paused else "running" if self.runner else "not running: tuitune queue resume"
            heading += f" · queue ({len(self.queued)}, {how})"
        return heading + (f" · {queue_problem}" if queue_problem else "")

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
        if key in self.queued:
            self.detail.update(queued_detail(*self.queued[key], self.queue, self.runner))
        else:
            self.detail.update(detail_of(run) if run else "")
        self._offer_resume()

    def _offer_resume(self) -> None:
        """Show or hide R and C in the footer when that changes (a footer redraw costs a recompose)."""
        offered = (bool(self.check_action("resume", ())), bool(self.check_action("chat", ())),
                   bool(self.check_action("queue_move", ())),  # Open goes as Sooner and Later come
                   bool(self.check_action("compare", ())))
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
        if key in self.queued:
            self.notify(f"{self.queued[key][0].name} is queued: its dashboard opens once it starts")
        elif key:
            self.tuitune_app.open_dashboard(Path(key))

    def action_rescan(self) -> None:
        """Rescan now."""
        self.scan_runs()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """R shows only on a run it can resume; C on a run that has ended with something trained to talk to;
        where either does not apply, its hidden twin says why."""
        if action == "resume":
            return self.resuming is None and self._selected_key() in self.resumable
        if action in ("why_no_resume", "why_no_chat"):
            run = self.runs.get(self._selected_key() or "")
            said = action.removeprefix("why_no_")
            return run is not None and not run.lf and self.trained is not None and not self.check_action(said, ())
        if action in ("queue_move", "delete", "open_run") and self._selected_key() in self.queued:
            return action != "open_run"
        if action == "queue_move":
            return False
        if action == "mark":
            return self._selected_key() in self.runs
        if action == "compare":
            return len(self.marked) > 1
        if action in ("chat", "export", "rename", "delete", "new_from_config"):
            run = self.runs.get(self._selected_key() or "")
            if run is None or run.lf:  # a LLaMA-Factory folder is only read
                return False
            if action == "chat" and self.trained is not None and str(run.path) not in self.trained:
                return False
            return action not in ("chat", "export") or run.status not in ("running", "paused", "lost")
        return super().check_action(action, parameters)

    def action_mark(self) -> None:
        """Mark the highlighted run for Compare, or unmark it."""
        key = self._selected_key()
        if key not in self.runs:
            return
        if key in self.marked:
            self.marked.remove(key)
        else:
            self.marked.append(key)
        self.on_resize()  # its name gains or loses the mark: lay the columns out again
        self.heading.update(self._heading(None))
        self._offer_resume()

    def action_compare(self) -> None:
        """Open Compare on the marked runs."""
        if len(self.marked) > 1:
            self.tuitune_app.open_compare([Path(key) for key in self.marked])

    def action_new_from_config(self) -> None:
        """Open the new-run flow on the highlighted run's config (its model, data and every setting)."""
        from engine.config import ConfigError  # its pydantic models load with the new-run flow, not at start

        key = self._selected_key()
        if not key or not self.check_action("new_from_config", ()):
            return
        try:
            self.tuitune_app.draft.start_from_run(Path(key))
        except (ConfigError, OSError) as exc:
            problems = exc.problems if isinstance(exc, ConfigError) else [str(exc)]
            self.notify("\n".join(problems), title="cannot start from this run's config", severity="error")
            return
        self.tuitune_app.action_new_run(review=True)

    def action_rename(self) -> None:
        """Ask for a new name and rename the highlighted run's folder."""
        from tuitune.dialogs.rename_run import RenameRunDialog
        from tuitune.runs.manage import busy, new_name_problem

        key = self._selected_key()
        if not key or not self.check_action("rename", ()):
            return
        run_dir = Path(key)
        if (working := busy(run_dir)) is not None:
            self.notify(f"{run_dir.name} cannot be renamed while {working}", severity="warning")
            return
        self.app.push_screen(RenameRunDialog(run_dir.name, lambda name: new_name_problem(run_dir, name)),
                             lambda name: self._change(run_dir, "rename", name) if name else None)

    def action_delete(self) -> None:
        """Ask, then delete the highlighted run's folder (refused while any process of it runs)."""
        from engine.models.info import folder_size
        from tuitune.dialogs.confirm import ConfirmDialog
        from tuitune.runs.manage import busy

        key = self._selected_key()
        if not key or not self.check_action("delete", ()):
            return
        if key in self.queued:
            self._change_queue(self.queued[key][0].name, None)
            return
        run_dir = Path(key)
        if (working := busy(run_dir)) is not None:
            self.notify(f"{run_dir.name} cannot be deleted while {working}: stop it first", severity="warning")
            return
        question = (f"Delete run {run_dir.name}? Its folder {run_dir} goes with everything in it "
                    f"({fmt_bytes(folder_size(run_dir))}: checkpoints, adapter, evaluations, exports).")
        self.app.push_screen(ConfirmDialog(question, "Delete"),
                             lambda ok: self._change(run_dir, "delete", None) if ok else None)

    @work(thread=True, exclusive=True, group="runs-change", exit_on_error=False, description="changing a run folder")
    def _change(self, run_dir: Path, what: str, name: str | None) -> None:
        """Rename or delete off the event loop (a big run takes a while to delete), then rescan."""
        from tuitune.runs import manage

        try:
            if what == "rename" and name:
                manage.rename_run(run_dir, name)
                said = f"{run_dir.name} is now {name}"
            else:
                manage.delete_run(run_dir)
                said = f"deleted {run_dir}"
        except (ValueError, OSError) as exc:
            self.app.call_from_thread(self.notify, str(exc), title=f"not {what}d", severity="error")
        else:
            self.app.call_from_thread(self.notify, said)
        self.app.call_from_thread(self.scan_runs)

    def action_queue_move(self, by: int) -> None:
        """Move the highlighted queued run ``by`` places (negative: sooner)."""
        key = self._selected_key()
        if key in self.queued:
            self._change_queue(self.queued[key][0].name, by)

    @work(thread=True, exclusive=True, group="queue-change", exit_on_error=False, description="changing the queue")
    def _change_queue(self, name: str, by: int | None) -> None:
        """Move a queued run ``by`` places, or (None) take it out of the queue; then rescan. The queue's edit lock
        may wait on a ``tuitune queue`` command, so off the event loop."""
        try:
            if by is None:
                remove_run(self.runs_dir, name)
                self.app.call_from_thread(self.notify, f"{name} is out of the queue")
            else:
                move_run(self.runs_dir, name, by)
        except (QueueError, OSError) as exc:  # it started meanwhile, or the queue cannot be written
            self.app.call_from_thread(self.notify, str(exc), title="the queue is unchanged", severity="error")
        self.app.call_from_thread(self.scan_runs)

    def action_evals(self) -> None:
        """See the highlighted run's evaluations."""
        key = self._selected_key()
        if key and key not in self.queued:
            self.tuitune_app.open_evals(Path(key))

    def action_export(self) -> None:
        """Export what the highlighted run trained (the Export dialog; the job says if there is nothing yet)."""
        key = self._selected_key()
        if key and self.check_action("export", ()):
            self.exporter.open(Path(key))

    def action_chat(self) -> None:
        """Talk to what the highlighted run trained."""
        key = self._selected_key()
        if key and self.check_action("chat", ()):
            self.tuitune_app.open_chat(Path(key))

    def action_why_no_chat(self) -> None:
        """Say why the highlighted run offers no chat."""
        run = self.runs[self._selected_key() or ""]
        self.notify(nothing_to_chat(run.name, run.status), severity="warning")

    def action_why_no_resume(self) -> None:
        """Say why R does not resume the highlighted run."""
        run = self.runs[self._selected_key() or ""]
        self.notify(why_not_resumable(run.name, run.status, run.alive, self.resuming is not None), severity="warning")

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
