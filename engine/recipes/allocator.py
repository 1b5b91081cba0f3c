"""Give freed activation memory back to the system between layers (glibc malloc).

On CPU, torch takes tensor memory from the C library's malloc. glibc serves a block above its
mmap threshold with its own ``mmap`` (unmapped again when freed) and anything smaller from its heap,
which it can only shrink from the top. The threshold starts at 128 KiB but is dynamic: each time an
mmapped block is freed, glibc raises it to that block's size (up to 32 MiB). After the first few
steps every activation of a LoRA run (a few MiB: tokens x width x 4 bytes) comes from the heap, and
the heap keeps every hole that the forward pass's short-lived tensors leave between the ones kept
for backward. Measured with tuitune's defaults on SmolLM2 and a 913-token batch: 3.72 GiB peak RSS
for about 2.5 GiB ever live at once; the heap held 1.2 GiB free after the forward pass.

:func:`return_freed_memory` fixes the threshold (``mallopt(M_MMAP_THRESHOLD)``, which also turns the
dynamic adjustment off): every block of THRESHOLD or more is mapped for itself and unmapped when
freed, so the peak RSS follows what is live (2.17 GiB on the same batch, with the lean MLP; a
380-token batch peaked at 2.15 GiB with a 1 MiB threshold, its sub-MiB tensors fragmenting the heap,
and at 1.58 GiB with 128 KiB). The price is a page fault per 4 KiB when a block is first written,
and it grows as the threshold falls: on bench_speed's LoRA case (quiet machine) 128 KiB gave 1.09x
the checkpointed reference's tokens/s at 0.78x its memory, 1 MiB 1.50x at 0.92x, so 1 MiB it is:
both targets met. Other allocators (jemalloc, tcmalloc, macOS) are left alone.

Most of that price is the faults themselves, one per 4 KiB page of every block mapped anew each step (78.6
million in a cutoff-1024 run). :func:`large_blocks_in_huge_pages` turns on torch's own remedy
(``THP_MEM_ALLOC_ENABLE``): its CPU allocator aligns each block of 2 MiB or more to 2 MiB and advises the kernel to
back it with transparent huge pages, one fault per 2 MiB. On SmolLM2 LoRA at cutoff 512 (batch 4) that took a step
from 5.9 to 2.1 million faults at the same peak RSS. It needs the kernel's THP mode ``madvise`` or ``always`` (not
``never``), and torch reads the variable once, at its first such block: the trainer sets it before the model loads.
It helps wherever torch allocates on the CPU (on a GPU box: loading, CPU offload), never the GPU's memory.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import sys
from pathlib import Path

log = logging.getLogger("engine.recipes.allocator")

M_MMAP_THRESHOLD = -3
"""mallopt's parameter number for the mmap threshold (glibc's malloc.h)."""
THRESHOLD = 1 << 20
"""Blocks of 1 MiB or more get their own mapping: activations (a 128-token batch of a 576-wide model
is 288 KiB a tensor; most are several MiB), not the many small tensors of the Python side."""
HUGE_PAGES_ENV = "THP_MEM_ALLOC_ENABLE"
"""torch's switch for 2 MiB-aligned CPU blocks advised as transparent huge pages (c10/core/alloc_cpu.cpp)."""
THP_MODE = Path("/sys/kernel/mm/transparent_hugepage/enabled")


def return_freed_memory(threshold: int = THRESHOLD) -> bool:
    """Fix glibc's mmap threshold at ``threshold`` bytes; False (and nothing done) off glibc."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        version = libc.gnu_get_libc_version  # glibc only (musl has no mallopt tuning of this kind)
    except (OSError, AttributeError):
        return False
    version.restype = ctypes.c_char_p
    done = bool(libc.mallopt(M_MMAP_THRESHOLD, threshold))
    log.info("glibc %s malloc: mmap threshold fixed at %d bytes: %s", version().decode(), threshold,
             "done" if done else "refused")
    return done


def large_blocks_in_huge_pages() -> bool:
    """Turn on torch's huge pages for CPU blocks of 2 MiB or more, unless the environment already says (the user's
    value wins); whether they are on. Call it before torch allocates its first such block (it reads the switch once).
    """
    os.environ.setdefault(HUGE_PAGES_ENV, "1")
    return huge_pages_on()


def huge_pages_on() -> bool:
    """Whether torch's CPU blocks of 2 MiB or more get transparent huge pages here: the switch is set and the
    kernel's THP mode allows advised regions (``madvise`` or ``always``)."""
    if os.environ.get(HUGE_PAGES_ENV) != "1":
        return False
    try:
        mode = THP_MODE.read_text(encoding="ascii")
    except OSError:
        return False
    return "[always]" in mode or "[madvise]" in mode
