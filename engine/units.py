"""Human renderings of quantities that every part of tuitune prints the same way. Stdlib only."""

from __future__ import annotations

KIB, MIB, GIB, TIB = 1024, 1024**2, 1024**3, 1024**4


def fmt_bytes(n: int | float | None, missing: str = "–") -> str:
    """Bytes in binary units, short: ``512 B``, ``12 KiB``, ``512 MiB``, ``3.2 GiB``, ``1.5 TiB``."""
    if n is None:
        return missing
    size = abs(n)
    if size >= TIB:
        return f"{n / TIB:.1f} TiB"
    if size >= GIB:
        return f"{n / GIB:.1f} GiB"
    if size >= MIB:
        return f"{n / MIB:.0f} MiB"
    return f"{n / KIB:.0f} KiB" if size >= KIB else f"{n:.0f} B"


def fmt_duration(seconds: float | None, missing: str = "–") -> str:
    """``45s``, ``12m05s``, ``3h07m`` or ``2d04h``."""
    if seconds is None:
        return missing
    s = int(max(0, seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 86400}d{s % 86400 // 3600:02d}h"


def fmt_transfer(done: int, total: int, rate: float | None = None, eta_s: float | None = None) -> str:
    """``1.2 GiB of 3.4 GiB (35%), 12 MiB/s, 2m03s left``: a download as the pull CLI and the dashboard show it."""
    share = f" ({100 * done / total:.0f}%)" if total else ""
    speed = f", {fmt_bytes(rate)}/s" if rate else ""
    left = f", {fmt_duration(eta_s)} left" if eta_s is not None and done < total else ""
    return f"{fmt_bytes(done)} of {fmt_bytes(total)}{share}{speed}{left}"
