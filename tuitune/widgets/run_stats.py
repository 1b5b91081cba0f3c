"""RunStats: progress bar with ETA, epoch and the latest training numbers of a run."""

from __future__ import annotations

from rich.text import Text
from textual.geometry import Region
from textual.widget import Widget

from tuitune import fmt
from tuitune.runs.state import RunState


class RunStats(Widget):
    """The numbers panel of the dashboard; repaints only the lines whose text changed.

    Over SSH every repainted line is resent whole with its colours: a run logging each step changes the loss and
    the elapsed time every second, while the start time, learning rate and checkpoint count stand still.
    """

    DEFAULT_CSS = """
    RunStats { height: auto; }
    """

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self._text = Text()
        self._lines: list[str] = []

    def render(self) -> Text:
        """The panel's text as last shown."""
        return self._text

    def show(self, state: RunState, status: str, width: int = 40, now: float | None = None) -> bool:
        """Render ``state`` (``now``: the clock, for a live run's elapsed time); returns whether the text changed."""
        text = render_stats(state, status, width, now)
        lines = text.plain.split("\n")
        if lines == self._lines:
            return False
        changed = [y for y, line in enumerate(lines) if y >= len(self._lines) or self._lines[y] != line]
        same_height = len(lines) == len(self._lines)
        self._text, self._lines = text, lines
        if same_height:  # only the changed lines; a layout pass when the count changes repaints far more
            self.refresh(*(Region(0, y, self.size.width, 1) for y in changed))
        else:
            self.refresh(layout=True)
        return True


def render_stats(state: RunState, status: str, width: int = 40, now: float | None = None) -> Text:
    """The panel's text: progress line, then label/value pairs.

    A running run's elapsed time counts up to ``now`` when given, so it ticks between steps (a
    CPU step can take a minute); otherwise it runs to the last event, as it does once ended.
    """
    elapsed = state.duration_s
    if status == "running" and now is not None and state.started_t is not None:
        elapsed = max(0.0, now - state.started_t)
    out = Text()
    total = state.total_steps
    share = state.progress or 0.0
    out.append(fmt.bar(share, max(10, width - 2)), style="green" if status != "failed" else "red")
    out.append("\n")
    eta = fmt.duration(state.eta_s) if status == "running" else DONE.get(status, fmt.DASH)
    out.append(f"step {state.step}/{total or '?'}  {share * 100:.0f}%  ETA {eta}\n", style="bold")
    pairs = [
        ("epoch", fmt.num(state.epoch, 3)),
        ("loss", fmt.num(state.loss)),
        ("eval loss", fmt.num(state.eval_loss)),
        ("lr", fmt.sci(state.lr)),
        ("grad norm", fmt.num(state.grad_norm)),
        ("tokens/s", fmt.num(state.tokens_per_s, 5)),
        ("started", fmt.clock(state.started_t, year=False)),
        ("elapsed", fmt.duration(elapsed)),
        ("checkpoints", str(len(state.checkpoints))),
    ]
    if state.resumed_from_step is not None:  # this attempt continues an earlier one
        pairs.append(("resumed at", f"step {state.resumed_from_step}"))
    for label, value in pairs:
        out.append(f"{label:<12}", style="dim")
        out.append(f"{value}\n")
    out.rstrip()
    return out


DONE = {"finished": "done", "stopped": "stopped", "failed": "failed", "lost": "lost"}
"""What the ETA slot says once a run has ended."""
