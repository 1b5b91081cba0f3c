"""Short, fixed-width renderings of numbers, times and durations for dense panels.

Byte sizes are :func:`engine.units.fmt_bytes` and durations :func:`engine.units.fmt_duration`, the one formatters
of app and engine.
"""

from __future__ import annotations

import time

from engine.units import fmt_duration

DASH = "–"


def num(value: float | None, digits: int = 4) -> str:
    """A float with ``digits`` significant digits, or a dash when unknown."""
    if value is None:
        return DASH
    return f"{value:.{digits}g}"


def sci(value: float | None) -> str:
    """A small float such as a learning rate, in scientific notation."""
    return DASH if value is None else f"{value:.2e}"


def duration(seconds: float | None) -> str:
    """``45s``, ``12m05s``, ``3h07m`` or ``2d04h`` (engine.units.fmt_duration), a dash when unknown."""
    return fmt_duration(seconds, DASH)


def clock(t: float | None, year: bool = True) -> str:
    """A Unix time as local ``YYYY-MM-DD HH:MM`` (``MM-DD HH:MM`` without the year)."""
    return DASH if t is None else time.strftime("%Y-%m-%d %H:%M" if year else "%m-%d %H:%M", time.localtime(t))


def bar(fraction: float, width: int) -> str:
    """A text bar of ``width`` cells filled to ``fraction`` (0 to 1)."""
    width = max(1, width)
    filled = round(max(0.0, min(1.0, fraction)) * width)
    return "█" * filled + "░" * (width - filled)
