"""SystemPanel: GPUs, the trainer's memory and CPU, and host memory, from ``system`` events.

Each GPU of the run takes three lines (name; memory bar; use and temperature) when the terminal is
tall (40 rows or more) and the run has at most two GPUs; otherwise one line each, so eight GPUs
still fit an 80x24 dashboard.
"""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.widgets import Static

from engine.units import fmt_bytes
from tuitune import fmt


class SystemPanel(Static):
    """Shows the last ``system`` event of a run; repaints only when what it shows changes."""

    DEFAULT_CSS = """
    SystemPanel { height: auto; }
    """

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__("waiting for the first system sample…", id=id, classes=classes)
        self._plain = ""

    def show(self, event: dict[str, Any] | None, width: int = 40, live: bool = True) -> bool:
        """Render ``event`` (a ``system`` event, or None) of a live or ended run; returns whether the text changed."""
        text = render_system(event, width, live, compact=self._compact(event))
        if text.plain == self._plain:
            return False
        # A layout pass only when the line count changes: it repaints far more than the panel.
        same_height = text.plain.count("\n") == self._plain.count("\n")
        self._plain = text.plain
        self.update(text, layout=not same_height)
        return True

    def _compact(self, event: dict[str, Any] | None) -> bool:
        """One line per GPU: on a short terminal, or for more than two GPUs."""
        gpus = (event or {}).get("gpus") or []
        return len(gpus) > FULL_GPUS or not self.is_mounted or self.app.size.height < TALL


TALL = 40
"""Terminal rows from which a GPU gets its three lines."""
FULL_GPUS = 2
"""Most GPUs shown three lines each; more get one line each."""


def render_system(event: dict[str, Any] | None, width: int = 40, live: bool = True, compact: bool = False) -> Text:
    """The panel's text for one ``system`` event (or a waiting line for None); ``compact``: one line per GPU.

    Of a run that has ended the last sample is history, not a live reading: it says so and is dimmed.
    """
    if event is None:
        return Text("waiting for the first system sample…" if live else "no system sample was recorded", style="dim")
    out = Text() if live else Text("last sample, before the run ended:\n", style="italic")
    gpus = event.get("gpus") or []
    if not gpus:
        out.append("no GPU: ", style="bold yellow")
        out.append(str(event.get("gpu_note") or "none found"))
        out.append("\n")
    bar_width = max(6, min(24, width - 34))
    for gpu in gpus if compact else []:
        _gpu_line(out, gpu, width)
    for gpu in [] if compact else gpus:
        used, total = gpu.get("mem_used_bytes"), gpu.get("mem_total_bytes")
        share = used / total if used is not None and total else 0.0
        out.append(f"GPU{gpu.get('index', '?')} ", style="bold")
        out.append(f"{str(gpu.get('name', ''))[: max(8, width - 10)]}\n", style="dim")
        out.append(" mem ")
        out.append(fmt.bar(share, bar_width), style=_level(share))
        out.append(f" {fmt_bytes(used)}/{fmt_bytes(total)}\n")
        util, temp = gpu.get("util_pct"), gpu.get("temp_c")
        out.append(f" util {fmt.num(util, 3)}%  temp {fmt.num(temp, 3)}°C\n")
    out.append("trainer ", style="bold")
    out.append(f"RSS {fmt_bytes(event.get('rss_bytes'))}  CPU {fmt.num(event.get('cpu_pct'), 3)}%\n")
    host_used, host_total = event.get("host_mem_used_bytes"), event.get("host_mem_total_bytes")
    out.append("host    ", style="bold")
    out.append(f"RAM {fmt_bytes(host_used)}/{fmt_bytes(host_total)}")
    if not live:
        out.stylize("dim")
    return out


def _gpu_line(out: Text, gpu: dict[str, Any], width: int) -> None:
    """``GPU3 ████░░ 61.2G/80.0G  97% 71°C`` (the bar shrinks to what the width leaves)."""
    used, total = gpu.get("mem_used_bytes"), gpu.get("mem_total_bytes")
    share = used / total if used is not None and total else 0.0
    figures = f" {_gib(used)}/{_gib(total)} {fmt.num(gpu.get('util_pct'), 3):>3}% {fmt.num(gpu.get('temp_c'), 3)}°C"
    out.append(f"GPU{gpu.get('index', '?')} ", style="bold")
    out.append(fmt.bar(share, max(3, min(16, width - 6 - len(figures)))), style=_level(share))
    out.append(figures + "\n")


def _gib(value: int | None) -> str:
    return fmt.num(None) if value is None else f"{value / 2**30:.1f}G"


def _level(share: float) -> str:
    """Colour of a memory bar: green, then yellow above 75%, red above 90%."""
    return "red" if share > 0.9 else "yellow" if share > 0.75 else "green"
