"""``tuitune pull ORG/NAME [--revision REV] [--detach]``: a model fetched from the Hugging Face Hub into its cache.

Before any weights are fetched it reads the repo's file list and sizes and its config.json
(:func:`engine.models.hub.plan_pull`), and refuses in one line with exit status 2: a mistyped or missing repo, a
gated or private one this machine may not read, no network, a disk without room for what the cache lacks (when the
Hub cannot be asked but a whole copy is in the cache, that copy's folder is printed instead). A model already whole
in the cache is not fetched: its folder is printed at once. Otherwise the download is a job under the
supervisor (``python -m engine pull``, its folder one per repo and revision under ``$XDG_DATA_HOME/tuitune/pulls``,
see docs/run-folder.md), so it survives the terminal and SSH; this command follows it with a bar of bytes, rate and
time left, and prints the local folder at the end. Ctrl-C stops the pull (a second one kills it); the files already
whole are kept and not fetched again by the next pull. Exit status: 0 when the model is in the cache, 1 when the
pull stopped, failed or was lost, 2 when it was refused before it started.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from engine.protocol import JOB_FAILED, JOB_FINISHED, JOB_STARTED, LOG_FILE, PROGRESS, TERMINAL_TYPES
from engine.units import fmt_bytes
from tuitune.cli.follow import JobProgress, print_failure
from tuitune.runs.launch import start_pull
from tuitune.runs.state import describe_download


def run(args: argparse.Namespace) -> int:
    """Check the repo, then print its folder when whole, or start the pull and follow it."""
    from engine.models import hf_cache
    from engine.models.hub import HubError, plan_pull, remember_revision

    try:
        listing = plan_pull(args.repo, args.revision)
    except HubError as exc:
        cached = hf_cache.find_snapshot(args.repo, revision=args.revision)
        if cached is None:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        # Offline or unreachable, but a whole copy is here: that is what the pull was for.
        print(f"note: {exc}; the copy already here is whole", file=sys.stderr)
        print(cached)
        return 0
    missing = listing.missing()
    if not missing:
        remember_revision(listing)
        print(f"{args.repo} is already here ({fmt_bytes(listing.total_bytes)}, {len(listing.files)} files)",
              file=sys.stderr)
        print(listing.snapshot())
        return 0
    try:
        folder, offset = start_pull(args.repo, args.revision)
    except (OSError, RuntimeError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.detach:
        print(folder)
        return 0
    print(f"pulling {args.repo}: {fmt_bytes(sum(missing.values()))} to download "
          f"({len(missing)} of {len(listing.files)} files)  (log: {folder / LOG_FILE})", file=sys.stderr)
    return PullFollower(folder, offset).follow()


class PullFollower(JobProgress):
    """Follows a pull's events with a bar of bytes, rate and time left until its terminal event."""

    STOPPING = "stopping the pull (Ctrl-C again to kill); the files already whole are kept"
    KILLING = "killing the pull"
    TO_STDERR = True
    started_seen = False
    """Whether this pull's ``job_started`` came: a failure before it is a refusal (exit status 2)."""

    def columns(self) -> list[Any]:
        """What the bar says (bytes, share, rate, time left: :func:`describe_download`), the bar, time elapsed."""
        from rich.progress import BarColumn, TextColumn, TimeElapsedColumn

        return [TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn()]

    def _show(self, event: dict[str, Any]) -> None:
        """Bytes for a progress event; the rest as every job shows it."""
        if event["type"] == JOB_STARTED:
            self.started_seen = True
        if event["type"] == PROGRESS:
            self.progress.update(self.task, description=describe_download(event),
                                 completed=event.get("done") or 0, total=event.get("total") or None)
            return
        super()._show(event)

    def started(self, event: dict[str, Any]) -> str:
        """The repo, its commit, what it fetches and where."""
        return (f"{event.get('repo_id')} at {str(event.get('commit'))[:12]}: {event.get('files')} files, "
                f"{fmt_bytes(event.get('total_bytes') or 0)} in all, {fmt_bytes(event.get('download_bytes') or 0)} "
                f"to download into {event.get('destination')}")

    def report(self, end: dict[str, Any]) -> int:
        """The local folder on stdout when finished (0); else what happened on stderr (1, or 2 for a refusal)."""
        kind = end["type"]
        if kind == JOB_FINISHED:
            print(end.get("destination"))
            return 0
        if kind in TERMINAL_TYPES and kind != JOB_FAILED:
            print(f"stopped at {fmt_bytes(end.get('done') or 0)} of {fmt_bytes(end.get('total') or 0)}; the files "
                  "already whole are kept: pull again to fetch the rest", file=sys.stderr)
            return 1
        if kind == JOB_FAILED and not self.started_seen and end.get("cause"):
            print(f"error: {end['cause']}", file=sys.stderr)  # refused before the download began
            return 2
        print_failure(end, self.job_dir)
        return 1
