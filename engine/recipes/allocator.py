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
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import sys

log = logging.getLogger("engine.recipes.allocator")

M_MMAP_THRESHOLD = -3
"""mallopt's parameter number for the mmap threshold (glibc's malloc.h)."""
THRESHOLD = 1 << 20
"""Blocks of 1 MiB or more get their own mapping: activations (a 128-token batch of a 576-wide model
is 288 KiB a tensor; most are several MiB), not the many small tensors of the Python side."""


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
