"""A pull job: ``python -m engine pull --job-dir PULLS/ORG--NAME@REV``, a model fetched from the Hub into its cache.

It belongs to no run: its folder is ``$XDG_DATA_HOME/tuitune/pulls/ORG--NAME@REV/`` (:func:`engine.paths.pull_dir`),
one per repo and revision, so a second pull of the same model meets the first one's lock and is refused while it
runs, and a pull started again appends to the same events. job.yaml holds ``repo_id`` and ``revision``.

Top to bottom: job.yaml → the repo's file list and sizes, access (config.json fetched), room on the cache's disk
(:func:`engine.models.hub.plan_pull`: each a one-line ``job_failed`` before anything big is fetched) →
``job_started`` → the files the cache lacks, with ``progress`` events (:mod:`engine.models.download`) →
``job_finished``. A stop (SIGTERM/SIGINT) ends every download thread at its next chunk: the files already whole
stay in the cache and are not fetched again by the next pull.

**Events** (``events.jsonl`` of the pull folder):

- ``job_started``: ``kind`` ("pull"), ``repo_id``, ``revision``, ``commit``, ``files`` (how many the pull
  fetches in all), ``total_bytes``, ``download_bytes`` (what the cache lacks), ``free_bytes``, ``destination``
  (the snapshot folder), ``pid``;
- ``progress``: ``phase`` ("download"), ``done`` and ``total`` (bytes, the files already whole included),
  ``files_done``, ``files_total``, ``rate_bytes_per_s``, ``eta_s``; about twice a second and once at the end;
- one terminal event: ``job_finished`` with ``destination``, ``total_bytes``, ``download_bytes``, ``elapsed_s``;
  ``job_stopped`` with the last progress fields and ``killed`` (false); or ``job_failed`` (``cause`` one line).
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from engine.jobs.runner import StopFlag, Stopped, job_failure, read_job_settings, run_job
from engine.models import hf_cache
from engine.models.download import DownloadStopped, download
from engine.models.hub import HubError, plan_pull
from engine.protocol import JOB_FINISHED, JOB_STARTED, PROGRESS, EventWriter


class PullSettings(BaseModel):
    """A pull job's ``job.yaml``."""

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)

    repo_id: str
    """The model's hub id, ORG/NAME."""
    revision: str | None = None
    """A branch, tag or commit; None for main."""


def main(argv: list[str]) -> int:
    """``python -m engine pull --job-dir DIR``."""
    last: dict[str, Any] = {}
    code = run_job(argv, "pull", "Download a model from the Hugging Face Hub into its cache.",
                   work=lambda job_dir, events, flag: pull(job_dir, events, flag, last),
                   stopped=lambda _: {key: last.get(key) for key in ("phase", "done", "total")}, failure=failure)
    # A download thread blocked in a read would hold the interpreter's exit (engine.models.download.ABANDONED):
    # the events are written and flushed, nothing else is left to do.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def pull(job_dir: Path, events: EventWriter, flag: StopFlag, last: dict[str, Any]) -> None:
    """Check and fetch the model job.yaml names, writing the job's events."""
    started = time.monotonic()
    settings = read_job_settings(job_dir, PullSettings)
    listing = plan_pull(settings.repo_id, settings.revision)
    flag.check()
    missing = sum(listing.missing().values())
    cache = hf_cache.hub_cache_dir()
    free = shutil.disk_usage(next(p for p in (cache, *cache.parents) if p.is_dir())).free
    events.emit(JOB_STARTED, kind="pull", repo_id=listing.repo_id, revision=listing.revision, commit=listing.commit,
                files=len(listing.files), total_bytes=listing.total_bytes, download_bytes=missing, free_bytes=free,
                destination=str(listing.snapshot()), pid=os.getpid())

    def report(fields: dict[str, Any]) -> None:
        last.update(fields)
        events.emit(PROGRESS, **fields)

    try:
        path = download(listing, report, flag.event)
    except DownloadStopped:
        raise Stopped from None
    events.emit(JOB_FINISHED, destination=str(path), total_bytes=listing.total_bytes, download_bytes=missing,
                elapsed_s=round(time.monotonic() - started, 2))


def failure(exc: BaseException) -> dict[str, Any]:
    """A Hub refusal is its own one line, with nothing to add; anything else as every job says it."""
    if isinstance(exc, HubError):
        return {"cause": str(exc), "hint": None, "errors": []}
    return job_failure(exc)
