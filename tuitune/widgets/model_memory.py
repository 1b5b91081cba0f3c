"""ModelMemory: the memory estimate as a stacked bar against the device, its breakdown and a verdict."""

from __future__ import annotations

from dataclasses import dataclass, field

from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual.widgets import Static

from engine.estimate.memory import Estimate
from engine.units import fmt_bytes

COLORS = {"weights": "blue", "adapter": "magenta", "gradients": "cyan", "optimizer": "yellow",
          "activations": "green", "overhead": "bright_black"}


@dataclass
class MemoryView:
    """Everything the panel shows: pushed in by the screen."""

    estimate: Estimate | None
    rows: list[tuple[str, int, str]] = field(default_factory=list)
    """(term, bytes, detail) from ``engine.estimate.breakdown``."""
    capacity: int = 0
    """Bytes available: the largest GPU's memory, or host memory without a GPU."""
    capacity_label: str = ""
    """What ``capacity`` is, e.g. GPU 0 NVIDIA L4."""
    tips: list[str] = field(default_factory=list)
    """What to change when it will not fit."""
    message: str = ""
    """Why there is no estimate (shown instead of the bar)."""
    devices: str = ""
    """The GPUs found (or why none), one line."""


class ModelMemory(Static):
    """Stacked bar of the estimate's terms over the device's memory, with a fit verdict."""

    DEFAULT_CSS = """
    ModelMemory { height: auto; }
    ModelMemory.-overflow { border-left: thick $error; padding-left: 1; }
    """

    def show(self, view: MemoryView) -> None:
        """Display ``view``."""
        self._view = view
        est = view.estimate
        self.set_class(est is not None and est.total > view.capacity, "-overflow")
        self.refresh(layout=True)
        self.update(self._render_view())

    def on_resize(self) -> None:
        """Redraw the bar to the new width."""
        if getattr(self, "_view", None) is not None:
            self.update(self._render_view())

    def _render_view(self) -> Group | Text:
        view = self._view
        est = view.estimate
        if est is None:
            return Text.assemble(view.message, "\n", (view.devices, "dim"))
        title = Text.assemble(("Memory ", "bold"), f"{est.method}, {est.trainable_params:,} trainable, on {est.device}")
        width = max(10, (self.content_size.width or 60) - 2)
        scale = max(est.total, view.capacity, 1)
        bar = Text("▕")
        # The peak holds the larger of the backward pass (activations) and the optimizer step
        # (gradients and its temporaries): draw the step's excess over the activations, if any.
        step = max(0, est.gradients + est.step_temp - est.activations)
        for name, value, _detail in view.rows:
            value = step if name == "gradients" else value
            bar.append("█" * round(width * value / scale), COLORS[name])
        bar.append("░" * max(0, width - bar.cell_len + 1), "bright_black")
        bar.truncate(width + 1)
        if est.total > view.capacity:  # mark where the device's memory ends
            limit = 1 + min(width - 1, round(width * view.capacity / scale))
            bar = bar[:limit] + Text("┃", "bold red") + bar[limit + 1:]
        bar.append("▏")
        columns = 3 if width >= 60 else 2
        legend = Table.grid(padding=(0, 2))
        for _ in range(columns):
            legend.add_column(no_wrap=True)
        cells = [Text.assemble(("■ ", COLORS[name]), f"{name} {fmt_bytes(value)}") for name, value, _ in view.rows]
        for k in range(0, len(cells), columns):
            legend.add_row(*cells[k:k + columns])
        other = next((detail for name, _, detail in view.rows if name == "activations"), "")
        # The verdict comes right under the title so a small terminal shows it without scrolling.
        return Group(title, self._verdict(view, est), Text(view.devices, style="dim"), bar, legend,
                     Text(f"activations: {other}", style="dim"), self._tips(view))

    @staticmethod
    def _verdict(view: MemoryView, est: Estimate) -> Text:
        need, have = fmt_bytes(est.total), fmt_bytes(view.capacity)
        if est.total <= view.capacity:
            return Text(f"✓ fits: {need} of {have} ({view.capacity_label})", style="green")
        return Text(f"✗ Will not fit: needs {need}, {view.capacity_label} has {have}.", style="bold red")

    @staticmethod
    def _tips(view: MemoryView) -> Text:
        text = Text("Try:" if view.tips else "", style="bold red")
        for tip in view.tips:
            text.append(f"\n  • {tip}", style="red")
        return text
