"""One attempt at a time in a folder: an OS lock held for the life of the attempt. Stdlib only.

The supervisor of a training attempt takes an exclusive ``flock`` on ``RUN/lock`` before it
does anything else, and hands the same open file to the trainer it starts. A ``flock`` belongs
to the open file, not to a process, so the folder stays locked while any process of the
attempt lives (a trainer orphaned by a killed supervisor included) and is freed by the kernel
when the last one exits, however it exits. Jobs (evaluation, export) lock their own folders the
same way. A folder a job writes into without owning it (an export's destination) is locked as the
folder itself, ``lock_file=None``, so nothing is left in it. Whether a folder is busy is asked with a
shared, non-blocking lock that is let go at once, so asking never writes anything and never blocks.
"""

from __future__ import annotations

import errno
import fcntl
import os
import time
from pathlib import Path

LOCK_FILE = "lock"
"""The lock's file in a run or job folder (empty; only its lock matters)."""
LOCKED = 75
"""Exit status of a supervisor that found its folder locked by another attempt (EX_TEMPFAIL)."""


def held_elsewhere(folder: str | os.PathLike[str], kind: str) -> str:
    """The one-line refusal of a job whose folder another job of ``kind`` holds, saying what to do."""
    return f"{folder} is being written by another {kind}; wait for it to end or choose another destination"


class FolderLock:
    """The exclusive lock of one run or job folder.

    Args:
        folder: The run or job folder.
        lock_file: The lock's file in it; None locks the folder itself (it must exist), for a folder the
            job does not own.
    """

    def __init__(self, folder: str | os.PathLike[str], lock_file: str | None = LOCK_FILE) -> None:
        self.path = Path(folder) / lock_file if lock_file else Path(folder)
        self.flags = os.O_RDWR | os.O_CREAT if lock_file else os.O_RDONLY | os.O_DIRECTORY
        self.fd: int | None = None
        """The open lock file while held: pass it to child processes that must hold it too."""

    def acquire(self, wait_s: float = 0.5) -> bool:
        """Take the lock; False when another attempt holds it.

        Waits up to ``wait_s`` seconds: a reader asking :func:`is_locked` holds a shared lock for
        an instant, and must not make a starting attempt give up.
        """
        fd = os.open(self.path, self.flags | os.O_CLOEXEC, 0o644)
        deadline = time.monotonic() + wait_s
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                self.fd = fd
                return True
            except OSError as exc:
                if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN) or time.monotonic() >= deadline:
                    os.close(fd)
                    return False
                time.sleep(0.02)

    def release(self) -> None:
        """Let go (the lock also ends with the last process holding the file)."""
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


def is_locked(folder: str | os.PathLike[str], lock_file: str | None = LOCK_FILE) -> bool:
    """Whether an attempt holds ``folder``'s lock now (no lock file: no attempt ever started); ``lock_file``
    as for :class:`FolderLock`.

    Raises:
        OSError: the lock file is there but cannot be opened (no permission): whether it is held cannot
            be told, and must not read as free.
    """
    try:
        fd = os.open(Path(folder) / lock_file if lock_file else Path(folder), os.O_RDONLY | os.O_CLOEXEC)
    except (FileNotFoundError, NotADirectoryError):
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError as exc:
        return exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN)
    finally:
        os.close(fd)
    return False
