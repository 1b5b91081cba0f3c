"""DatasetPicker: the datasets of a LLaMA-Factory dataset_info.json, to open one in the Data screen."""

from __future__ import annotations

from rich.text import Text
from textual import getters, on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Label, OptionList
from textual.widgets.option_list import Option

from engine.lf.dataset_info import Entry


class DatasetPicker(ModalScreen[str | None]):
    """Answers the chosen dataset's name, or None; a dataset that cannot be used is listed with why.

    Args:
        path: The dataset_info.json, for the title.
        entries: Its datasets (``engine.lf.dataset_info.list_datasets``).
    """

    DEFAULT_CSS = """
    DatasetPicker { align: center middle; }
    DatasetPicker > Vertical { width: 90; max-width: 100%; height: auto; max-height: 90%; padding: 0 1;
                               border: thick $primary; background: $surface; }
    DatasetPicker OptionList { height: auto; max-height: 20; }
    """

    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    options = getters.query_one(OptionList)

    def __init__(self, path: str, entries: list[Entry]) -> None:
        super().__init__()
        self.path, self.entries = path, entries

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(f"Datasets of {self.path} (enter opens one with its column mapping applied)", markup=False)
            yield OptionList(*[Option(self._label(entry), id=entry.name, disabled=not entry.usable)
                               for entry in self.entries])

    @staticmethod
    def _label(entry: Entry) -> Text:
        if not entry.usable:
            return Text.assemble((f"{entry.name:<20}", "dim"), (entry.reason, "red"))
        files = entry.hub or ", ".join(path.name for path in entry.files[:2]) + ("…" if len(entry.files) > 2 else "")
        kind = "pairs" if entry.ranking else "kto" if entry.columns.get("kto_tag") else entry.formatting
        return Text.assemble((f"{entry.name:<20}", "bold"), f"{kind:<10}", (files, "dim"))

    @on(OptionList.OptionSelected)
    def _chosen(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(str(event.option.id))

    def action_cancel(self) -> None:
        self.dismiss(None)
