"""Small behaviours shared by the app's own screens."""

from __future__ import annotations

from collections.abc import Iterable
from functools import partial

from textual.actions import parse as parse_action
from textual.app import App, SystemCommand
from textual.binding import ActiveBinding
from textual.screen import Screen

GLOBAL_ACTIONS = ("switch_mode", "new_run")
"""App actions the runs screen's footer shows but a detail screen's footer leaves out."""


class OwnKeysInFooter:
    """Screen mixin: the footer lists this screen's keys, not the app's mode keys.

    At 80 columns a footer holding both overflows. The mode keys keep working and the
    command palette lists them; only the footer leaves them out.
    """

    @property
    def active_bindings(self) -> dict[str, ActiveBinding]:
        """The screen's active bindings minus the app's mode and new-run keys."""
        bindings: dict[str, ActiveBinding] = super().active_bindings  # type: ignore[misc]
        app = self.app  # type: ignore[attr-defined]
        return {
            key: active
            for key, active in bindings.items()
            if not (active.node is app and active.binding.action.startswith(GLOBAL_ACTIONS))
        }


def binding_commands(app: App, screen: Screen, skip: set[str]) -> Iterable[SystemCommand]:
    """A palette command for each described key of ``screen`` and ``app`` that is enabled now.

    Args:
        app: The app (its keys come after the screen's).
        screen: The screen the palette was opened from.
        skip: Lower-case titles or actions already offered (the built-in commands).
    """
    seen = {"command_palette", *skip}
    for node, binding in [(screen, b) for _, b in screen._bindings] + [(app, b) for _, b in app._bindings]:
        _, name, params = parse_action(binding.action)
        if binding.description and seen.isdisjoint({binding.action, name, binding.description.lower()}) \
                and node.check_action(name, params) is not False:
            seen.add(binding.action)
            run = partial(app.run_action, binding.action, node)
            yield SystemCommand(binding.description, f"key: {binding.key}", run)
