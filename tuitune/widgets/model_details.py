"""ModelDetails: what a model is, as two columns of facts read from its files."""

from __future__ import annotations

from pathlib import Path

from rich.table import Table
from rich.text import Text
from textual.widgets import Static

from engine.models.info import ModelInfo
from engine.units import fmt_bytes

SOURCES = {"demo": "built-in demo model", "folder": "local folder", "hf-cache": "Hugging Face cache",
           "hub": "Hugging Face Hub (not downloaded)"}


def _short_path(path: str | None) -> str:
    """A path with the home folder shown as ~."""
    if not path:
        return ""
    home = str(Path.home())
    return "~" + path[len(home):] if path.startswith(home + "/") else path


def _num(value: int | None) -> str:
    return "?" if value is None else f"{value:,}"


def facts(info: ModelInfo) -> list[tuple[str, str]]:
    """(label, value) pairs for every fact known about ``info``."""
    if info.params_total is None:
        params = "?"
    else:
        n = info.params_total
        params = f"{n:,}" if n < 1e6 else f"{n / 1e6:,.1f}M" if n < 1e9 else f"{n / 1e9:,.2f}B"
        params += " (from config)" if info.params_source == "config.json" else ""
    heads = f"{_num(info.num_heads)} ({_num(info.num_kv_heads)} kv)" if info.num_heads else "?"
    remote = "yes: opt in per run" if info.needs_remote_code else "no"
    return [
        ("Parameters", params), ("Layers", _num(info.num_layers)),
        ("Hidden", _num(info.hidden_size)), ("Heads", heads),
        ("MLP", _num(info.intermediate_size)), ("Vocabulary", _num(info.vocab_size)),
        ("Context", _num(info.context_length)), ("Dtype", info.dtype or "?"),
        ("On disk" if info.source != "hub" else "Download", fmt_bytes(info.size_bytes) if info.size_bytes else "?"),
        ("Chat tmpl", {True: "yes", False: "no (plain text)", None: "?"}[info.has_chat_template]),
        ("Quantized", info.quantization or "no"), ("Remote code", remote),
    ]


class ModelDetails(Static):
    """Shows one model's facts, or why it cannot be used. Data is pushed in with ``show``."""

    DEFAULT_CSS = """
    ModelDetails { height: auto; }
    ModelDetails.-error { color: $error; }
    """

    def show(self, info: ModelInfo | None, error: str | None = None) -> None:
        """Display ``info``, or ``error`` when the model cannot be used."""
        self.set_class(error is not None, "-error")
        if error is not None or info is None:
            self.update(Text(error or "No model chosen."))
            return
        title = Text.assemble((info.name_or_path, "bold"), f"  {info.architecture or ''}",
                              (f"  {SOURCES.get(info.source, info.source)}", "dim"))
        if info.source == "folder":
            title.append(f" {_short_path(info.path)}", "dim")
        grid = Table.grid(padding=(0, 1), expand=True)
        for _ in range(2):
            grid.add_column(style="dim", no_wrap=True)
            grid.add_column(ratio=1)
        pairs = facts(info) if info.source != "hub" or info.commit is not None else []  # read from the Hub
        for k in range(0, len(pairs), 2):
            row = [*pairs[k], *(pairs[k + 1] if k + 1 < len(pairs) else ("", ""))]
            grid.add_row(*row)
        table = Table.grid()
        table.add_row(title)
        if pairs:
            table.add_row(grid)
        if info.notes:
            table.add_row(Text("\n".join(info.notes), style="yellow"))
        self.update(table)
