"""ChatScreen: ask a run's tuned model, or the base and the tuned side by side.

The model answers in an engine subprocess (``python -m engine chat``, protocol in
engine.services.chat_protocol), started once when the screen opens and ended when it closes; a
thread worker reads its messages and posts them here. Answers stream in piece by piece. In
compare mode each question is answered by the base model (the adapter switched off) and then by
the tuned one, side by side from 120 columns, stacked below. esc or ctrl+c stops an answer
without leaving; each side keeps its own conversation for the next question.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.text import Text
from textual import getters, on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.message import Message
from textual.widgets import Footer, Input, Static

from engine.services.chat_protocol import DONE, ERROR, FAILED, LOADING, READY, STOP, TOKEN, Side, generate
from tuitune.runs.folder import resolve_trained
from tuitune.screens.base import AppScreen
from tuitune.services import EngineProcesses

WIDE = 120
"""Columns from which compare mode puts the two answers side by side."""
SETTINGS = (("max_new_tokens", int, 256), ("temperature", float, 0.0), ("top_p", float, 1.0),
            ("repetition_penalty", float, 1.0), ("seed", int, 0))
"""Generation settings: name, type and default (greedy by default, so answers are reproducible)."""


@dataclass
class Exchange:
    """One question and its answers, by side."""

    question: str
    answers: dict[str, str] = field(default_factory=dict)
    ended: dict[str, str] = field(default_factory=dict)
    """Why each side's answer ended (eos, length, stopped) once it has."""


class ChatScreen(AppScreen):
    """Talk to a run's model. Enter asks; esc stops an answer, or leaves when none is being written."""

    CSS_PATH = "chat.tcss"
    BINDINGS = [
        Binding("escape", "stop_or_back", "Back"),
        Binding("ctrl+c", "stop", "Stop", show=False, priority=True),
        Binding("ctrl+t", "compare", "Compare"),
        Binding("ctrl+o", "settings", "Options"),
        Binding("ctrl+l", "clear", "Clear"),
        Binding("ctrl+s", "save", "Save"),
        Binding("ctrl+y", "copy", "Copy"),
    ]

    @dataclass
    class ServiceSaid(Message):
        """A message from the chat service (see engine.services.chat_protocol), or why it is not there."""

        event: dict[str, Any]

    title_bar = getters.query_one("#chat-title", Static)
    status = getters.query_one("#chat-status", Static)
    history = getters.query_one("#chat-log", VerticalScroll)
    prompt = getters.query_one("#chat-prompt", Input)
    settings_row = getters.query_one("#chat-settings", Horizontal)

    def __init__(self, run: str | Path) -> None:
        super().__init__()
        self.run = str(run)
        self.run_dir: Path | None = None
        self.processes = EngineProcesses()
        self.exchanges: list[Exchange] = []
        self.compare = False
        """Whether questions go to the base model and to the tuned one."""
        self.ready = False
        self.failed: str | None = None
        """Why the model cannot be talked to (it failed to start or ended), or None."""
        self.waiting: str | None = None
        """A question sent while the model loads: asked once it is ready."""
        self.can_compare = True
        self.answering: int | None = None
        """Index of the exchange being answered, while one is."""
        self.pending: list[Side] = []
        """Sides still to answer the question being answered (compare mode asks base, then tuned)."""
        self.device = ""

    def compose(self) -> ComposeResult:
        yield Static(Text(f"Chat · {Path(self.run).name}", style="bold"), id="chat-title")
        yield Static("starting the model…", id="chat-status")
        with Horizontal(id="chat-settings"):
            for name, _kind, default in SETTINGS:
                box = Input(str(default), id=f"set-{name}", type="number")
                box.border_title = name.replace("_", " ")
                yield box
        yield VerticalScroll(id="chat-log")
        yield Input(placeholder="ask something, enter to send", id="chat-prompt")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.settings_row.display = False
        self.prompt.focus()
        self.set_class(self.size.width < WIDE, "-narrow")
        self.start_service()

    def on_resize(self) -> None:
        self.set_class(self.size.width < WIDE, "-narrow")

    def on_unmount(self) -> None:
        """The service never outlives its screen."""
        self.processes.stop_all()

    # ----- the service --------------------------------------------------------------------

    @work(thread=True, exclusive=True, group="chat-service", exit_on_error=False, description="the chat model")
    def start_service(self) -> None:
        """Find what the run trained, start the service and relay its messages until it ends."""
        try:
            run_dir, weights = resolve_trained(self.run, self.tuitune_app.runs_dir)
        except FileNotFoundError as exc:
            self.post_message(self.ServiceSaid({"type": FAILED, "message": str(exc)}))
            return
        self.run_dir = run_dir
        self.post_message(self.ServiceSaid({"type": LOADING, "message": f"loading {weights}"}))
        process = self.processes.start("chat", "--run-dir", str(run_dir), "--adapter", str(weights), verb="chat")
        for event in self.processes.events(process):
            self.post_message(self.ServiceSaid(event))
        if process.poll() not in (None, 0, -9):  # killed (-9) only by this screen going away
            self.post_message(self.ServiceSaid({"type": FAILED, "message": "the chat service ended"}))

    @on(ServiceSaid)
    def take(self, message: ServiceSaid) -> None:
        """Route one service message to the status line or the answer it belongs to."""
        event = message.event
        kind = event["type"]
        if kind == LOADING:
            waits = " · your question is asked once it is ready" if self.waiting is not None else ""
            self.status.update(Text(event["message"] + "…" + waits, style="italic"))
        elif kind == READY:
            self.ready, self.can_compare, self.device = True, event["can_compare"], event["device"]
            self.title_bar.update(Text.assemble((f"Chat · {Path(self.run).name}", "bold"),
                                                f"  {event['model']} + {Path(event['adapter']).name}"))
            self.show_status()
            if self.waiting is not None:
                question, self.waiting = self.waiting, None
                self.send(question)
        elif kind == TOKEN and self.answering is not None:
            exchange = self.exchanges[self.answering]
            exchange.answers[event["side"]] = exchange.answers.get(event["side"], "") + event["text"]
            self.show_exchange(self.answering)
        elif kind == DONE and self.answering is not None:
            exchange = self.exchanges[self.answering]
            exchange.ended[event["side"]] = event["reason"]
            exchange.answers.setdefault(event["side"], "")
            self.show_exchange(self.answering)
            if self.pending and event["reason"] != "stopped":
                self.ask_next()
            elif self.pending:  # a stop ends the whole question, both sides
                for side in self.pending:
                    exchange.ended[side] = "stopped"
                self.pending = []
                self.show_exchange(self.answering)
            if all(side in exchange.ended for side in self.sides_of(exchange)):
                self.answering = None
                self.show_status()
                self.refresh_bindings()
        elif kind == ERROR:
            self.notify(event["message"], title="chat", severity="error", timeout=8)
            self.answering, self.pending = None, []
            self.show_status()
        elif kind == FAILED:
            self.ready, self.failed, self.waiting = False, event["message"], None
            self.status.update(Text(event["message"], style="bold red"))

    def show_status(self) -> None:
        """What the model is doing and how it answers."""
        if not self.ready:
            return
        how = "greedy" if self.setting("temperature") == 0 else f"sampling at {self.setting('temperature')}"
        mode = "compare: base | tuned" if self.compare else "tuned"
        doing = "answering… esc stops" if self.answering is not None else "ready"
        self.status.update(f"{doing} · {mode} · {how}, up to {self.setting('max_new_tokens')} tokens · {self.device}")

    # ----- asking -------------------------------------------------------------------------

    @on(Input.Submitted, "#chat-prompt")
    def ask(self, event: Input.Submitted) -> None:
        """Send the question (one at a time); while the model loads it waits, and is asked once it is ready."""
        question = event.value.strip()
        if not question:
            return
        if self.failed is not None:
            self.notify(f"cannot chat: {self.failed}", severity="error", timeout=8)
        elif not self.ready:
            self.waiting = question
            self.prompt.value = ""
            self.status.update(Text("loading the model… your question is asked once it is ready", style="italic"))
            self.notify("the model is loading: your question is asked once it is ready")
        elif self.answering is not None:
            self.notify("wait for the answer, or esc to stop it", severity="warning")
        else:
            self.prompt.value = ""
            self.send(question)

    def send(self, question: str) -> None:
        """Ask the model ``question``, on each side shown."""
        self.exchanges.append(Exchange(question))
        self.answering = len(self.exchanges) - 1
        sides: list[Side] = ["base", "tuned"] if self.compare else ["tuned"]
        self.exchanges[-1].answers = {side: "" for side in sides}
        self.history.mount(self.exchange_widget(self.answering))
        self.history.scroll_end(animate=False)
        self.pending = sides
        self.ask_next()
        self.show_status()
        self.refresh_bindings()

    def ask_next(self) -> None:
        """Send the question to the next side, with that side's own conversation so far."""
        side = self.pending.pop(0)
        settings = {name: self.setting(name) for name, _kind, _default in SETTINGS}
        self.processes.send("chat", generate(self.answering, self.conversation(side), [side], **settings))

    def conversation(self, side: str) -> list[dict[str, str]]:
        """The messages ``side`` answers: earlier exchanges with that side's answers, then the new question."""
        messages: list[dict[str, str]] = []
        for exchange in self.exchanges:
            messages.append({"role": "user", "content": exchange.question})
            answer = exchange.answers.get(side) or exchange.answers.get("tuned")
            if exchange is not self.exchanges[-1] and answer:
                messages.append({"role": "assistant", "content": answer})
        return messages

    def setting(self, name: str) -> Any:
        """A generation setting as typed, or its default when the box does not hold a number."""
        kind, default = next((k, d) for n, k, d in SETTINGS if n == name)
        try:
            return kind(float(self.query_one(f"#set-{name}", Input).value))
        except ValueError:
            return default

    @staticmethod
    def sides_of(exchange: Exchange) -> list[str]:
        return list(exchange.answers)

    # ----- showing ------------------------------------------------------------------------

    def exchange_widget(self, index: int) -> Vertical:
        """The widget of one exchange: the question, then the answers (side by side when wide)."""
        question = Static(Text.assemble(("you  ", "bold cyan"), self.exchanges[index].question), classes="question")
        sides = self.sides_of(self.exchanges[index])
        answers = Horizontal(*[Static("", id=f"answer-{index}-{side}", classes=f"answer -{side}") for side in sides],
                             classes="answers")
        return Vertical(question, answers, id=f"exchange-{index}", classes="exchange")

    def show_exchange(self, index: int) -> None:
        """Redraw the answers of exchange ``index``."""
        exchange = self.exchanges[index]
        for side, text in exchange.answers.items():
            label = Text(f"{side}  ", style="bold magenta" if side == "tuned" else "bold yellow")
            body = Text.assemble(label, text)
            if exchange.ended.get(side) == "stopped":
                body.append("  [stopped]", style="dim")
            elif exchange.ended.get(side) == "length":
                body.append("  [cut at max new tokens]", style="dim")
            self.query_one(f"#answer-{index}-{side}", Static).update(body)
        self.history.scroll_end(animate=False)

    # ----- keys ---------------------------------------------------------------------------

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """ctrl+c stops only while an answer is being written; otherwise it copies, as in any field."""
        if action == "stop":
            return self.answering is not None
        if action == "leave_field":  # typing is what this screen is for: esc stops or goes back
            return False
        return super().check_action(action, parameters)

    def action_stop(self) -> None:
        """Stop the answer being written (the screen stays)."""
        if self.answering is not None:
            self.processes.send("chat", {"type": STOP})

    def action_stop_or_back(self) -> None:
        """esc: stop an answer being written; with none, leave the screen."""
        if self.answering is not None:
            self.action_stop()
        else:
            self.dismiss()

    def action_compare(self) -> None:
        """Ask the base model and the tuned one, or the tuned one only."""
        if not self.can_compare:
            self.notify("a full fine-tune has no adapter to switch off: nothing to compare", severity="warning")
            return
        self.compare = not self.compare
        self.show_status()

    def action_settings(self) -> None:
        """Show or hide the generation settings."""
        self.settings_row.display = not self.settings_row.display

    @on(Input.Changed, "#chat-settings Input")
    def settings_changed(self) -> None:
        self.show_status()

    def action_clear(self) -> None:
        """Start a new conversation (an answer being written is stopped)."""
        self.action_stop()
        self.exchanges.clear()
        self.answering, self.pending = None, []
        self.history.remove_children()
        self.show_status()

    def as_jsonl(self) -> str:
        """The conversation in the SFT layout (OpenAI messages), a line per answering side."""
        lines = []
        for side in ("tuned", "base"):
            messages: list[dict[str, str]] = []
            for exchange in self.exchanges:
                if side in exchange.answers and exchange.ended.get(side) == "eos":
                    messages += [{"role": "user", "content": exchange.question},
                                 {"role": "assistant", "content": exchange.answers[side]}]
            if messages:
                lines.append(json.dumps({"messages": messages, "source": side}, ensure_ascii=False))
        return "".join(line + "\n" for line in lines)

    def action_copy(self) -> None:
        """Copy the conversation as JSON Lines (OSC 52)."""
        self.app.copy_to_clipboard(self.as_jsonl())
        self.notify("conversation copied as JSON Lines")

    def action_save(self) -> None:
        """Save the conversation as JSON Lines in the current folder (never over an existing file)."""
        text = self.as_jsonl()
        if not text:
            self.notify("nothing finished to save yet", severity="warning")
            return
        self.save_file(text, Path.cwd() / f"chat-{Path(self.run).name}-{time.strftime('%Y%m%d-%H%M%S')}.jsonl")

    @work(thread=True, group="chat-save", exit_on_error=False, description="saving the conversation")
    def save_file(self, text: str, path: Path) -> None:
        with open(path, "x", encoding="utf-8") as file:  # "x": an existing file is never overwritten
            file.write(text)
        self.app.call_from_thread(self.notify, f"saved {path}", title="chat")
