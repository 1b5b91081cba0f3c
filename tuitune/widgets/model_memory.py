"""ModelMemory: the memory estimate as a stacked bar against the device, its breakdown and a verdict."""

from __future__ import annotations

from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual.widgets import Static

from engine.estimate.advice import breakdown
from engine.estimate.fit import Verdict
from engine.estimate.memory import Estimate
from engine.machine.gpus import Gpu
from engine.units import fmt_bytes

COLORS = {"weights": "blue", "adapter": "magenta", "gradients": "cyan", "optimizer": "yellow",
          "activations": "green", "overhead": "bright_black"}


def devices_line(gpus: list[Gpu], note: str) -> str:
    """The GPUs found, or why there is none, in one line."""
    return "  ".join(f"GPU {g.index} {g.name} {fmt_bytes(g.total_bytes)} ({fmt_bytes(g.free_bytes)} free)"
                     for g in gpus) or f"No GPU ({note}): CPU figures, against host memory"


class ModelMemory(Static):
    """Stacked bar of the estimate's terms over the device's memory, with a fit verdict."""

    DEFAULT_CSS = """
    ModelMemory { height: auto; }
    ModelMemory.-overflow { border-left: thick $error; padding-left: 1; }
    """

    def show(self, verdict: Verdict | None, devices: str = "", note: str = "") -> None:
        """Display ``verdict`` with the ``devices`` line, or ``note`` (or the verdict's reason) when there is no
        estimate."""
        self._shown = (verdict, devices, note)
        self.set_class(verdict is not None and not verdict.fits, "-overflow")
        self.refresh(layout=True)
        self.update(self._render_verdict())

    def on_resize(self) -> None:
        """Redraw the bar to the new width."""
        if getattr(self, "_shown", None) is not None:
            self.update(self._render_verdict())

    def _render_verdict(self) -> Group | Text:
        verdict, devices, note = self._shown
        if verdict is None or verdict.estimate is None:
            return Text.assemble(verdict.reason if verdict is not None else note, "\n")
        est, room = verdict.estimate, verdict.capacity
        rows = breakdown(est, verdict.config)
        title = Text.assemble(("Memory ", "bold"), f"{est.method}, {est.trainable_params:,} trainable, on {est.device}")
        width = max(10, (self.content_size.width or 60) - 2)
        scale = max(est.total, room.bytes, 1)
        bar = Text("▕")
        # The peak holds the larger of the backward pass (activations) and the optimizer step
        # (gradients and its temporaries): draw the step's excess over the activations, if any.
        step = max(0, est.gradients + est.step_temp - est.activations)
        for name, value, _detail in rows:
            value = step if name == "gradients" else value
            bar.append("█" * round(width * value / scale), COLORS[name])
        bar.append("░" * max(0, width - bar.cell_len + 1), "bright_black")
        bar.truncate(width + 1)
        if not verdict.fits:  # mark where the device's memory ends
            limit = 1 + min(width - 1, round(width * room.bytes / scale))
            bar = bar[:limit] + Text("┃", "bold red") + bar[limit + 1:]
        bar.append("▏")
        columns = 3 if width >= 60 else 2
        legend = Table.grid(padding=(0, 2))
        for _ in range(columns):
            legend.add_column(no_wrap=True)
        cells = [Text.assemble(("■ ", COLORS[name]), f"{name} {fmt_bytes(value)}") for name, value, _ in rows]
        for k in range(0, len(cells), columns):
            legend.add_row(*cells[k:k + columns])
        other = next((detail for name, _, detail in rows if name == "activations"), "")
        # The verdict comes right under the title so a small terminal shows it without scrolling.
        return Group(title, self._verdict(verdict, est), Text(devices, style="dim"), bar, legend,
                     Text(f"activations: {other}", style="dim"), self._tips(verdict))

    @staticmethod
    def _verdict(verdict: Verdict, est: Estimate) -> Text:
        need, have, label = fmt_bytes(est.total), fmt_bytes(verdict.capacity.bytes), verdict.capacity.label
        if verdict.fits:
            return Text(f"✓ fits: {need} of {have} ({label})", style="green")
        return Text(f"✗ Will not fit: needs {need}, {label} has {have}.", style="bold red")

    @staticmethod
    def _tips(verdict: Verdict) -> Text:
        text = Text("Try:" if verdict.tips else "", style="bold red")
        for tip in verdict.tips:
            text.append(f"\n  • {tip}", style="red")
        return text
