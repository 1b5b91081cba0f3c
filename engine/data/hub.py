"""Datasets on the Hugging Face Hub as data: ``hf:ORG/NAME[:SPLIT]`` (the split ``train`` when none is named).

A Hub dataset is read as any file is, through :func:`engine.data.source.iter_records`, so the data check, the
pre-start check and training see the same records with the same checks. Its split is first loaded with
``datasets.load_dataset(ORG/NAME, split=SPLIT)`` into the datasets cache (``HF_DATASETS_CACHE``, by default
``HF_HOME/datasets``) by an engine process, ``python -m engine hub-data`` (:mod:`engine.jobs.hub_data`):
``datasets`` belongs to the ML stack, which this package never imports (the import contracts in
pyproject.toml), and the app and the command line read data in their own processes. That process names the
arrow files the split is cached in; their rows are read here through pyarrow, as those of a folder saved by
``datasets`` are. A row's place is its split and row number: ``hf:org/name:train row 12 field output: …``.

Loading asks the Hub whether the dataset changed and downloads only what did; a copy already in the cache is
used when the Hub cannot be reached (and with ``HF_HUB_OFFLINE=1``). A process asks once per dataset and split.
Standard library only.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from engine.data.problems import HUB_DEFAULT_SPLIT, HUB_PREFIX, Problem, SourceError

REPO_ID = re.compile(r"^\w(?:[\w.-]*\w)?/\w(?:[\w.-]{0,94}\w)?$", re.ASCII)
"""A Hub repo id as the Hub accepts it: ``ORG/NAME`` of letters, digits, ``-``, ``_`` and ``.`` (not first or
last), the name at most 96 characters (huggingface_hub's ``validate_repo_id``, with the namespace required)."""
SPLIT = re.compile(r"^\w[\w.-]*$", re.ASCII)
"""A split's name (``train``, ``validation``…); slices such as ``train[:100]`` are not taken."""
FORM = "hf:ORG/NAME or hf:ORG/NAME:SPLIT"


def repo_id_problem(repo_id: str) -> str | None:
    """Why ``repo_id`` is not a Hub repo id of the form ``ORG/NAME`` (a model's or a dataset's), or None."""
    if not REPO_ID.match(repo_id) or "--" in repo_id or ".." in repo_id or repo_id.endswith(".git"):
        return (f"{repo_id!r} is not a Hub repo id: expected ORG/NAME, letters, digits, '-', '_' and '.', "
                "the name at most 96 characters")
    return None


def is_hub(path: str) -> bool:
    """Whether the data path ``path`` names a Hub dataset (``hf:…``)."""
    return path.startswith(HUB_PREFIX)


@dataclass(frozen=True)
class HubDataset:
    """One split of a dataset on the Hub."""

    repo_id: str
    """``ORG/NAME``."""
    split: str
    """The split read (``train`` unless named)."""

    @property
    def name(self) -> str:
        """``hf:ORG/NAME:SPLIT``: how its problems name it."""
        return f"{HUB_PREFIX}{self.repo_id}:{self.split}"


def parse(path: str) -> HubDataset:
    """The dataset and split ``hf:ORG/NAME[:SPLIT]`` names.

    Raises:
        SourceError: naming ``path`` when it is not of that form.
    """
    repo_id, _, split = path.removeprefix(HUB_PREFIX).partition(":")
    problem = repo_id_problem(repo_id)
    if problem is None and split and not SPLIT.match(split):
        problem = f"{split!r} is not a split's name (train, validation, test…)"
    if problem is not None:
        raise SourceError(Problem(path, None, None, None, f"{problem}; a Hub dataset is named {FORM}"))
    return HubDataset(repo_id, split or HUB_DEFAULT_SPLIT)


_LOADED: dict[HubDataset, list[Path]] = {}
"""Arrow files of the splits this process has loaded."""


def arrow_files(path: str) -> list[Path]:
    """The arrow files holding the split ``path`` names, in row order, loaded into the datasets cache first.

    Raises:
        SourceError: one line naming the dataset and split: a malformed name, a dataset the Hub does not have
            (or will not show this user), a split it does not have, no network and no copy in the cache.
    """
    dataset = parse(path)
    if dataset not in _LOADED:
        _LOADED[dataset] = _load(dataset)
    return _LOADED[dataset]


def forget(path: str) -> None:
    """Load the split ``path`` names again when next asked (its cached files went away)."""
    _LOADED.pop(parse(path), None)


def _load(dataset: HubDataset) -> list[Path]:
    """Run ``python -m engine hub-data`` for ``dataset``; its one JSON line names the files or the problem."""
    done = subprocess.run([sys.executable, "-m", "engine", "hub-data", dataset.repo_id, "--split", dataset.split],
                          stdin=subprocess.DEVNULL, capture_output=True, text=True, errors="replace")
    answer = _last_json(done.stdout)
    if "files" in answer:
        return [Path(file) for file in answer["files"]]
    stderr = done.stderr.strip().splitlines()
    message = answer.get("error") or f"the loader failed (exit {done.returncode}): {stderr[-1] if stderr else ''}"
    raise SourceError(Problem(dataset.name, None, None, None, message))


def _last_json(stdout: str) -> dict:
    """The last line of ``stdout`` that is a JSON object ({} if none): libraries may print before it."""
    for line in reversed(stdout.splitlines()):
        try:
            value = json.loads(line)
        except ValueError:
            continue
        if isinstance(value, dict):
            return value
    return {}
