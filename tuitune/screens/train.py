"""TrainScreen, the live dashboard of one run, rebuilt from its run folder and followed as it grows.

It never talks to the engine except through the run folder (reading) and ``tuitune.runs.launch``
(signals, resume). Leaving it never stops training; a stopped, failed or lost run with a
checkpoint resumes with R, and the dashboard follows the new attempt in the same folder.
Repaints are throttled to about one a second and only widgets whose content changed
repaint, so a thin SSH link keeps up.
"""

from __future__ import annotations

import time
from pathlib import Path

from rich.text import Text
from textual import getters, on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.reactive import var
from textual.widgets import Footer, Static
from textual.worker import get_current_worker

from engine.protocol import read_log_tail
from engine.stages import DEFAULT_STAGE
from tuitune.controllers.export_start import ExportStarter
from tuitune.controllers.resume import RESUMABLE, Resumer, has_checkpoint, why_not_resumable
from tuitune.dialogs.confirm import ConfirmDialog
from tuitune.messages import EngineExited, LogLinesRead, RunEventsRead
from tuitune.runs import folder
from tuitune.runs.folder import initial_state, nothing_to_chat, read_meta
from tuitune.runs.lf_folder import LFTail, is_lf_folder, log_file, still_writing
from tuitune.runs.state import LIVE, PAUSED, RUNNING, RunState, describe_end, fold, status
from tuitune.runs.tail import EventTail, without_library_noise
from tuitune.screens.base import AppScreen
from tuitune.widgets.loss_chart import LossChart, stage_metrics
from tuitune.widgets.run_stats import RunStats
from tuitune.widgets.samples_panel import SamplesPanel
from tuitune.widgets.system_panel import SystemPanel

REFRESH_S = 1.0
"""Least seconds between two repaints of the dashboard's numbers."""
SLOW_PARTS_S = {"chart": 15.0, "log": 3.0}
"""Least seconds between repaints of the big panels while a run is live: a chart redraw
is the costliest thing sent over SSH (about 8 KB at 80x24, every braille cell with its colours), and a
curve moves little in a few seconds (bench/bench_ssh_bytes.py: 1.5 KB/s at most at 80x24)."""
WIDE_FOR_TWO_CHARTS = 110
"""Columns from which a stage's metrics chart stands beside the loss chart."""
POLL_S = 0.25
"""Seconds between polls of events.jsonl when nothing new came."""
LOG_POLL_S = 1.0
"""Seconds between reads of the engine.log tail."""
ALIVE_POLL_S = 2.0
"""Seconds between checks that the engine is alive."""

RUN_ACTIONS = frozenset({"stop", "save", "kill", "pause", "continue_run", "resume", "chat", "export", "evals",
                         "checkpoints", "why_no_resume", "why_no_chat"})
"""Keys that act on a run: a LLaMA-Factory folder is only read."""


def wall_clock() -> float:
    """The time a live run's elapsed time counts to (tests hold it still for snapshots)."""
    return time.time()


STATUS_STYLE = {"running": "green", "paused": "blue", "finished": "cyan", "stopped": "yellow", "failed": "red",
                "lost": "magenta"}
"""Colour of each status badge."""


def title_text(state: RunState, run_status: str, doing: str = "", source: str = "") -> Text:
    """Status badge, name, model and method, the slow phase while starting, and the last warning.

    ``doing`` is what the dashboard asked for and the run folder cannot say yet ("stopping",
    "resuming"): it replaces the badge until an event says how it went.
    """
    badge = doing or run_status
    out = Text(f" {badge.upper()} ", style=f"bold reverse {STATUS_STYLE.get(run_status, '')}")
    out.append(f" {state.name} ", style="bold")
    if source:
        out.append(f"[{source}, read-only] ", style="italic")
    out.append(f" {state.model or '?'} · {state.stage or DEFAULT_STAGE} · {state.method or '?'}")
    if state.processes:
        out.append(f" · {state.processes}")
    if doing == "stopping":
        out.append(f"  finishing step {(state.step or 0) + 1}, then saving", style="italic")
    elif doing == "resuming":
        out.append("  starting from the latest checkpoint: loading the model…", style="italic")
    elif run_status == RUNNING and state.phase and state.phase != "training":
        out.append(f"  {state.phase}: {state.phase_message}", style="italic")
    if state.warnings:  # on a line of its own, wrapped: a warning cut at the screen's edge says nothing
        out.append(f"\n⚠ {state.warnings[-1]}", style="yellow")
    return out


def failure_text(state: RunState, run_status: str, run_dir: Path | None = None) -> Text:
    """The cause, exit, hint and errors of a failed run; a line for a lost or killed one; empty otherwise."""
    terminal = state.terminal or {}
    if run_status == "lost":
        return Text("The engine is gone and wrote no final event (machine restarted or engine killed).")
    if terminal.get("killed"):
        return Text.assemble(("KILLED  ", "bold yellow"), describe_end(terminal, run_dir))
    if run_status != "failed":
        return Text("")
    out = Text.assemble(("FAILED  ", "bold red"), (str(terminal.get("cause") or "unknown cause"), "bold"))
    if terminal.get("signal") or terminal.get("exit_code") is not None:
        out.append(f"  (exit {terminal.get('exit_code')}, {terminal.get('signal') or 'no signal'})", style="dim")
    if terminal.get("hint"):
        out.append(f"\nhint: {terminal['hint']}", style="yellow")
    for error in terminal.get("errors") or []:
        out.append(f"\n  {error}", style="red")
    return out


SHOWN_ALERTS = 3
"""Latest alerts the dashboard lists (the runs list marks a run with any)."""


def alerts_text(state: RunState) -> Text:
    """The latest alerts of the attempt with what to do, critical ones in red; empty without any."""
    out = Text()
    for alert in state.alerts[-SHOWN_ALERTS:]:
        style = "bold red" if alert.get("severity") == "critical" else "bold yellow"
        out.append(f"⚠ {alert.get('kind')}", style=style)
        out.append(f" {alert.get('message')}")
        if alert.get("stops"):
            out.append(" (train.stop_on: stopping)", style="bold")
        out.append(f" · {alert.get('action')}\n", style="dim")
    out.rstrip()
    return out


class TrainScreen(AppScreen):
    """The dashboard of ``run_dir``: loss chart, numbers, system panel, log tail and controls."""

    CSS_PATH = "train.tcss"
    AUTO_FOCUS = "#chart"
    """The chart's keys (zoom, pan, cursor, metric…) work while it has the focus."""

    BINDINGS = [
        Binding("s", "stop", "Stop & save"),
        Binding("c", "save", "Save now"),
        Binding("k", "kill", "Kill"),
        Binding("p", "pause", "Pause"),
        Binding("p", "continue_run", "Continue"),
        Binding("R", "why_no_resume", "Resume", show=False),  # where R does not apply: says why
        Binding("R", "resume", "Resume"),
        Binding("C", "why_no_chat", "Chat", show=False),  # where C does not apply: says why
        Binding("C", "chat", "Chat"),
        Binding("x", "export", "Export"),
        Binding("E", "evals", "Evals", show=False),
        Binding("K", "checkpoints", "Checkpoints", show=False),
        Binding("v", "next_view", "View"),
        Binding("escape,b", "back", "Back"),
    ]

    title_bar = getters.query_one("#title", Static)
    chart = getters.query_one("#chart", LossChart)
    stage_chart = getters.query_one("#stage-chart", LossChart)
    stats = getters.query_one("#stats", RunStats)
    system = getters.query_one("#system", SystemPanel)
    log_view = getters.query_one("#log", Static)
    failure = getters.query_one("#failure", Static)
    alerts_view = getters.query_one("#alerts", Static)
    samples = getters.query_one("#samples", SamplesPanel)

    has_checkpoint: var[bool] = var(False, bindings=True)
    """Whether the run folder holds a checkpoint to resume from (checked by the follower)."""
    resuming: var[int | None] = var(None, bindings=True)
    """Events seen when R was pressed, until the new attempt writes one (or fails); None otherwise."""

    def __init__(self, run_dir: str | Path) -> None:
        super().__init__()
        self.run_dir = Path(run_dir)
        self.state = RunState(name=self.run_dir.name)
        """The run as folded from every event read so far."""
        self.alive: bool | None = None
        """Whether the engine was alive at the last check (None: not checked yet)."""
        self.log_lines: list[str] = []
        self.repaints = 0
        """How many times the dashboard repainted (tests and benchmarks read it)."""
        self._dirty = True
        self._last_paint = 0.0
        self._shown: dict[str, object] = {}
        self._stale: set[str] = set()
        self._slow_paint: dict[str, float] = {}
        self.resumer = Resumer(self, self.run_resumed, self.resume_failed)
        """Starts the run again from its checkpoint."""
        self.exporter = ExportStarter(self)
        """Asks what to export and starts the export job."""
        self.stopping = False
        """A stop was sent from here and the run has not ended yet (a step can take a minute on CPU)."""
        self.log_read = False
        """Whether engine.log has been read once (before that, its tail is unknown, not empty)."""
        self.lf = is_lf_folder(self.run_dir)
        """A LLaMA-Factory output folder, shown read-only: nothing is offered that would act on the run."""
        self.watched_live = False
        """Whether this attempt was seen running from here: its end then rings the terminal (history does not)."""
        self.notices: list[str] = []
        """The escapes sent to the terminal when a run shown here ended (tests read it; headless sends none)."""

    @property
    def status(self) -> str:
        """running, finished, stopped, failed or lost."""
        return status(self.state, self.alive)

    @property
    def doing(self) -> str:
        """"stopping" or "resuming" while a request from here has not shown in the run folder yet, else ""."""
        if self.resuming is not None:
            return "resuming"
        if self.stopping and self.status in LIVE:
            return "stopping"
        return ""

    def compose(self) -> ComposeResult:
        yield Static(self.run_dir.name, id="title")
        with Horizontal(id="top"):
            yield LossChart(id="chart")
            yield LossChart(id="stage-chart", view="stage", cycles=False)
            with VerticalScroll(id="side"):
                yield RunStats(id="stats")
        yield Static("", id="failure")
        yield Static("", id="alerts")
        with Horizontal(id="bottom"):
            with VerticalScroll(id="system-box"):
                yield SystemPanel(id="system")
            with Vertical(id="log-box"):
                yield Static("", id="log", markup=False)
            with VerticalScroll(id="samples-box"):
                yield SamplesPanel(id="samples")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.follow_run()
        self.set_interval(REFRESH_S / 2, self.repaint_if_due)

    @work(thread=True, exclusive=True, group="tail", exit_on_error=False, description="following the run folder")
    def follow_run(self) -> None:
        """Read the whole history, then poll for new events, log lines and engine liveness."""
        worker = get_current_worker()
        if self.lf:  # a LLaMA-Factory output folder: its files read as our events, never written
            self.app.call_from_thread(self._set_initial, RunState(name=self.run_dir.name))
            tail: EventTail | LFTail = LFTail(self.run_dir)
        else:
            self.app.call_from_thread(self._set_initial, initial_state(self.run_dir, read_meta(self.run_dir)))
            tail = EventTail(self.run_dir)
        alive: bool | None = None
        checkpoint = False
        last_log = last_alive = 0.0
        lines: list[str] = []
        while not worker.is_cancelled:
            batch = tail.read()
            now = time.monotonic()
            # A new attempt (resume) starts with run_started: its liveness must come with it.
            if now - last_alive >= ALIVE_POLL_S or any(e.get("type") == "run_started" for e in batch):
                last_alive, was = now, alive
                alive = still_writing(self.run_dir) if self.lf else folder.engine_alive(self.run_dir)
                if not self.lf and (found := has_checkpoint(self.run_dir)) != checkpoint:
                    checkpoint = found
                    self.app.call_from_thread(setattr, self, "has_checkpoint", found)
                if alive != was:
                    self.post_message(RunEventsRead(self.run_dir, [], alive=alive))
                    if was and not alive:
                        self.post_message(EngineExited(self.run_dir))
            if batch:
                self.post_message(RunEventsRead(self.run_dir, batch))
            if now - last_log >= LOG_POLL_S:
                last_log = now
                if (new_lines := self._log_tail()) != lines:
                    lines = new_lines
                    self.post_message(LogLinesRead(self.run_dir, lines))
            if not batch:
                time.sleep(POLL_S)

    def _log_tail(self) -> list[str]:
        """The newest lines of engine.log (of a LLaMA-Factory folder: its running_log.txt, when it has one)."""
        if not self.lf:
            return without_library_noise(read_log_tail(self.run_dir, lines=60))
        log = log_file(self.run_dir)
        return read_log_tail(self.run_dir, lines=60, name=log.name) if log else []

    def _set_initial(self, state: RunState) -> None:
        if self.state.events_seen == 0:
            self.state = state
            self._dirty = True

    @on(RunEventsRead)
    def take_events(self, message: RunEventsRead) -> None:
        """Fold a batch into the state; the first batch repaints at once, later ones on the timer."""
        first = self.state.events_seen == 0 and message.events
        was_terminal = self.state.terminal is not None
        if message.events:
            self.state = fold(self.state, message.events)
            if self.resuming is not None and self.state.events_seen > self.resuming:
                self.resuming = None  # the new attempt is writing: R shows again if it ends early
        liveness_changed = message.alive is not None and message.alive != self.alive
        if liveness_changed:
            self.alive = message.alive
            self.refresh_bindings()  # R hides while an engine of this run lives
        if self.alive and self.state.terminal is None:
            self.watched_live = True
        elif self.watched_live and self.state.terminal is not None:
            self.watched_live = False
            self.ring_end()
        self._dirty = True
        if first or liveness_changed or was_terminal != (self.state.terminal is not None):
            self.repaint_if_due(force=True)

    def ring_end(self) -> None:
        """The run shown here ended while it was watched: the bell and a desktop notification (notify.terminal)."""
        from tuitune.notice import notice_escape

        end = describe_end(self.state.terminal or {}, self.run_dir)
        sequence = notice_escape(self.tuitune_app.settings.notify.terminal, f"tuitune: {self.run_dir.name}", end)
        if not sequence:
            return
        self.notices.append(sequence)
        driver = self.app._driver  # Textual writes its own bell and OSC 52 this way (App.bell, copy_to_clipboard)
        if not self.app.is_headless and driver is not None:
            driver.write(sequence)

    @on(LogLinesRead)
    def take_log(self, message: LogLinesRead) -> None:
        """Keep the newest engine.log tail for the next repaint (the first one shows at once)."""
        self.log_lines = message.lines
        self._dirty = True
        if not self.log_read:
            self.log_read = True
            self.paint_log()

    @on(EngineExited)
    def say_engine_exited(self) -> None:
        """Tell the user once when the engine goes away."""
        if self.state.terminal is None:
            self.notify("the engine exited without a final event", severity="warning")

    def repaint_if_due(self, force: bool = False) -> None:
        """Repaint what changed: numbers at most every REFRESH_S, big panels every SLOW_PARTS_S.

        ``force`` (first history, a change of status) repaints everything at once.
        """
        now = time.monotonic()
        if self.status == RUNNING and now - self._last_paint >= REFRESH_S:
            self._dirty = True  # the elapsed time ticks between steps
        if self._dirty and (force or now - self._last_paint >= REFRESH_S):
            self._dirty = False
            self._last_paint = now
            self.repaints += 1
            self.paint()
            self._stale.update(SLOW_PARTS_S)
        for part in list(self._stale):
            if force or self.status != RUNNING or now - self._slow_paint.get(part, -1e9) >= SLOW_PARTS_S[part]:
                self._stale.discard(part)
                self._slow_paint[part] = now
                self.paint_chart() if part == "chart" else self.paint_log()

    def paint(self) -> None:
        """Push the state into the small widgets; each repaints only when its content changed."""
        state, run_status = self.state, self.status
        if self._set_if_changed("status", run_status, self._on_status_changed):
            self._stale.update(SLOW_PARTS_S)
            self._slow_paint.clear()
        self._set_if_changed("title", title_text(state, run_status, self.doing, "LLaMA-Factory" if self.lf else ""),
                             self.title_bar.update)  # a layout pass: a warning takes lines of its own
        self.stats.show(state, run_status, width=max(20, self.stats.size.width or 36), now=wall_clock())
        self.system.show(state.system, width=max(20, self.system.size.width or 40), live=run_status in LIVE)
        self._set_if_changed("failure", failure_text(state, run_status, self.run_dir), self.failure.update)
        self._set_if_changed("alerts", alerts_text(state), self._show_alerts)
        self._set_if_changed("samples", state.samples, self._show_samples)

    def paint_chart(self) -> None:
        """Redraw the chart's view if its series changed (after a resume: the latest attempt's points)."""
        state = self.state
        series = (state.train_series, state.eval_series, state.lr_series, state.metric_series, state.resume_steps,
                  state.log_series)
        # Wide enough, a preference stage's metrics get their own chart beside the loss; at 80
        # columns they are a view of the one chart (v).
        beside = bool(stage_metrics(state.metric_series)) and self.size.width >= WIDE_FOR_TWO_CHARTS
        self.stage_chart.display = beside
        self.chart.stage_view_elsewhere = beside
        if self.chart.view == "stage" and beside:
            self.chart.next_view()
        self.chart.show(*series)
        if beside:
            self.stage_chart.show(*series)

    def on_resize(self) -> None:
        """Lay the charts out again for the new width; below 80 columns the footer keeps its keys, not ^p."""
        self.query_one(Footer).show_command_palette = self.size.width >= 80
        self.paint_chart()

    def action_next_view(self) -> None:
        """v: the chart's next view (loss, learning rate, the stage's metrics when they are not beside it)."""
        self.chart.next_view()
        self.paint_chart()

    def paint_log(self) -> None:
        """Show the newest engine.log lines if they changed."""
        self._set_if_changed("log", self._log_text(), lambda text: self.log_view.update(text, layout=False))

    def _set_if_changed(self, key: str, value: object, apply) -> bool:
        if self._shown.get(key) == value:
            return False
        self._shown[key] = value
        apply(value)
        return True

    def _show_samples(self, event: dict | None) -> None:
        """An RL run's latest sampled answers, in a panel beside the log once there are any."""
        self.samples.show(event)
        self.set_class(event is not None, "-rl")

    def _show_alerts(self, text: Text) -> None:
        self.alerts_view.update(text)
        self.alerts_view.display = bool(text)

    def _on_status_changed(self, run_status: str) -> None:
        for name in ("running", "paused", "finished", "stopped", "failed", "lost"):
            self.set_class(run_status == name, f"-{name}")
        self.refresh_bindings()

    def _log_text(self) -> str:
        terminal = self.state.terminal or {}
        lines = self.log_lines or list(terminal.get("log_tail") or [])
        height = max(1, self.log_view.size.height or 8)
        empty = "(engine.log is empty)" if self.log_read or terminal else "(reading engine.log…)"
        return "\n".join(line[:300] for line in lines[-height:]) or empty

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Stop, save and kill show only on a live run; resume, chat only where they apply; on a
        LLaMA-Factory folder only what reads it."""
        if self.lf and action in RUN_ACTIONS:
            return False
        if action in ("stop", "kill"):
            # alive: also a resumed attempt still loading, before its run_started clears the old end
            return self.status in LIVE or self.alive is True
        if action == "save":  # a paused trainer cannot save until it goes on
            return self.status == RUNNING or (self.alive is True and self.status != PAUSED)
        if action == "pause":
            return self.status == RUNNING and self.doing != "stopping"
        if action == "continue_run":
            return self.status == PAUSED
        if action == "resume":
            return (self.status in RESUMABLE and self.has_checkpoint and self.resuming is None
                    and self.alive is not True)  # alive: a resume is already starting
        if action in ("chat", "export"):  # something trained, and no trainer competing for the machine
            return self.status not in LIVE and (self.status == "finished" or self.has_checkpoint)
        if action in ("why_no_resume", "why_no_chat"):
            return self.alive is not None and not self.check_action(action.removeprefix("why_no_"), ())
        return super().check_action(action, parameters)

    def action_export(self) -> None:
        """Write what this run trained where it is served (merged, GGUF, Ollama): the Export dialog."""
        self.exporter.open(self.run_dir)

    def action_chat(self) -> None:
        """Talk to what this run trained."""
        self.tuitune_app.open_chat(self.run_dir)

    def action_evals(self) -> None:
        """See this run's evaluations (tuitune eval RUN --data FILE makes them)."""
        self.tuitune_app.open_evals(self.run_dir)

    def action_why_no_chat(self) -> None:
        """Say why this run offers no chat."""
        self.notify(nothing_to_chat(self.state.name, self.status), severity="warning")

    def action_why_no_resume(self) -> None:
        """Say why R does not resume this run."""
        self.notify(why_not_resumable(self.state.name, self.status, self.alive, self.resuming is not None),
                    severity="warning")

    def action_checkpoints(self) -> None:
        """See this run's checkpoints with their losses, the best marked; chat, evaluate or export one."""
        from tuitune.screens.checkpoints import CheckpointsScreen

        self.app.push_screen(CheckpointsScreen(self.run_dir))

    def action_resume(self) -> None:
        """Start the run again from its latest checkpoint; this dashboard follows the new attempt."""
        if self.check_action("resume", ()):
            self.resuming = self.state.events_seen
            self._show_doing(stopping=False)
            self.resumer.resume(self.run_dir)

    def _show_doing(self, stopping: bool) -> None:
        """Show at once what was just asked for (the title's badge)."""
        self.stopping = stopping
        self._dirty = True
        self.repaint_if_due(force=True)

    def run_resumed(self, run_dir: Path) -> None:
        """Say so; the follower picks up the new run_started."""
        self.notify(f"resuming {self.state.name} from its latest checkpoint")

    def resume_failed(self, run_dir: Path) -> None:
        """No resume pending any more: R shows again if it applies."""
        self.resuming = None
        self._show_doing(stopping=False)

    def action_back(self) -> None:
        """Back to where the dashboard was opened from; training goes on."""
        self.app.pop_screen()

    def action_stop(self) -> None:
        """Ask, then stop the run after it saves a checkpoint and the adapter."""
        self._confirm(f"Stop {self.state.name}? It saves a checkpoint and the adapter first.", "Stop & save", False)

    def action_kill(self) -> None:
        """Ask, then kill the run at once without saving."""
        self._confirm(f"Kill {self.state.name} now? Nothing since the last checkpoint is saved.", "Kill", True)

    def _confirm(self, question: str, yes: str, kill: bool) -> None:
        def answered(ok: bool | None) -> None:
            if ok:
                self.signal_engine("kill" if kill else "stop")

        self.app.push_screen(ConfirmDialog(question, yes), answered)

    def action_pause(self) -> None:
        """Hold the trainer where it is (the model stays loaded, the compute is free)."""
        self.signal_engine("pause")

    def action_continue_run(self) -> None:
        """Let a paused trainer go on."""
        self.signal_engine("continue")

    def action_save(self) -> None:
        """Ask the engine to write a checkpoint now; training goes on."""
        self.signal_engine("save")

    @work(thread=True, exclusive=True, group="signal", exit_on_error=False, description="signalling the engine")
    def signal_engine(self, what: str) -> None:
        """Send stop, kill or save to the engine through ``tuitune.runs.launch``."""
        from tuitune.runs import launch

        run = self.run_dir
        send = {"save": launch.request_save, "pause": launch.pause_run, "continue": launch.continue_run,
                "stop": launch.stop_run, "kill": lambda run_dir: launch.stop_run(run_dir, kill=True)}
        sent = send[what](run)
        said = {"save": "checkpoint requested", "stop": "stop requested: saving, then ending", "kill": "kill sent",
                "pause": "pause requested", "continue": "continue requested"}
        if sent:
            self.app.call_from_thread(self.notify, said[what])
            if what == "stop":
                self.app.call_from_thread(self._show_doing, stopping=True)
        else:
            self.app.call_from_thread(self.notify, "no live engine for this run", severity="warning")

