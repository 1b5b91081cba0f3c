"""Whether a reviewed run will fit and load: the memory estimate and the remote-code refusal. No Textual.

The new-run flow runs ``check_fit`` in a thread worker (it reads the model's files) and shows
the result with the models screen's memory panel, so both screens judge a run the same way.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from engine.config import RunConfig
from engine.units import fmt_bytes
from engine.models.info import ModelError, check_loadable, read_model_info
from tuitune.widgets.model_memory import MemoryView


@dataclass(frozen=True)
class FitCheck:
    """The verdict on one resolved config: the memory view, and why it must not start (if so)."""

    config: RunConfig
    """The config this verdict is for."""
    view: MemoryView
    """What the memory panel shows."""
    refusal: str | None = None
    """Why the run cannot start with this model (unloadable, remote code not allowed)."""

    @property
    def fits(self) -> bool:
        """False only when an estimate says the run needs more memory than there is."""
        est = self.view.estimate
        return est is None or est.total <= self.view.capacity

    def question(self) -> str:
        """What the confirmation before starting anyway asks."""
        est, view = self.view.estimate, self.view
        need = fmt_bytes(est.total) if est is not None else "?"
        tips = "".join(f"\n  • {tip}" for tip in view.tips[:3])
        return (f"This run will not fit: it needs about {need} and {view.capacity_label} has "
                f"{fmt_bytes(view.capacity)}, so it will most likely stop with out-of-memory.\n"
                f"Try:{tips}\n\nStart it anyway?")


def check_fit(config: RunConfig, gpus: list[Any], gpu_note: str) -> FitCheck:
    """Read the config's model and estimate its run against ``gpus`` (or host memory without one).

    Blocking (reads config.json and safetensors headers): call it from a thread worker.
    """
    from tuitune.screens.models import memory_view

    try:
        info = read_model_info(config.model.name_or_path)
    except (ModelError, OSError) as exc:
        return FitCheck(config, MemoryView(None, message="No estimate: the model cannot be read."), str(exc))
    view = memory_view(info, config, gpus, gpu_note)
    try:
        check_loadable(info, config.model.trust_remote_code)
    except ModelError as exc:
        return FitCheck(config, view, str(exc))
    return FitCheck(config, view)
