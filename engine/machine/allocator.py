"""The C allocator under a trainer on CPU: tcmalloc when the machine has it, else glibc with a fixed mmap threshold.

On CPU, torch takes tensor memory from the C library's malloc, and a training step frees and takes
again gigabytes of activations. What the allocator does with a freed block decides both the step's
speed and its peak memory:

* glibc serves a block above its mmap threshold with its own ``mmap`` (unmapped again when freed)
  and anything smaller from its heap, which it can only shrink from the top. The threshold starts at
  128 KiB but is dynamic: each time an mmapped block is freed, glibc raises it to that block's size
  (up to 32 MiB). After the first few steps every activation of a LoRA run comes from the heap, and the
  heap keeps every hole the forward pass's short-lived tensors leave between the ones kept for backward:
  3.72 GiB peak RSS for about 2.5 GiB ever live at once (SmolLM2, a 913-token batch).
  :func:`return_freed_memory` fixes the threshold (``mallopt(M_MMAP_THRESHOLD)``, which also turns the
  dynamic adjustment off), so the peak RSS follows what is live; the price is a page fault per 4 KiB
  each time a block is written afresh: 5.9 million faults in a cutoff-512 step, about 40% of it.
* tcmalloc (gperftools, the allocator PyTorch's CPU performance guide recommends) keeps freed blocks
  in size classes and spans it hands out again without the heap's holes, and gives idle memory back
  gradually. Measured in process on the same steps (2026-12-07, quiet, LoRA, batch 4): cutoff 256
  7.39 → 4.53 s a step at 2.36 → 2.25 GiB peak RSS; 512 16.24 → 9.63 s at 3.29 → 3.33 GiB; 1024
  32.69 → 20.22 s at 5.49 → 5.54 GiB, with almost no page faults.

tcmalloc must be in the process before anything allocates, so it is preloaded: the supervisor starts a
CPU trainer with :func:`preload_env` (``LD_PRELOAD``), and the trainer asks :func:`tcmalloc_in_use` to
know which of the two it runs on. A machine without it (Debian and Ubuntu: ``libtcmalloc-minimal4``)
trains on glibc as before. ``TUITUNE_MALLOC=glibc`` keeps glibc; a ``LD_PRELOAD`` the user set with
another allocator in it is left alone. This module imports nothing but the standard library: the
supervisor uses it.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import sys
from collections.abc import Mapping

log = logging.getLogger("engine.machine.allocator")

M_MMAP_THRESHOLD = -3
"""mallopt's parameter number for the mmap threshold (glibc's malloc.h)."""
THRESHOLD = 1 << 20
"""Blocks of 1 MiB or more get their own mapping: activations (a 128-token batch of a 576-wide model
is 288 KiB a tensor; most are several MiB), not the many small tensors of the Python side."""

TCMALLOC_LIBRARIES = ("tcmalloc_minimal", "tcmalloc")
"""gperftools' libraries, the minimal one (no heap profiler) first."""
OTHER_ALLOCATORS = ("tcmalloc", "jemalloc", "mimalloc")
"""Names in a user's own LD_PRELOAD that mean an allocator was already chosen."""
CHOICE_VARIABLE = "TUITUNE_MALLOC"
"""``glibc`` here keeps a CPU trainer on glibc's malloc."""
QUIET_LARGE_ALLOCATIONS = {"TCMALLOC_LARGE_ALLOC_REPORT_THRESHOLD": str(1 << 40)}
"""tcmalloc prints a line for every allocation over 1 GiB (a long batch's logits are one) unless told not to."""


def preload_env(environ: Mapping[str, str] = os.environ) -> dict[str, str]:
    """The environment to add for a trainer on CPU to run on tcmalloc; empty where it cannot or should not."""
    if not sys.platform.startswith("linux") or environ.get(CHOICE_VARIABLE, "").lower() == "glibc":
        return {}
    preloaded = environ.get("LD_PRELOAD", "")
    if any(name in preloaded for name in OTHER_ALLOCATORS):
        return {}
    library = next(filter(None, map(ctypes.util.find_library, TCMALLOC_LIBRARIES)), None)
    if library is None:
        return {}
    return {"LD_PRELOAD": " ".join(filter(None, (preloaded, library))), **QUIET_LARGE_ALLOCATIONS}


def tcmalloc_in_use() -> bool:
    """Whether this process allocates through tcmalloc (preloaded, its symbols come before the C library's)."""
    try:
        return hasattr(ctypes.CDLL(None), "tc_malloc")
    except OSError:
        return False


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
