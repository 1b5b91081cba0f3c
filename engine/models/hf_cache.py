"""Models already downloaded into the Hugging Face hub cache. Standard library only.

The cache keeps each repository as ``models--ORG--NAME/`` with ``refs/REV`` naming the commit a
branch or tag was at, ``snapshots/COMMIT/`` holding symlinks into ``blobs/``, and (huggingface_hub
2.4) ``trees/COMMIT.json``, the repo's file list at that commit, written before a snapshot download
fetches anything. Only **complete** snapshots count as downloaded: every file of that list that
training needs (:func:`wanted_files`) is there, or, for a snapshot without a list (one
``from_pretrained`` filled), config.json and its weights are. An interrupted download, or a model
whose config.json alone was fetched for its facts, is not one.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from fnmatch import fnmatch
from pathlib import Path

OTHER_FORMATS = ("*.pth", "*.pt", "*.gguf", "*.onnx", "*.onnx_data", "*.h5", "*.msgpack", "*.ot", "*.tflite",
                 "*.mlmodel", "original/*", "onnx/*", "coreml/*", "consolidated*", "*.mlpackage/*")
"""Files a model repo may carry beside its transformers weights (other runtimes' copies, the original
checkpoint): transformers never loads them, so a pull never fetches them (they can double a download)."""
COMMIT = re.compile(r"[0-9a-f]{40}")


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
    """Every model with a complete snapshot in the cache (see the module docstring), sorted by hub id; [] if none."""
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


def repo_dir(repo_id: str, cache_dir: Path | None = None) -> Path:
    """The cache's folder for the model ``repo_id`` (ORG/NAME): ``models--ORG--NAME``."""
    return (cache_dir or hub_cache_dir()) / ("models--" + repo_id.replace("/", "--"))


def find_snapshot(repo_id: str, cache_dir: Path | None = None, revision: str | None = None) -> Path | None:
    """The complete snapshot folder of ``repo_id`` (ORG/NAME) in the cache, or None.

    Without ``revision``: the one ``refs/main`` names, else the newest complete one. With it: that commit's, or
    the one its ``refs/REVISION`` names (a branch or tag pulled before), and no other.
    """
    repo = repo_dir(repo_id, cache_dir)
    return _current_snapshot(repo, revision) if repo.is_dir() else None


def wanted_files(paths: Iterable[str]) -> list[str]:
    """The files of a repo that training needs, sorted: all but :data:`OTHER_FORMATS`, and no ``*.bin`` weights
    when the repo has safetensors ones (transformers then loads those)."""
    paths = [path for path in paths if not any(fnmatch(path, pattern) for pattern in OTHER_FORMATS)]
    safetensors = any(path.endswith(".safetensors") for path in paths)
    return sorted(path for path in paths if not (safetensors and path.endswith(".bin")))


def listed_files(snapshot: Path) -> dict[str, int] | None:
    """The repo's files and sizes at the snapshot's commit, as huggingface_hub listed them (``trees/COMMIT.json``),
    or None when no list was kept."""
    try:
        files = json.loads((snapshot.parent.parent / "trees" / f"{snapshot.name}.json").read_text("utf-8"))["files"]
        return {str(path): int(entry["size"]) for path, entry in files.items()}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


def missing_files(snapshot: Path) -> list[str]:
    """What the snapshot lacks of what training needs: the wanted files of its list (:func:`listed_files`); without
    a list, config.json, weights, and any shard an ``*.index.json`` names. Empty for a complete snapshot."""
    listed = listed_files(snapshot)
    if listed is not None:
        return [path for path in wanted_files(listed) if not (snapshot / path).is_file()]
    missing = [] if (snapshot / "config.json").is_file() else ["config.json"]
    indexes = sorted(snapshot.glob("*.index.json"))
    if not indexes and not any(snapshot.glob("*.safetensors")) and not any(snapshot.glob("*.bin")):
        missing.append("weights (*.safetensors)")
    for index in indexes:
        try:
            shards = set(json.loads(index.read_text("utf-8"))["weight_map"].values())
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            shards = set()
        missing += sorted(shard for shard in shards if not (snapshot / shard).is_file())
    return missing


def _current_snapshot(repo: Path, revision: str | None = None) -> Path | None:
    """The complete snapshot ``revision`` names (a commit, or a ref); without one, the one ``refs/main`` names,
    else the newest complete one."""
    snapshots = repo / "snapshots"
    try:
        if revision is not None:
            ref = repo / "refs" / revision
            commit = revision if COMMIT.fullmatch(revision) else (
                ref.read_text(encoding="utf-8").strip() if ref.is_file() else None)
            chosen = snapshots / commit if commit else None
            return chosen if chosen is not None and chosen.is_dir() and not missing_files(chosen) else None
        ref = repo / "refs" / "main"
        if ref.is_file():
            chosen = snapshots / ref.read_text(encoding="utf-8").strip()
            if chosen.is_dir() and not missing_files(chosen):
                return chosen
        complete = [p for p in snapshots.iterdir() if p.is_dir() and not missing_files(p)]
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
