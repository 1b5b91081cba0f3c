"""``python -m engine hub-data ORG/NAME [--split SPLIT]``: one split of a Hub dataset loaded through ``datasets``.

``datasets.load_dataset(ORG/NAME, split=SPLIT)`` downloads the dataset's files and writes the split as arrow files
into the datasets cache (``HF_DATASETS_CACHE``); a copy already there is used when the Hub cannot be reached. The
answer is one JSON line on stdout: ``{"files": [arrow files, in row order], "rows": N}``, exit 0; or
``{"error": "one line"}``, exit 1. The data layer (:mod:`engine.data.hub`) starts it and reads the rows from those
files, so every process reads a Hub dataset without importing ``datasets`` itself. The token, when one is needed
(a gated or private dataset), is read as huggingface_hub reads it (``HF_TOKEN`` or the login file).
"""

from __future__ import annotations

import argparse
import json
import os
from typing import Any


def main(argv: list[str]) -> int:
    """Load the split and print where it is cached, or why it cannot be loaded."""
    parser = argparse.ArgumentParser(prog="python -m engine hub-data", description=__doc__.splitlines()[0])
    parser.add_argument("repo_id", metavar="ORG/NAME")
    parser.add_argument("--split", default="train")
    args = parser.parse_args(argv)
    try:
        rows = load(args.repo_id, args.split)
    except Exception as exc:  # every failure is the one line the data check shows
        print(json.dumps({"error": describe(exc)}))
        return 1
    print(json.dumps({"files": [entry["filename"] for entry in rows.cache_files], "rows": rows.num_rows}))
    return 0


def load(repo_id: str, split: str) -> Any:
    """The split as a cached ``datasets.Dataset``.

    Raises:
        ValueError: the split was loaded in memory only (no arrow file to read it from).
    """
    from datasets import load_dataset

    rows = load_dataset(repo_id, split=split)
    if not rows.cache_files:
        raise ValueError("datasets kept it in memory, with no file in its cache to read the rows from")
    return rows


def describe(exc: BaseException) -> str:
    """One line saying why the split could not be loaded, in a data problem's words."""
    from datasets.exceptions import DatasetNotFoundError

    text = " ".join(str(exc).split())
    if isinstance(exc, DatasetNotFoundError):
        return f"{text} (a private or gated dataset needs `hf auth login` or HF_TOKEN)"
    if isinstance(exc, ConnectionError):
        offline = os.environ.get("HF_HUB_OFFLINE", "") not in ("", "0") or \
            os.environ.get("HF_DATASETS_OFFLINE", "") not in ("", "0")
        why = "offline mode is on (HF_HUB_OFFLINE)" if offline else "the Hugging Face Hub cannot be reached"
        return f"{why} and the datasets cache has no copy of it; connect, or train from a local copy of the data"
    if isinstance(exc, ValueError) and text.startswith("Unknown split"):
        return f"no such split: {text}"
    return f"datasets could not load it: {type(exc).__name__}: {text}"
