"""The push of an export job (``push`` in its job.yaml): one commit to a Hub repo through huggingface_hub.

:func:`open_repo` runs right after ``job_started``, before the export's slow work, so a push that cannot happen
fails in seconds rather than after a merge: it asks the Hub who the token is, as ``tuitune export`` did before
starting the job (:func:`engine.export.plan.push_access_problem`: a refused or read-only token, a namespace that
is neither the user's nor one of their organizations, where the Hub would answer 403 to the commit), then
creates the repo (``private`` as asked) or finds it there (a repo that exists gets a new commit and keeps its
visibility). :func:`upload` runs last: each file is pre-uploaded in turn (large ones through the LFS batch API),
with a ``progress`` of bytes after each file and a stop checked between files, then one commit adds them all, so
a stopped or failed push leaves the repo as it was.

The token is huggingface_hub's own (``HF_TOKEN``, or the file ``hf auth login`` writes), read by the client in
this process: nothing here writes it, and the job's events and log never hold it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from engine.export.plan import LOGIN_HINT, push_access_problem
from engine.jobs.runner import JobError, Stopped

log = logging.getLogger("engine.jobs.hub_push")


def open_repo(repo_id: str, private: bool) -> None:
    """Make sure the token may write to ``repo_id`` and the repo exists (created ``private`` when new).

    Raises:
        JobError: one line naming the repo: a refused or read-only token, another user's namespace, no network.
    """
    from huggingface_hub import HfApi

    api = HfApi()
    try:
        if problem := push_access_problem(repo_id):
            raise JobError(problem)
        url = api.create_repo(repo_id, private=private, exist_ok=True)
    except JobError:
        raise
    except Exception as exc:  # every failure of the client becomes the job's one line
        raise refusal(repo_id, exc) from exc
    log.info("pushing to %s", url)


def upload(repo_id: str, files: list[tuple[str, Path]], message: str, progress: Callable[[int, int], None],
           check: Callable[[], None]) -> dict[str, Any]:
    """Upload ``files`` (path in the repo, local file) to ``repo_id`` in one commit; returns the job_finished
    ``pushed`` fields: ``repo_id``, ``url`` (the commit's), ``commit``, ``files``, ``bytes``.

    Args:
        progress: called with bytes uploaded and bytes in all, before the first file and after each.
        check: called between files; raises to stop (the commit is then never made).

    Raises:
        JobError: one line naming the repo when the Hub refuses or cannot be reached.
    """
    from huggingface_hub import CommitOperationAdd, HfApi

    api = HfApi()
    sizes = [path.stat().st_size for _, path in files]
    total, done = sum(sizes), 0
    operations = [CommitOperationAdd(path_in_repo=name, path_or_fileobj=str(path)) for name, path in files]
    progress(0, total)
    try:
        for operation, size in zip(operations, sizes):
            check()
            api.preupload_lfs_files(repo_id, [operation])
            done += size
            progress(done, total)
        check()
        commit = api.create_commit(repo_id, operations, commit_message=message)
    except (JobError, Stopped):
        raise
    except Exception as exc:  # every failure of the client becomes the job's one line
        raise refusal(repo_id, exc) from exc
    return {"repo_id": repo_id, "url": commit.commit_url, "commit": commit.oid, "files": [name for name, _ in files],
            "bytes": total}


def refusal(repo_id: str, exc: Exception) -> JobError:
    """The job's one line for a failure of the Hub client while pushing to ``repo_id``."""
    from huggingface_hub.errors import HfHubHTTPError

    status = getattr(getattr(exc, "response", None), "status_code", None)
    first = " ".join(str(exc).split("\n")[0].split())
    if isinstance(exc, HfHubHTTPError) and status == 401:
        return JobError(f"the Hub refused the token while pushing to {repo_id} (401 Unauthorized)", hint=LOGIN_HINT)
    if isinstance(exc, HfHubHTTPError) and status == 403:
        return JobError(f"the Hub refused the push to {repo_id} (403 Forbidden): this token cannot write there",
                        hint="push to your own namespace or an organization where you may write")
    if isinstance(exc, HfHubHTTPError):
        return JobError(f"the Hub refused the push to {repo_id} ({status}): {first}")
    return JobError(f"the push to {repo_id} failed: the Hub could not be reached ({type(exc).__name__}: {first})",
                    hint="the export's files are kept; push them again when the network is back")
