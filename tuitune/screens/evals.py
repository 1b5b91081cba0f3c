"""EvalsScreen: the evaluations of one run, and their predictions record by record, base and tuned side by side.

Everything comes from the run's ``evals/*/`` folders (``tuitune eval`` or any other starter wrote
them): each job's ``events.jsonl`` says whether it runs, how far it is and how it ended,
``metrics.json`` holds the summary and ``predictions.jsonl`` the records. One thread worker
polls them (a running evaluation grows while it is shown); files are never read on the event
loop, and the model is never touched: the app only reads the folders.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from rich.table import Table
from rich.text import Text
from textual import getters, on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.events import Resize
from textual.message import Message
from textual.reactive import var
from textual.widgets import Footer, OptionList, Static
from textual.widgets.option_list import Option
from textual.worker import get_current_worker

from tuitune.runs.evals import (
    COLUMNS,
    EVALS_DIR,
    PREDICTIONS_FILE,
    EvalJob,
    Predictions,
    describe_job_end,
    figure,
    list_jobs,
    read_predictions,
    summary_rows,
)
from tuitune.runs.launch import stop_run
from tuitune.screens.base import AppScreen
from tuitune.widgets.prediction_view import PredictionView

POLL_S = 1.0
"""Seconds between two looks at the evaluation folders."""
STACK_BELOW = 110
"""Terminal columns under which the two answers are stacked instead of side by side."""
STATUS_STYLE = {"running": "green", "finished": "cyan", "stopped": "yellow", "failed": "red", "lost": "magenta"}


def job_prompt(job: EvalJob) -> Text:
    """A job's line in the list: name, status and the tuned model's loss once measured."""
    tuned = (job.metrics or {}).get("tuned") or {}
    detail = f"tuned {figure(tuned.get('loss'), 3)}" if job.metrics else ""
    if job.status == "running" and job.progress:
        detail = f"{job.progress.get('phase')} {job.progress.get('done')}/{job.progress.get('total')}"
    return Text.assemble((job.name, "bold"), "\n", (job.status, STATUS_STYLE.get(job.status, "")), f"  {detail}")


NARROW_COLUMNS = ("loss", "perplexity", "bleu_4", "rouge_l")
"""The summary's columns on a narrow terminal."""


def job_summary(job: EvalJob, narrow: bool = False) -> Table | Text:
    """The selected job's summary: how it went, then the base/tuned table when there are metrics."""
    head = Text.assemble((f" {job.status.upper()} ", f"bold reverse {STATUS_STYLE.get(job.status, '')}"), " ")
    if job.end is not None:
        head.append(describe_job_end(job.end))
    elif job.progress:
        head.append(f"{job.progress.get('phase')}: {job.progress.get('done')} of {job.progress.get('total')} records")
    elif job.status == "running":
        head.append("loading the model")
    if job.end and job.end.get("type") == "job_failed":
        if job.end.get("hint"):
            head.append(f"\nhint: {job.end['hint']}", style="yellow")
        for error in job.end.get("errors") or []:
            head.append(f"\n  {error}", style="red")
    if job.problem:
        head.append(f"\n{job.problem}", style="red")
    metrics = job.metrics
    if not metrics:
        return head
    table = Table(box=None, padding=(0, 1), title=head, title_justify="left", expand=False,
                  caption=f"{metrics.get('records')} records, {metrics.get('tokens')} answer tokens; loss per token "
                          "over the set; BLEU-4 and ROUGE as LLaMA-Factory reports them",
                  caption_justify="left")
    shown = [0] + [i + 1 for i, (key, _, _) in enumerate(COLUMNS) if not narrow or key in NARROW_COLUMNS]
    table.add_column("")
    for i in shown[1:]:
        table.add_column(COLUMNS[i - 1][1], justify="right")
    for row in summary_rows(metrics):
        table.add_row(*(row[i] for i in shown), style="bold" if row[0] == "tuned" else "")
    return table


class EvalsScreen(AppScreen):
    """The evaluations of ``run_dir``: a list of jobs, the selected one's summary and its predictions."""

    CSS_PATH = "evals.tcss"

    BINDINGS = [
        Binding("right,n", "next_record", "Next record"),
        Binding("left,p", "previous_record", "Previous record"),
        Binding("s", "stop", "Stop evaluation"),
        Binding("escape,b", "back", "Back"),
    ]

    @dataclass
    class JobsRead(Message):
        """The worker read every job folder of the run."""

        jobs: list[EvalJob]

    @dataclass
    class PredictionsRead(Message):
        """The worker read a job's predictions."""

        job_dir: Path
        predictions: Predictions

    jobs_list = getters.query_one("#jobs", OptionList)
    summary = getters.query_one("#summary", Static)
    position = getters.query_one("#position", Static)
    view = getters.query_one("#record", PredictionView)

    index: var[int] = var(0)
    """The record of the selected job shown, 0-based."""
    selected_running: var[bool] = var(False, bindings=True)
    """Whether the selected job is running (it can be stopped)."""

    def __init__(self, run_dir: str | Path) -> None:
        super().__init__()
        self.run_dir = Path(run_dir)
        self.jobs: list[EvalJob] = []
        """Every job of the run, newest first, as last read."""
        self.selected: Path | None = None
        """The job folder shown (read by the worker too)."""
        self.records: list[dict] = []
        """The selected job's predictions."""
        self.narrow = False
        """Whether the terminal is too narrow for the answers side by side and every column."""

    def compose(self) -> ComposeResult:
        yield Static(Text.assemble((" EVALUATIONS ", "bold reverse"), f" {self.run_dir.name}"), id="title")
        with Horizontal(id="body"):
            yield OptionList(id="jobs", classes="-focus-first")
            with Vertical(id="detail"):
                yield Static("Reading the evaluations…", id="summary")
                yield Static("", id="position", markup=False)
                yield PredictionView(id="record")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.watch_folders()

    @on(Resize)
    def stack_when_narrow(self, event: Resize) -> None:
        """Side by side when there is room, one above the other on narrow terminals."""
        self.narrow = event.size.width < STACK_BELOW
        self.view.set_class(self.narrow, "-stacked")
        self.show_summary()

    @work(thread=True, exclusive=True, group="evals-watch", exit_on_error=False, description="reading evaluations")
    def watch_folders(self) -> None:
        """Read the jobs, and the selected job's predictions whenever its file grew."""
        worker = get_current_worker()
        seen_jobs: object = None
        seen_predictions: tuple[Path, int] | None = None
        while not worker.is_cancelled:
            jobs = list_jobs(self.run_dir)
            key = [(j.name, j.status, (j.progress or {}).get("seq"), j.metrics, j.problem) for j in jobs]
            if key != seen_jobs:
                seen_jobs = key
                self.post_message(self.JobsRead(jobs))
            selected = self.selected
            if selected is not None:
                size = _size(selected / PREDICTIONS_FILE)
                if (selected, size) != seen_predictions:
                    seen_predictions = (selected, size)
                    self.post_message(self.PredictionsRead(selected, read_predictions(selected)))
            deadline = time.monotonic() + POLL_S
            while not worker.is_cancelled and time.monotonic() < deadline and self.selected == selected:
                time.sleep(0.05)

    @on(JobsRead)
    def show_jobs(self, message: JobsRead) -> None:
        """List the jobs, keeping the selection (the newest job is selected at first)."""
        self.jobs = message.jobs
        jobs_list = self.jobs_list
        highlighted = self.selected.name if self.selected else None
        jobs_list.clear_options()
        jobs_list.add_options([Option(job_prompt(job), id=job.name) for job in self.jobs])
        if not self.jobs:
            self.summary.update(Text(f"No evaluation of {self.run_dir.name} yet. Start one with\n"
                                     f"  tuitune eval {self.run_dir.name} --data HELD_OUT.jsonl"))
            self.view.show(None)
            return
        names = [job.name for job in self.jobs]
        jobs_list.highlighted = names.index(highlighted) if highlighted in names else 0
        self.show_summary()

    @on(OptionList.OptionHighlighted, "#jobs")
    def select_job(self, event: OptionList.OptionHighlighted) -> None:
        """Show the highlighted job; its predictions come from the worker."""
        job_dir = self.run_dir / EVALS_DIR / str(event.option.id)
        if job_dir != self.selected:
            self.selected, self.records, self.index = job_dir, [], 0
            self.view.show(None, "Reading the predictions…")
            self.position.update("")
        self.show_summary()

    def show_summary(self) -> None:
        """The selected job's summary, and whether it can be stopped."""
        job = next((j for j in self.jobs if self.selected and j.path == self.selected), None)
        if job is not None:
            self.summary.update(job_summary(job, self.narrow))
            self.selected_running = job.status == "running"

    @on(PredictionsRead)
    def show_predictions(self, message: PredictionsRead) -> None:
        """Keep the selected job's predictions and show the current record."""
        if message.job_dir != self.selected:
            return
        self.records = message.predictions.records
        self.index = min(self.index, max(0, len(self.records) - 1))
        self.show_record()

    def watch_index(self) -> None:
        if self.is_mounted:
            self.show_record()

    def show_record(self) -> None:
        """Show record ``index`` of the selected job."""
        if not self.records:
            self.view.show(None, "No prediction written yet." if self.selected else "")
            self.position.update("")
            return
        record = self.records[self.index]
        where = f"{Path(str(record.get('file', '?'))).name}:{record.get('line') or record.get('index')}"
        self.position.update(f"record {self.index + 1} of {len(self.records)} · {where}   (←/→ or p/n)")
        self.view.show(record)

    def action_next_record(self) -> None:
        """Show the next record."""
        if self.index + 1 < len(self.records):
            self.index += 1

    def action_previous_record(self) -> None:
        """Show the previous record."""
        if self.index > 0:
            self.index -= 1

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Stop shows only while the selected evaluation runs."""
        if action == "stop":
            return self.selected_running
        return super().check_action(action, parameters)

    def action_stop(self) -> None:
        """Ask the selected evaluation to stop after its current record."""
        if self.selected is not None:
            self.stop_job(self.selected)

    @work(thread=True, group="evals-stop", exit_on_error=False, description="stopping the evaluation")
    def stop_job(self, job_dir: Path) -> None:
        """Send the stop (SIGTERM to the job's process group), off the event loop."""
        sent = stop_run(job_dir)
        self.app.call_from_thread(self.notify, "stopping after the current record" if sent else
                                  "the evaluation is not running", title=job_dir.name)

    def action_back(self) -> None:
        """Back to where the screen was opened from."""
        self.app.pop_screen()


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return -1
