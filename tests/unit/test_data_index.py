"""RecordIndex: the first page without an index, then any page by offset; blank lines and BOMs skipped."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from engine.data import index as data_index
from engine.data.index import RecordIndex
from engine.data.problems import SourceError
from engine.data.source import iter_records


def write_lines(path: Path, count: int) -> list[dict]:
    records = [{"instruction": f"q{i}", "output": f"a{i}"} for i in range(count)]
    lines = [json.dumps(r) for r in records]
    lines.insert(3, "")  # a blank line and one of spaces: not records
    lines.insert(7, "   ")
    path.write_bytes(b"\xef\xbb\xbf" + ("\n".join(lines)).encode())  # BOM, and no final newline
    return records


def test_jsonl_pages_match_a_full_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(data_index, "CHUNK", 64)  # many chunk boundaries inside lines
    path = tmp_path / "d.jsonl"
    records = write_lines(path, 250)
    index = RecordIndex(str(path))
    first = index.first_page(10)
    assert [r.value for r in first] == records[:10] and index.count == 0
    seen: list[tuple[int, float]] = []
    index.build(lambda count, fraction: seen.append((count, fraction)))
    assert index.complete and index.count == 250 and seen[-1] == (250, 1.0)
    everything = list(iter_records(str(path)))
    for start in (0, 3, 100, 245):
        page = index.page(start, 10)
        assert [(r.index, r.line, r.value) for r in page] == [(r.index, r.line, r.value)
                                                              for r in everything[start:start + 10]]
    assert index.page(250, 10) == []


def test_broken_lines_keep_their_place(tmp_path: Path) -> None:
    path = tmp_path / "d.jsonl"
    path.write_text('{"instruction": "a", "output": "b"}\n{"instruction": oops}\n{"instruction": "c", "output": "d"}\n')
    index = RecordIndex(str(path))
    index.build()
    page = index.page(0, 5)
    assert [r.line for r in page] == [1, 2, 3]
    assert str(page[1].problem) == f"{path}:2:17 record 1: JSON syntax error: Expecting value"


def test_json_array_and_datasets_folder(tmp_path: Path) -> None:
    from datasets import Dataset

    records = [{"instruction": f"q{i}", "output": f"a{i}"} for i in range(5)]
    (tmp_path / "a.json").write_text(json.dumps(records, indent=2))
    Dataset.from_list(records).save_to_disk(tmp_path / "folder")
    for name in ("a.json", "folder"):
        index = RecordIndex(str(tmp_path / name))
        assert [r.value for r in index.first_page(3)] == records[:3]
        assert index.complete and index.count == 5 and [r.value for r in index.page(3, 10)] == records[3:]
    assert [r.line for r in RecordIndex(str(tmp_path / "a.json")).first_page(2)] == [2, 6]


def test_json_array_counted_once_when_built_after_the_first_page(tmp_path: Path) -> None:
    """The Data screen reads the first page, then builds the index: 40 records stay 40."""
    records = [{"instruction": f"q{i}", "output": f"a{i}"} for i in range(40)]
    (tmp_path / "a.json").write_text(json.dumps(records))
    index = RecordIndex(str(tmp_path / "a.json"))
    index.first_page(100)
    counts: list[int] = []
    index.build(lambda count, fraction: counts.append(count))
    assert index.count == 40 and counts == [40]
    assert [r.value for r in index.page(0, 100)] == records


def test_missing_path(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="no such file or folder"):
        RecordIndex(str(tmp_path / "nope.jsonl"))
