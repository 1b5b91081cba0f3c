"""ExportDialog: what to export from a run (merged model, GGUF types, Ollama) and where, with the
disk space it needs against what is free there, and a Hub repo to push the result to."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from textual import getters, on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Checkbox, Input, Label, Static

from engine.export import plan
from engine.units import fmt_bytes
from tuitune.widgets.tick_box import TickBox


@dataclass(frozen=True)
class ExportRequest:
    """What the user chose; ``settings(weights)`` is the export job's job.yaml."""

    merged: bool
    """The adapter merged into the full-precision base, as sharded safetensors."""
    gguf: tuple[str, ...]
    """GGUF types, in ``plan.GGUF_TYPES`` order."""
    ollama: bool
    """A Modelfile next to the first GGUF."""
    to: str | None
    """The destination folder, or None for the job's own folder (RUN/exports/NAME/)."""
    push: str | None = None
    """A Hub repo (ORG/NAME) to push the adapter, the outputs and a model card to, or None."""
    private: bool = False
    """With ``push``: create the repo private."""

    def settings(self, weights: str = "adapter") -> dict[str, Any]:
        """The export job's settings for ``weights`` (relative to the run), checked."""
        return plan.ExportSettings(weights=weights, merged=self.merged, gguf=list(self.gguf), ollama=self.ollama,
                                   to=self.to, push=self.push, private=self.private and bool(self.push)).model_dump()


class ExportDialog(ModalScreen[ExportRequest | None]):
    """Answers the chosen export through ``dismiss(ExportRequest)``, or None when cancelled.

    The needed space (from the model's weight count and stored dtype) is shown against the free
    space of the destination's disk, and Export stays disabled while it does not fit or nothing is
    chosen. GGUF types are offered only for the architectures the writer knows; q4_k_m is never
    offered (the dialog says why). Ollama needs a GGUF: choosing it alone picks q8_0. A Hub repo typed
    under "Push to" pushes the result (the adapter alone when nothing else is chosen); "private" applies to it.

    Args:
        run_name: The run, for the title.
        destination: Where the files go unless the user types another folder (the job's folder).
        params: The base model's weight count (None when unknown: no estimate shown).
        dtype: Its stored dtype (``float32``, ``bfloat16`` …), which the merged model keeps.
        architecture: Its transformers architecture (``LlamaForCausalLM`` …).
        free_bytes: Free bytes of the disk holding a folder (the real one unless a test passes another).
    """

    DEFAULT_CSS = """
    ExportDialog { align: center middle; }
    ExportDialog > Vertical {
        width: 76; max-width: 100%; height: auto; max-height: 100%; padding: 0 1; border: thick $primary;
        background: $surface;
    }
    ExportDialog #title { text-style: bold; margin-bottom: 1; }
    ExportDialog .row { height: auto; }
    ExportDialog .note { color: $text-muted; }
    ExportDialog #space.-short { color: $error; }
    ExportDialog #push { width: 1fr; }
    ExportDialog #buttons { height: auto; margin-top: 1; align-horizontal: right; }
    ExportDialog Button { margin-left: 2; }
    """

    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    merged_box = getters.query_one("#merged", Checkbox)
    ollama_box = getters.query_one("#ollama", Checkbox)
    destination_input = getters.query_one("#destination", Input)
    push_input = getters.query_one("#push", Input)
    private_box = getters.query_one("#private", Checkbox)
    space_line = getters.query_one("#space", Static)
    export_button = getters.query_one("#export", Button)

    def __init__(self, run_name: str, destination: Path, params: int | None, dtype: str | None,
                 architecture: str | None, free_bytes: Callable[[Path], int] = plan.free_bytes) -> None:
        super().__init__()
        self.run_name = run_name
        self.default_destination = destination
        self.params, self.dtype = params, dtype
        self.gguf_problem = plan.architecture_problem(architecture)
        self.free_bytes = free_bytes

    def compose(self) -> ComposeResult:
        """Title, choices, destination, the space line and the buttons."""
        with Vertical():
            yield Label(f"Export {self.run_name}", id="title")
            yield TickBox("Merged model (safetensors, for transformers and vLLM)", True, id="merged", compact=True)
            with Horizontal(classes="row"):
                yield Label("GGUF: ")
                for kind in plan.GGUF_TYPES:
                    yield TickBox(kind, False, id=f"gguf-{kind}", compact=True, disabled=bool(self.gguf_problem))
            yield Static(self.gguf_problem or "q4_k_m is not offered: it could not be checked against llama.cpp; "
                         "quantize the q8_0 or f16 file with llama-quantize.", markup=False, classes="note")
            yield TickBox("Ollama Modelfile (next to the first GGUF)", False, id="ollama", compact=True,
                           disabled=bool(self.gguf_problem))
            yield Label("Destination")
            yield Input(str(self.default_destination), id="destination", compact=True)
            with Horizontal(classes="row"):
                yield Label("Push to the Hub: ")
                yield Input(placeholder="ORG/NAME (optional)", id="push", compact=True)
                yield TickBox("private", False, id="private", compact=True, disabled=True)
            yield Static("", markup=False, id="space")
            with Horizontal(id="buttons"):
                yield Button("Export", variant="primary", id="export", compact=True)
                yield Button("Cancel (Esc)", id="cancel", compact=True)

    def on_mount(self) -> None:
        """Show the space the default choice needs."""
        self._refresh_space()

    def request(self) -> ExportRequest:
        """The current choice."""
        kinds = tuple(kind for kind in plan.GGUF_TYPES if self.query_one(f"#gguf-{kind}", Checkbox).value)
        typed = self.destination_input.value.strip()
        to = None if not typed or Path(typed).expanduser() == self.default_destination else \
            str(Path(typed).expanduser().resolve())
        push = self.push_input.value.strip() or None
        return ExportRequest(self.merged_box.value, kinds, self.ollama_box.value and bool(kinds), to, push,
                             self.private_box.value and bool(push))

    def needed(self, request: ExportRequest) -> int | None:
        """Bytes the choice needs, or None when the model's size is unknown."""
        if not self.params:
            return None
        needed = plan.needed_bytes(request.merged, list(request.gguf), self.params, self.dtype)
        return sum(needed.values()) + plan.RESERVE

    def _refresh_space(self) -> None:
        """Update the space line and whether Export can be pressed."""
        request = self.request()
        chosen = request.merged or bool(request.gguf)
        folder = Path(self.destination_input.value.strip() or self.default_destination).expanduser()
        free = self.free_bytes(folder)
        needed = self.needed(request) if chosen else 0
        short = needed is not None and needed > free
        self.private_box.disabled = not request.push
        if not chosen and request.push:
            text = f"The adapter alone is pushed to {request.push}."
        elif not chosen:
            text = "Choose the merged model or a GGUF type, or a Hub repo to push the adapter to."
        elif needed is None:
            text = f"Size unknown (the model is not on this machine yet) · {fmt_bytes(free)} free there"
        else:
            text = f"Needs about {fmt_bytes(needed)} · {fmt_bytes(free)} free there"
            text += " · not enough disk space: free some or choose another folder" if short else ""
        self.space_line.update(text)
        self.space_line.set_class(short, "-short")
        self.export_button.disabled = not (chosen or request.push) or short

    @on(Checkbox.Changed)
    def _choice_changed(self, event: Checkbox.Changed) -> None:
        if event.checkbox.id == "ollama" and event.value and not self.request().gguf:
            self.query_one("#gguf-q8_0", Checkbox).value = True  # a Modelfile needs a GGUF to point at
        self._refresh_space()

    @on(Input.Changed, "#destination, #push")
    def _destination_changed(self) -> None:
        self._refresh_space()

    @on(Button.Pressed, "#export")
    def _export(self) -> None:
        """Dismiss with the choice (the button is disabled while it cannot be exported)."""
        self.dismiss(self.request())

    @on(Button.Pressed, "#cancel")
    def action_cancel(self) -> None:
        """Close without exporting."""
        self.dismiss(None)
