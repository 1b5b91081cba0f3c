"""ErrorModal: a scrollable, copyable error (every screen opens it for a failed worker: see ``AppScreen``)."""

from __future__ import annotations

import traceback

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Label
from textual.worker import Worker


class ErrorModal(ModalScreen[None]):
    """Shows an error in a read-only text area (select and copy work); Esc closes, c copies all.

    Args:
        title: One line saying what failed.
        details: The message and, where useful, the traceback.
    """

    DEFAULT_CSS = """
    ErrorModal { align: center middle; }
    ErrorModal > Vertical {
        width: 90%; height: 80%; padding: 0 1; border: thick $error; background: $surface;
    }
    ErrorModal #title { text-style: bold; color: $error; margin: 1 0; }
    ErrorModal TextArea { height: 1fr; }
    """

    BINDINGS = [
        Binding("escape,enter", "dismiss", "Close"),
        Binding("c", "copy", "Copy all"),
    ]

    def __init__(self, title: str, details: str) -> None:
        super().__init__()
        self.title_text = title
        self.details = details

    def compose(self) -> ComposeResult:
        from textual.widgets import TextArea  # loaded on the first error, not at start-up

        with Vertical():
            yield Label(self.title_text, id="title")
            yield TextArea(self.details, read_only=True, soft_wrap=True, id="details")

    def action_copy(self) -> None:
        """Copy the title and details to the clipboard (OSC 52)."""
        self.app.copy_to_clipboard(f"{self.title_text}\n{self.details}")
        self.notify("copied")


def describe_worker_error(worker: Worker) -> tuple[str, str]:
    """Title and details for a failed worker."""
    error = worker.error
    title = f"{worker.description or worker.name or 'background task'} failed: {error}"
    details = "".join(traceback.format_exception(error)) if error is not None else "unknown error"
    return title.splitlines()[0][:200], details

