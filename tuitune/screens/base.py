"""Small behaviours shared by the app's own screens."""

from __future__ import annotations

from textual.binding import ActiveBinding

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
