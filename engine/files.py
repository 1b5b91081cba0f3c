"""Writing files so that a reader sees the old version or the new one, never half, and reading
files a user or another process may have replaced with something hostile. Standard library only."""

from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path


def current_umask() -> int:
    """The process's umask, read without changing it where Linux shows it (``/proc/self/status``)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)  # elsewhere the only way to read it is to set it, then put it back
    os.umask(mask)
    return mask


def staging_dir(parent: Path, prefix: str) -> Path:
    """A fresh hidden folder in ``parent`` to fill and rename into place, with the mode the user's umask gives.

    ``tempfile.mkdtemp`` makes it 0700, which is right for a scratch folder but would carry over to the
    renamed result, unlike every other folder the user makes.
    """
    folder = Path(tempfile.mkdtemp(dir=parent, prefix=prefix))
    folder.chmod(0o777 & ~current_umask())
    return folder


def write_text_atomic(path: Path, text: str) -> None:
    """Replace ``path`` with ``text`` so a reader sees the old file or the new one, never half.

    The file gets the mode an ordinary write would (0666 less the umask), not the temporary file's 0600.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o666 & ~current_umask())
        with os.fdopen(fd, "w", encoding="utf-8") as file:
            file.write(text)
            file.flush()
            os.fsync(file.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class NotARegularFile(OSError):
    """A path that is not a plain file; the message says what it is instead."""


class FileTooLarge(OSError):
    """A file larger than its reader accepts; the message gives both sizes."""

    def __init__(self, path: str | os.PathLike[str], size: int, limit: int) -> None:
        super().__init__(f"{path}: too large ({size / (1 << 20):.1f} MiB); at most {limit / (1 << 20):g} MiB")
        self.size = size
        """Bytes the file has (at least)."""


def file_stamp(path: Path) -> list:
    """``[resolved path, size, mtime in ns]`` of a file: what changes when its content does, for cache keys.

    Raises:
        OSError: the file cannot be read.
    """
    path = path.expanduser().resolve()
    info = path.stat()
    return [str(path), info.st_size, info.st_mtime_ns]


def file_kind(mode: int) -> str:
    """What a file that is not a regular file is, in words: a folder, a FIFO, a character device …"""
    kinds = ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"),
             (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"))
    return next((name for test, name in kinds if test(mode)), "not a plain file")


def read_regular(path: str | os.PathLike[str], limit: int) -> bytes:
    """The bytes of ``path``, refusing anything but a regular file of at most ``limit`` bytes.

    The kind is checked before the file is opened: opening a FIFO for reading blocks until a
    writer comes, and a device such as /dev/zero never ends.

    Raises:
        NotARegularFile: saying what the path is instead.
        FileTooLarge: saying how large it is and what the limit is.
        OSError: when it cannot be read (missing: FileNotFoundError).
    """
    info = os.stat(path)
    if not stat.S_ISREG(info.st_mode):
        raise NotARegularFile(f"{path}: not a regular file ({file_kind(info.st_mode)})")
    with open(path, "rb") as file:
        data = file.read(limit + 1)
    if max(info.st_size, len(data)) > limit:  # checked after the read too: it may have grown
        raise FileTooLarge(path, max(info.st_size, len(data)), limit)
    return data
