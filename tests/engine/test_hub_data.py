"""Datasets from the Hub as data (``hf:ORG/NAME[:SPLIT]`` and LLaMA-Factory ``hf_hub_url`` entries): loaded through
``datasets`` from the fake Hub (tests/fixtures/hub/server.py) into its cache by ``python -m engine hub-data``, then
checked as a file is, each problem located by dataset, split and row."""

from __future__ import annotations

import json
from pathlib import Path

ROWS = [{"instruction": f"Question {n}?", "input": "", "output": f"Answer {n}."} for n in range(5)]


def jsonl(rows: list[dict]) -> bytes:
    return "".join(json.dumps(row) + "\n" for row in rows).encode()


def check(eng, *args: str) -> tuple[int, str, str]:
    process = eng.cli("data", "check", *args)
    out, err = process.communicate(timeout=120)
    return process.returncode, out, err


def test_data_check_reads_a_hub_split_through_the_datasets_cache(eng, fake_hub, monkeypatch) -> None:
    rows = [dict(row) for row in ROWS]
    rows[3]["output"] = ""
    fake_hub.add("org/qa", {"data/train.jsonl": jsonl(rows), "README.md": b"# qa\n"}, kind="dataset")

    code, out, err = check(eng, "hf:org/qa")
    assert code == 1, err
    assert "error   hf:org/qa:train row 3 field output: empty text" in out.splitlines()
    assert "records: 5 (4 usable)" in out
    assert fake_hub.sent["org/qa/data/train.jsonl"] == len(jsonl(rows))

    # Offline, the copy in the datasets cache is read; a dataset it has no copy of is one located line.
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    asked = len(fake_hub.requests)
    code, out, _ = check(eng, "hf:org/qa:train")
    assert code == 1 and "error   hf:org/qa:train row 3 field output: empty text" in out.splitlines()
    assert len(fake_hub.requests) == asked
    code, out, _ = check(eng, "hf:org/elsewhere")
    assert code == 1
    assert [line for line in out.splitlines() if line.startswith("error")] == [
        "error   hf:org/elsewhere:train: offline mode is on (HF_HUB_OFFLINE) and the datasets cache has no copy "
        "of it; connect, or train from a local copy of the data"]


def test_a_missing_dataset_or_split_is_one_located_line(eng, fake_hub) -> None:
    fake_hub.add("org/qa", {"train.jsonl": jsonl(ROWS)}, kind="dataset")
    for name, where, says in (
            ("hf:org/missing", "hf:org/missing:train", "Dataset 'org/missing' doesn't exist on the Hub"),
            ("hf:org/qa:test", "hf:org/qa:test", "no such split")):
        code, out, _ = check(eng, name)
        errors = [line for line in out.splitlines() if line.startswith("error")]
        assert code == 1 and len(errors) == 1, out
        assert errors[0].startswith(f"error   {where}: ") and says in errors[0], errors


def test_a_dataset_info_entry_on_the_hub_is_read_through_its_mapping(eng, fake_hub, tmp_path: Path) -> None:
    fake_hub.add("org/qa", {"train.jsonl": jsonl([{"q": r["instruction"], "a": r["output"]} for r in ROWS])},
                 kind="dataset")
    folder = tmp_path / "lf-data"
    folder.mkdir()
    (folder / "dataset_info.json").write_text(json.dumps({
        "mapped": {"hf_hub_url": "org/qa", "split": "train", "columns": {"prompt": "q", "response": "a"}}}))

    code, out, err = check(eng, "mapped", "--dataset-dir", str(folder))
    assert code == 0, out + err
    assert "note: mapped: hf:org/qa:train read through its column mapping" in err
    assert "records: 5 (5 usable)" in out
