"""Fetching a model repo into the Hugging Face cache with progress, for the pull job and a run's download phase.

The files go through ``huggingface_hub.snapshot_download`` (one file per worker thread, each written to a
``<etag>.<hex>.incomplete`` file and renamed whole), restricted to the files training needs
(:attr:`engine.models.hub.Listing.files`), at the commit the listing was read at. A file already whole in the
cache is not fetched again; a file cut off by a stop or a kill starts over (huggingface_hub 2.4 resumes per file).

**Progress** is measured by watching the cache, not through the client's progress bars (their classes are
internal and change between versions): the bytes of the listed files already in the snapshot plus the bytes
of the ``.incomplete`` files this download created. Each report is one ``progress`` shape
(:func:`progress_fields`) shared by the pull job and the trainer's download phase, so the CLI and the dashboard
read the same fields.

**Stopping**: the client gives no cancel, so the progress class handed to it (``tqdm_class``) raises
:class:`DownloadStopped` from its ``update``, which each download thread calls per chunk: every thread ends at
its next chunk. The cut-off files this download made are then removed (they cannot be resumed), and those a
killed download left are removed by the next one (:func:`remove_stale_parts`).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.models import hf_cache
from engine.models.hub import Listing, endpoint, hub_error, remember_revision
from engine.protocol import DOWNLOAD

log = logging.getLogger("engine.models.download")
REPORT_EVERY_S = 0.5
"""Seconds between progress reports."""


ABANDONED = threading.Event()
"""Set when a download was given up while its threads still run (a stop, or an exception in the waiting thread):
one blocked in a read ends only at its timeout and retries, and the interpreter's exit would wait for it (the
client's thread pool is joined at exit), so a process that gives a download up ends with ``os._exit``."""


class DownloadStopped(Exception):
    """The download was asked to stop; raised inside the client's threads and out of :func:`download`."""


@dataclass
class Meter:
    """How far a download is: bytes whole or written in the cache, against the listing's total."""

    listing: Listing
    before: frozenset[Path] = frozenset()
    """``.incomplete`` files that were there before this download (another process's, or a killed one's)."""
    started: float = field(default_factory=time.monotonic)
    start_done: int = 0

    def __post_init__(self) -> None:
        self.before = frozenset(self._incomplete())
        self.start_done = self.whole()[0]

    def _incomplete(self) -> list[Path]:
        try:
            return list((hf_cache.repo_dir(self.listing.repo_id) / "blobs").glob("*.incomplete"))
        except OSError:
            return []

    def ours(self) -> list[Path]:
        """The cut-off files this download wrote."""
        return [path for path in self._incomplete() if path not in self.before]

    def whole(self) -> tuple[int, int]:
        """Bytes and count of the listed files whole in the snapshot."""
        snapshot = self.listing.snapshot()
        sizes = [size for path, size in self.listing.files.items() if (snapshot / path).is_file()]
        return sum(sizes), len(sizes)

    def measure(self) -> dict[str, Any]:
        """The progress fields now (:func:`progress_fields`)."""
        done, files_done = self.whole()
        for path in self.ours():
            try:
                done += path.stat().st_size
            except OSError:  # renamed into place between the listing and the stat
                pass
        total = self.listing.total_bytes
        elapsed = max(time.monotonic() - self.started, 1e-6)
        rate = max(done - self.start_done, 0) / elapsed
        eta = (total - done) / rate if rate > 0 and done < total else (0.0 if done >= total else None)
        return progress_fields(min(done, total), total, files_done, len(self.listing.files), rate, eta)


def progress_fields(done: int, total: int, files_done: int, files_total: int, rate: float | None,
                    eta_s: float | None) -> dict[str, Any]:
    """One download ``progress`` event's fields: ``phase`` "download", ``done``/``total`` bytes, files, rate, ETA."""
    return {"phase": DOWNLOAD, "done": done, "total": total, "files_done": files_done, "files_total": files_total,
            "rate_bytes_per_s": round(rate, 1) if rate is not None else None,
            "eta_s": round(eta_s, 1) if eta_s is not None else None}


def download(listing: Listing, report: Callable[[dict[str, Any]], None], stop: threading.Event) -> Path:
    """Fetch what the cache lacks of ``listing`` and return its snapshot folder, calling ``report`` with the
    progress fields every :data:`REPORT_EVERY_S` and once at the end.

    Raises:
        DownloadStopped: ``stop`` was set (the files already whole are kept, the cut-off ones removed).
        HubError: the Hub refused, the network or the disk failed (one line).
    """
    from huggingface_hub import snapshot_download

    for part in remove_stale_parts(listing):
        log.info("removed %s, left by a download that was killed", part)
    meter = Meter(listing)
    outcome: dict[str, BaseException | str] = {}

    def fetch() -> None:
        try:
            outcome["path"] = snapshot_download(
                listing.repo_id, revision=listing.commit, cache_dir=hf_cache.hub_cache_dir(), endpoint=endpoint(),
                allow_patterns=sorted(listing.files), tqdm_class=stoppable_progress(stop))
        except BaseException as exc:  # handed to the caller's thread
            outcome["error"] = exc

    worker = threading.Thread(target=fetch, name="download", daemon=True)
    worker.start()
    try:
        while worker.is_alive() and not stop.is_set():  # a thread blocked in a read cannot be waited for
            worker.join(REPORT_EVERY_S)
            if worker.is_alive():
                report(meter.measure())
    except BaseException:  # a signal handler's exception (a trainer's stop while loading): end the threads too
        stop.set()
        ABANDONED.set()
        _remove(meter.ours())
        raise
    if stop.is_set() or isinstance(outcome.get("error"), DownloadStopped):
        if worker.is_alive():
            ABANDONED.set()
        _remove(meter.ours())
        raise DownloadStopped
    if isinstance(error := outcome.get("error"), BaseException):
        raise hub_error(error, listing.repo_id, listing.revision) from None
    report(meter.measure())
    remember_revision(listing)
    return Path(str(outcome["path"]))


def remove_stale_parts(listing: Listing) -> list[Path]:
    """Remove the cut-off files of downloads of the repo that no process runs any more (a killed pull's: nobody
    holds the lock huggingface_hub takes per file while it downloads it); they would only fill the disk, since a
    new download starts a file over under another name. Returns what was removed."""
    from filelock import Timeout
    from huggingface_hub.utils import WeakFileLock

    repo = hf_cache.repo_dir(listing.repo_id)
    removed = []
    for part in sorted((repo / "blobs").glob("*.incomplete")):
        try:
            with WeakFileLock(repo.parent / ".locks" / repo.name / f"{part.name.split('.')[0]}.lock", timeout=0.1):
                part.unlink(missing_ok=True)
                removed.append(part)
        except Timeout:  # a download of that file is running: its part is not stale
            continue
    return removed


def _remove(paths: list[Path]) -> None:
    for path in paths:
        path.unlink(missing_ok=True)


def stoppable_progress(stop: threading.Event) -> type:
    """huggingface_hub's silent progress class, whose ``update`` raises :class:`DownloadStopped` once ``stop``
    is set: the client calls it for every chunk it receives, in every download thread."""
    from huggingface_hub.utils.tqdm import tqdm

    class StoppableProgress(tqdm):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            kwargs["disable"] = True  # the job reports progress itself: nothing for engine.log
            super().__init__(*args, **kwargs)

        def update(self, n: float | None = 1) -> bool | None:
            if stop.is_set():
                raise DownloadStopped
            return super().update(n)

    return StoppableProgress
