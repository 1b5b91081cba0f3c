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


def fmt_duration(seconds: int | float | None, missing: str = "?") -> str:
    """A duration as a clock shows it: ``0:07``, ``12:05``, ``1:02:03``."""
    if seconds is None:
        return missing
    whole = max(0, int(round(seconds)))
    hours, rest = divmod(whole, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


def fmt_transfer(done: int, total: int, rate: float | None = None, eta_s: float | None = None) -> str:
    """``1.2 GiB of 3.4 GiB (35%), 12 MiB/s, 2:03 left``: a download as the pull CLI and the dashboard show it."""
    share = f" ({100 * done / total:.0f}%)" if total else ""
    speed = f", {fmt_bytes(rate)}/s" if rate else ""
    left = f", {fmt_duration(eta_s)} left" if eta_s is not None and done < total else ""
    return f"{fmt_bytes(done)} of {fmt_bytes(total)}{share}{speed}{left}"
