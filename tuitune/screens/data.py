"""DataScreen: open instruction data, browse it a page at a time, see what training will see.

Reading the file happens in thread workers: the first page straight from the file, then an
index of record offsets in the background (:class:`engine.data.index.RecordIndex`). Two engine
subprocesses, run by the screen's :class:`~tuitune.controllers.data_engine.EngineLink`, do what
needs the ML stack: ``python -m engine data PATH`` streams problems, progress and statistics,
and ``python -m engine data --serve`` encodes the highlighted record with the same function
that makes the training labels.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from textual import getters, on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.widgets import DataTable, Footer, Input, Label, Select, Static
from textual.worker import get_current_worker

from engine.config import DEMO_MODEL, DataSection
from engine.data.checks import detect_file_format
from engine.data.formats import LAYOUTS, stages_for
from engine.data.index import RecordIndex
from engine.data.problems import HUB_PREFIX, SourceError
from engine.data.source import RawRecord
from tuitune.controllers.data_engine import EngineLink
from tuitune.dialogs.dataset_picker import DatasetPicker
from tuitune.messages import DataChosen
from tuitune.path_suggester import DATA_SUFFIXES, PathSuggester
from tuitune.screens.base import AppScreen
from tuitune.widgets.data_inspector import DataInspector
from tuitune.widgets.data_table import RecordTable

PAGE = 100
DATASET_INFO = "dataset_info.json"
"""LLaMA-Factory's index of datasets: opening it lists them."""
FORMATS = [("auto", "auto"), *[(name, name) for name in LAYOUTS]]
PAGES_KEYS = Binding.Group("pages", compact=True)  # one footer entry for [ and ]: the footer fits 80 columns


class DataScreen(AppScreen):
    """Browse, check and preview instruction data; hand it to a new run."""

    CSS_PATH = "data.tcss"
    APP_KEYS_IN_FOOTER = True
    BINDINGS = [
        Binding("ctrl+o", "focus_path", "Open"),
        Binding("left_square_bracket", "page(-1)", "Prev page", group=PAGES_KEYS),
        Binding("right_square_bracket", "page(1)", "Next page", group=PAGES_KEYS),
        Binding("ctrl+n", "use", "Use in new run"),
        Binding("r", "tab('record')", "Record", show=False),
        Binding("p", "tab('problems')", "Problems", show=False),
        Binding("s", "tab('stats')", "Statistics", show=False),
        Binding("t", "tab('template')", "Template", show=False),
    ]

    @dataclass
    class Opened(Message):
        """The open worker read the file's format and first page (or could not)."""

        path: str
        fmt: str | None
        rows: list[RawRecord]
        error: str = ""
        generation: int = 0

    @dataclass
    class PageLoaded(Message):
        """A page of records was read; ``select`` is the record to put the cursor on."""

        start: int
        rows: list[RawRecord]
        select: int | None = None
        generation: int = 0

    @dataclass
    class Indexed(Message):
        """Progress of the background index: ``count`` records so far."""

        count: int
        complete: bool
        generation: int = 0

    path_input = getters.query_one("#data-path", Input)
    format_select = getters.query_one("#data-format", Select)
    info_line = getters.query_one("#data-info", Static)
    table = getters.query_one("#data-table", RecordTable)
    page_label = getters.query_one("#data-page", Static)
    inspector = getters.query_one("#data-tabs", DataInspector)
    model_input = getters.query_one("#data-model", Input)
    cutoff_input = getters.query_one("#data-cutoff", Input)

    def __init__(self, path: str | None = None, model: str | None = DEMO_MODEL,
                 cutoff: int = DataSection.model_fields["cutoff_len"].default, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.path = path or ""
        """The open file or folder, as typed."""
        self.model = model or ""
        """Model whose chat template tokenises records; empty: no tokens."""
        self.cutoff = cutoff
        """Cutoff length the record view and statistics measure against."""
        self.index: RecordIndex | None = None
        self.page_start = 0
        self.opened = False
        """Whether the last open has shown its first page (or why it could not)."""
        self.generation = 0
        """Counts opens; messages from workers of an earlier open are ignored."""
        self.fmt: str | None = None
        """Effective format of the open file (detected or chosen)."""
        self.engine = EngineLink(self)
        """The report and encoder subprocesses, ended when the screen goes away."""

    def compose(self) -> ComposeResult:
        """Path and format on top; records on the left; record, problems, statistics on the right."""
        with Horizontal(id="data-bar"):
            yield Label("Data", classes="pane-title")
            yield Input(self.path, placeholder="JSON / JSONL file or datasets folder", id="data-path",
                        suggester=PathSuggester(DATA_SUFFIXES))
            yield Select(FORMATS, value="auto", allow_blank=False, id="data-format")
        yield Static("ctrl+o: type a file's path, then Enter.", id="data-info", markup=False)
        with Horizontal(id="data-body"):
            with Vertical(id="data-left"):
                yield RecordTable(id="data-table")
                yield Static("", id="data-page", markup=False)
            yield DataInspector(self.model, self.cutoff, id="data-tabs")
        yield Footer()

    def on_mount(self) -> None:
        """Open the path given, or wait for one (ctrl+o: the field is not focused, so the app's keys work)."""
        if self.path:
            self.open(self.path)

    def on_unmount(self) -> None:
        """End the engine subprocesses this screen started."""
        self.engine.stop_all()

    def on_screen_resume(self) -> None:
        """Tokenise with the model chosen for the new run (the app's draft) once it changes."""
        model = getattr(getattr(self.app, "draft", None), "model", None)
        if model and model != self.model:
            self.model_input.value = model
            self._change_tokens()

    # ----- opening and paging -------------------------------------------------------------

    def open(self, path: str) -> None:
        """Open ``path``: reset the views, read the first page, start the report. A LLaMA-Factory
        ``dataset_info.json`` lists its datasets first; the one chosen opens with its mapping applied."""
        if Path(path).expanduser().name == DATASET_INFO and Path(path).expanduser().is_file():
            self._pick_dataset(str(Path(path).expanduser().parent))
            return
        self.path, self.index, self.page_start = path, None, 0
        self.table.clear()
        self.inspector.reset(self.model)
        self.info_line.update(f"Opening {path}…")
        fmt = str(self.format_select.value)
        self.opened = False
        self.generation += 1
        self._read_file(path, fmt, self.generation)
        self.engine.start_report(path, fmt, self.model, self.cutoff, self.generation)
        if self.model and not self.engine.encoding:
            self.engine.start_encoder(self.model, self.cutoff)

    @work(thread=True, exclusive=True, group="data-open", exit_on_error=False, description="opening the data")
    def _read_file(self, path: str, fmt: str, generation: int) -> None:
        worker = get_current_worker()
        try:
            index = RecordIndex(path)
            found, problem = detect_file_format(path, fmt, stage=None)  # browsing: any stage's layout
            if generation == self.generation:
                self.index = index
            self.post_message(self.Opened(path, found, index.first_page(PAGE), problem.message if problem else "",
                                          generation))
        except SourceError as exc:
            self.post_message(self.Opened(path, None, [], str(exc.problem), generation))
            return
        except OSError as exc:
            self.post_message(self.Opened(path, None, [], f"{path}: cannot read: {exc.strerror or exc}", generation))
            return
        last = [0.0]

        def progress(count: int, fraction: float) -> None:
            if time.monotonic() - last[0] > 0.2:
                last[0] = time.monotonic()
                self.post_message(self.Indexed(count, False, generation))

        index.build(progress, lambda: worker.is_cancelled)
        self.post_message(self.Indexed(index.count, index.complete, generation))

    @work(thread=True, exclusive=True, group="data-page", exit_on_error=False, description="reading a page")
    def _read_page(self, start: int, select: int | None) -> None:
        worker, index, generation = get_current_worker(), self.index, self.generation
        while index is not None and not index.complete and index.count < start + PAGE and not worker.is_cancelled:
            time.sleep(0.02)
        if index is not None and not worker.is_cancelled:
            self.post_message(self.PageLoaded(start, index.page(start, PAGE), select, generation))

    @on(Opened)
    def _show_opened(self, message: Opened) -> None:
        if message.generation != self.generation:
            return
        self.fmt, self.opened = message.fmt, True
        self.table.show_page(message.rows, message.fmt)
        chosen = "chosen" if self.format_select.value != "auto" else "detected"
        stages = f" · for stage {stages_for(LAYOUTS[message.fmt])}" if message.fmt in LAYOUTS else ""
        self.info_line.update(message.error or f"{message.path} · format {message.fmt} ({chosen}){stages}")
        self._update_page_label()
        if message.rows:
            self.table.focus()

    @on(PageLoaded)
    def _show_page(self, message: PageLoaded) -> None:
        if message.generation != self.generation:
            return
        self.page_start = message.start
        table = self.table
        table.show_page(message.rows, self.fmt)
        if message.select is not None:
            table.move_cursor(row=message.select - message.start)
        self._update_page_label()

    @on(Indexed)
    def _show_indexed(self, message: Indexed) -> None:
        if message.generation != self.generation:
            return
        self._update_page_label(message.count, message.complete)

    def _update_page_label(self, count: int | None = None, complete: bool | None = None) -> None:
        index = self.index
        count = index.count if count is None and index else count or 0
        complete = bool(index and index.complete) if complete is None else complete
        shown = self.table.row_count
        total = f"{count:,}" if complete else f"{count:,}+ (indexing)"
        text = f"records {self.page_start:,}–{self.page_start + max(shown - 1, 0):,} of {total} · [ ] pages"
        self.page_label.update(text if shown else "no records")

    def action_page(self, step: int, to_last_row: bool = False) -> None:
        """Show the previous (-1) or next (+1) page, the cursor on its first (or last) row."""
        start = max(0, self.page_start + step * PAGE)
        if self.index is None or (self.index.complete and start >= self.index.count) or start == self.page_start:
            return
        self._read_page(start, start + PAGE - 1 if to_last_row else start)

    @on(RecordTable.EdgeReached)
    def _page_at_edge(self, message: RecordTable.EdgeReached) -> None:
        self.action_page(message.step, to_last_row=message.step < 0)

    def goto(self, record: int) -> None:
        """Show the page holding ``record`` with the cursor on it."""
        start = record // PAGE * PAGE
        if start == self.page_start and self.table.row_count:
            self.table.move_cursor(row=record - start)
        else:
            self._read_page(start, record)
        self.inspector.show_tab("tab-record")
        self.table.focus()

    @on(DataInspector.ProblemChosen)
    def _jump_to_problem(self, message: DataInspector.ProblemChosen) -> None:
        self.goto(message.record)

    # ----- inputs and actions -------------------------------------------------------------

    @on(Input.Submitted, "#data-path")
    def _open_typed(self, event: Input.Submitted) -> None:
        if event.value.strip():
            self.open(event.value.strip())

    @on(Select.Changed, "#data-format")
    def _change_format(self) -> None:
        if self.path and self.is_mounted and self.index is not None:
            self.open(self.path)

    @on(Input.Submitted, "#data-model")
    @on(Input.Submitted, "#data-cutoff")
    def _change_tokens(self) -> None:
        cutoff = self.cutoff_input.value
        self.model = self.model_input.value.strip()
        self.cutoff = max(8, int(cutoff or self.cutoff))  # the config's lower bound
        self.engine.stop_encoder()
        if self.path:
            self.open(self.path)

    @work(thread=True, exclusive=True, group="data-datasets", exit_on_error=False,
          description="reading dataset_info.json")
    def _pick_dataset(self, dataset_dir: str) -> None:
        from engine.config import ConfigError
        from engine.lf.dataset_info import list_datasets

        try:
            entries = list_datasets(dataset_dir)
        except ConfigError as exc:
            self.app.call_from_thread(self.info_line.update, "; ".join(exc.problems))
            return
        self.app.call_from_thread(self.app.push_screen, DatasetPicker(str(Path(dataset_dir) / DATASET_INFO), entries),
                                  lambda name: self._open_dataset(dataset_dir, name) if name else None)

    @work(thread=True, exclusive=True, group="data-datasets", exit_on_error=False, description="mapping the dataset")
    def _open_dataset(self, dataset_dir: str, name: str) -> None:
        """Resolve the dataset (a mapped copy in the cache when its fields differ) and open that."""
        from engine.config import ConfigError
        from engine.lf.dataset_info import resolve
        from engine.stages import DEFAULT_STAGE

        stage = getattr(getattr(self.app, "draft", None), "stage", DEFAULT_STAGE)
        try:
            resolved = resolve([name], dataset_dir, stage)
        except ConfigError as exc:
            self.app.call_from_thread(self.info_line.update, "; ".join(exc.problems))
            return
        def show() -> None:
            self.format_select.value = resolved.format if resolved.format in dict(FORMATS) else "auto"
            self.path_input.value = resolved.paths[0]
            self.open(resolved.paths[0])
            if resolved.notes:
                self.notify("\n".join(resolved.notes), title=f"dataset {name}")

        self.app.call_from_thread(show)

    def action_tab(self, name: str) -> None:
        """Show the Record, Problems, Statistics or Template tab (the problems list takes the focus)."""
        self.inspector.show_tab(f"tab-{name}")
        if name == "problems":
            self.inspector.problem_table.focus()

    def action_focus_path(self) -> None:
        """Put the cursor in the path box."""
        self.path_input.focus()

    def action_use(self) -> None:
        """Hand the open data to the new-run flow."""
        if self.path:
            # A run's engine starts in another folder: hand over an absolute path.
            named = self.path.startswith(("builtin:", HUB_PREFIX))  # a shipped or Hub data set, not a path
            path = self.path if named else os.path.abspath(os.path.expanduser(self.path))
            self.post_message(DataChosen([path], str(self.format_select.value)))
            self.notify(f"{self.path} will be used for the next new run.", title="Data chosen")

    # ----- the engine's report and encoder --------------------------------------------------

    @on(DataTable.RowHighlighted, "#data-table")
    def _highlighted(self, event: DataTable.RowHighlighted) -> None:
        record = event.row_key.value
        raw = self.table.records.get(int(record)) if record is not None else None
        if raw is not None:
            self._show_record(raw)

    def _show_record(self, raw: RawRecord) -> None:
        """Show ``raw``'s turns now and ask the encoder for its tokens."""
        request = self.inspector.show_record(raw, self.fmt)
        if request is not None:
            self.engine.encode(request)

    @on(EngineLink.TokensRead)
    def _show_tokens(self, message: EngineLink.TokensRead) -> None:
        event, table = message.event, self.table
        if event["type"] == "ready" and table.row_count:
            raw = table.records.get(int(table.coordinate_to_cell_key((table.cursor_row, 0)).row_key.value))
            if raw is not None:
                self._show_record(raw)
        elif event["type"] == "encoded" and self.engine.is_answer(event):
            self.inspector.show_tokens(event)
        elif event["type"] in ("failed", "error"):
            self.notify(event["message"], title="Tokeniser", severity="error", timeout=8)

    @on(EngineLink.ReportRead)
    def _show_report(self, message: EngineLink.ReportRead) -> None:
        if message.generation == self.generation:
            self.inspector.add_events(message.events)

    @property
    def report_done(self) -> bool:
        """Whether the report of the open file has ended."""
        return self.inspector.done
