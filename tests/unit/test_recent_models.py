"""The recently used models list: newest first, no duplicates, bounded, robust to a broken file."""

from __future__ import annotations

import json

from tuitune.recent_models import LIMIT, add_recent, load_recent, recent_models_path


def test_newest_first_without_duplicates() -> None:
    assert load_recent() == []
    add_recent("a", now=1.0)
    add_recent("b", now=2.0)
    assert add_recent("a", now=3.0) == ["a", "b"]
    assert load_recent() == ["a", "b"]
    entries = json.loads(recent_models_path().read_text())
    assert entries == [{"name_or_path": "a", "used": 3.0}, {"name_or_path": "b", "used": 2.0}]


def test_bounded_and_atomic() -> None:
    for n in range(LIMIT + 3):
        add_recent(f"m{n}", now=float(n))
    assert load_recent() == [f"m{n}" for n in range(LIMIT + 2, 2, -1)]
    assert [p.name for p in recent_models_path().parent.iterdir()] == ["recent_models.json"]


def test_broken_file_reads_as_empty() -> None:
    path = recent_models_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("{not json")
    assert load_recent() == []
    assert add_recent("x") == ["x"]
