"""The app's modes: the runs screen, and the screens written separately when they are installed."""

from __future__ import annotations

import importlib
from importlib.util import find_spec
from typing import Callable

from textual.app import ComposeResult
from textual.screen import Screen
from textual.widgets import Footer, Static

from tuitune.screens.runs import RunsScreen


OPTIONAL_SCREENS = {
    "models": ("tuitune.screens.models", "ModelsScreen"),
    "data": ("tuitune.screens.data", "DataScreen"),
    "presets": ("tuitune.screens.presets", "PresetsScreen"),
}
"""Screens written separately: a mode exists only when its module does."""


class BrokenScreen(Screen[None]):
    """Stands in for a screen whose module failed to import, saying why."""

    def __init__(self, what: str, error: Exception) -> None:
        super().__init__()
        self.message = f"The {what} screen could not load: {type(error).__name__}: {error}"

    def compose(self) -> ComposeResult:
        yield Static(self.message, markup=False)
        yield Footer()


def _lazy_screen(mode: str, module: str, name: str) -> Callable[[], Screen]:
    def make() -> Screen:
        try:
            return getattr(importlib.import_module(module), name)()
        except Exception as exc:  # a broken screen must not take the app down
            return BrokenScreen(mode, exc)

    return make


def available_modes() -> dict[str, Callable[[], Screen]]:
    """Mode name to screen factory, for every screen whose module exists."""
    modes: dict[str, Callable[[], Screen]] = {"runs": RunsScreen}
    for mode, (module, name) in OPTIONAL_SCREENS.items():
        if find_spec(module) is not None:
            modes[mode] = _lazy_screen(mode, module, name)
    return modes
