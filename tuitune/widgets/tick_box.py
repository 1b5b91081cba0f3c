"""TickBox: a checkbox whose mark shows its value without colour (``▐X▌`` ticked, ``▐ ▌`` not).

Textual's Checkbox draws ``X`` in both states and tells them apart by colour alone, which a monochrome
terminal, a screen reader's transcript or a colour-blind user cannot see.
"""

from __future__ import annotations

from textual.widgets import Checkbox


class TickBox(Checkbox):
    """A :class:`~textual.widgets.Checkbox` with an empty box when unticked."""

    @property
    def BUTTON_INNER(self) -> str:  # type: ignore[override]
        """The mark inside the box: the value, readable without colour."""
        return "X" if self.value else " "
