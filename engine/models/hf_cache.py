"""Models already downloaded into the Hugging Face hub cache. Standard library only.

The cache keeps each repository as ``models--ORG--NAME/`` with ``refs/main`` naming the
current revision and ``snapshots/REV/`` holding symlinks into ``blobs/``. Only snapshots
that hold a config.json are listed: an interrupted download leaves folders without one.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class CachedModel:
    """One model snapshot found in the hub cache."""

    repo_id: str
    """Hub id, ORG/NAME."""
    revision: str
    """Commit hash of the snapshot folder."""
    path: Path
    """The snapshot folder, usable as a local model folder."""
    size_bytes: int
    """Bytes of the snapshot's files (the blobs its links point at)."""


def hub_cache_dir() -> Path:
    """The cache folder: ``$HF_HUB_CACHE``, else ``$HF_HOME/hub``, else ``~/.cache/huggingface/hub``."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]).expanduser() / "hub"
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "huggingface" / "hub"


def scan(cache_dir: Path | None = None) -> list[CachedModel]:
    """Every model snapshot in the cache that has a config.json, sorted by hub id; [] if none."""
    root = cache_dir or hub_cache_dir()
    try:
        repos = sorted(p for p in root.iterdir() if p.name.startswith("models--") and p.is_dir())
    except OSError:
        return []
    found = []
    for repo in repos:
        snapshot = _current_snapshot(repo)
        if snapshot is not None:
            repo_id = repo.name.removeprefix("models--").replace("--", "/", 1)
            found.append(CachedModel(repo_id, snapshot.name, snapshot, _size(snapshot)))
    return found


def find_snapshot(repo_id: str, cache_dir: Path | None = None) -> Path | None:
    """The current snapshot folder of ``repo_id`` (ORG/NAME) in the cache, or None."""
    repo = (cache_dir or hub_cache_dir()) / ("models--" + repo_id.replace("/", "--"))
    return _current_snapshot(repo) if repo.is_dir() else None


def _current_snapshot(repo: Path) -> Path | None:
    """The snapshot ``refs/main`` points at if complete, else the newest complete one."""
    snapshots = repo / "snapshots"
    ref = repo / "refs" / "main"
    try:
        if ref.is_file():
            chosen = snapshots / ref.read_text(encoding="utf-8").strip()
            if (chosen / "config.json").is_file():
                return chosen
        complete = [p for p in snapshots.iterdir() if (p / "config.json").is_file()]
    except OSError:
        return None
    return max(complete, key=lambda p: p.stat().st_mtime, default=None)


def _size(folder: Path) -> int:
    total = 0
    for entry in folder.iterdir():
        try:
            total += entry.stat().st_size if entry.is_file() else 0
        except OSError:
            pass
    return total
