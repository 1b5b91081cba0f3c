"""This machine's memory: the capacity a CPU run is judged against, and what is in use. Stdlib only."""

from __future__ import annotations

import os
import resource


def host_memory() -> int:
    """Physical memory of this machine in bytes."""
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def host_memory_used() -> tuple[int, int]:
    """``(used, total)`` bytes of physical memory, used counting what is not available to new work.

    Read from ``/proc/meminfo`` (MemAvailable); where there is none, only the total is known.
    """
    total = host_memory()
    try:
        with open("/proc/meminfo", encoding="ascii") as file:
            fields = dict(line.split(":", 1) for line in file if ":" in line)
        available = int(fields["MemAvailable"].split()[0]) * 1024
    except (OSError, KeyError, ValueError):
        return 0, total
    return max(0, total - available), total


def peak_rss() -> int:
    """The peak resident memory of this process in bytes (Linux reports it in KiB)."""
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024
