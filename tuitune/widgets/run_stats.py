"""RunStats: progress bar with ETA, epoch and the latest training numbers of a run."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static

from tuitune import fmt
from tuitune.runs.state import RunState


class RunStats(Static):
    """The numbers panel of the dashboard; repaints only when its text changes."""

    DEFAULT_CSS = """
    RunStats { height: auto; }
    """

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__("", id=id, classes=classes)
        self._plain = ""

    def show(self, state: RunState, status: str, width: int = 40, now: float | None = None) -> bool:
        """Render ``state`` (``now``: the clock, for a live run's elapsed time); returns whether the text changed."""
        text = render_stats(state, status, width, now)
        if text.plain == self._plain:
            return False
        # A layout pass only when the line count changes: it repaints far more than the panel.
        same_height = text.plain.count("\n") == self._plain.count("\n")
        self._plain = text.plain
        self.update(text, layout=not same_height)
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
