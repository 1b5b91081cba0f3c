"""SamplesPanel: the latest answers an RL run sampled, each with its reward (what people stare at in RL runs)."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.widgets import Static

Event = dict[str, Any]


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _flat(text: Any) -> str:
    """One line: newlines shown as ⏎ so an answer's shape stays visible."""
    return " ⏎ ".join(str(text or "").split("\n")).strip()


def samples_text(event: Event | None) -> Text:
    """The panel's text for a ``samples`` event: a head line, then each prompt on a line of its own with its
    answers under it, ``reward answer [each reward's score]``, best first.

    The answer comes right after its reward, so a narrow panel (80 columns) cuts the scores and the answer's
    end, never the whole answer: a group's answers share one prompt, which is written once above them.
    """
    if not event:
        return Text("no answers sampled yet", style="dim")
    samples = [s for s in event.get("samples") or [] if isinstance(s, dict) and "completion" in s]
    text = Text.assemble(("answers sampled at step ", "dim"), (str(event.get("step", "?")), "bold"),
                         (" · reward, answer, under its prompt", "dim"))
    samples.sort(key=lambda s: -(_number(s.get("reward")) or 0.0))
    groups: dict[str, list[Event]] = {}
    for sample in samples:  # prompts in the order of their best answer
        groups.setdefault(_flat(sample.get("prompt")), []).append(sample)
    for prompt, answers in groups.items():
        text.append("\n")
        text.append(prompt or "(no prompt)", style="italic dim")
        for sample in answers:
            reward = _number(sample.get("reward"))
            style = "dim" if reward is None else "bold green" if reward > 0 else "bold red" if reward < 0 else "bold"
            text.append("\n")
            text.append(f"{reward:+6.2f} " if reward is not None else "     ? ", style=style)
            text.append(_flat(sample.get("completion")))
            scores = sample.get("rewards") if isinstance(sample.get("rewards"), dict) else {}
            if len(scores) > 1:
                parts = " ".join(f"{name} {value:g}" for name, value in scores.items() if _number(value) is not None)
                text.append(f"  [{parts}]", style="dim")
    return text


class SamplesPanel(Static):
    """The latest ``samples`` event as lines of answers with their rewards; data is pushed with ``show``."""

    DEFAULT_CSS = """
    SamplesPanel { height: auto; text-wrap: nowrap; text-overflow: ellipsis; }
    """

    def show(self, event: Event | None) -> None:
        """Show ``event`` (None: nothing sampled yet)."""
        self.update(samples_text(event))
