"""The app's modes: the runs screen, and the others imported when first opened.

The runs list is the first screen, so it is imported with the app; the models, data and presets
screens (and what they import) come in the first time their mode is switched to, keeping the
app's start short.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

from textual.screen import Screen

from tuitune.screens.runs import RunsScreen


def _when_opened(module: str, name: str) -> Callable[[], Screen]:
    """A factory that imports ``module`` and makes its screen ``name`` when the mode is first opened."""
    def make() -> Screen:
        return getattr(importlib.import_module(module), name)()

    return make


MODES: dict[str, Callable[[], Screen]] = {
    "runs": RunsScreen,
    "models": _when_opened("tuitune.screens.models", "ModelsScreen"),
    "data": _when_opened("tuitune.screens.data", "DataScreen"),
    "presets": _when_opened("tuitune.screens.presets", "PresetsScreen"),
}
"""Mode name to screen factory, as ``App.MODES`` takes them."""
