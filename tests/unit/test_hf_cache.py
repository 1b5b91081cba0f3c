"""Finding downloaded models in a Hugging Face hub cache laid out as the hub library writes it."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from engine.models import hf_cache

_spec = importlib.util.spec_from_file_location("model_builders",
                                               Path(__file__).parents[1] / "fixtures/models/builders.py")
builders = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(builders)


def test_scan_lists_complete_snapshots_only(tmp_path: Path) -> None:
    root = builders.make_hf_cache(tmp_path / "hub", {"org/b-model": True, "org/a-model": True, "org/partial": False})
    (root / "datasets--org--data").mkdir()
    found = hf_cache.scan(root)
    assert [m.repo_id for m in found] == ["org/a-model", "org/b-model"]
    first = found[0]
    assert first.revision == "abc123" and first.path == root / "models--org--a-model/snapshots/abc123"
    assert first.size_bytes == sum(p.stat().st_size for p in first.path.iterdir())
    assert first.size_bytes > (first.path / "model.safetensors").stat().st_size > 0


def test_scan_of_missing_cache_is_empty(tmp_path: Path) -> None:
    assert hf_cache.scan(tmp_path / "nowhere") == []


def test_refs_main_preferred_then_newest_complete(tmp_path: Path) -> None:
    root = builders.make_hf_cache(tmp_path / "hub", {"org/m": True})
    repo = root / "models--org--m"
    (repo / "refs" / "main").write_text("gone")
    assert hf_cache.find_snapshot("org/m", root) == repo / "snapshots/abc123"
    assert hf_cache.find_snapshot("org/other", root) is None


@pytest.mark.parametrize(
    ("env", "expected"),
    [({"HF_HUB_CACHE": "/x/hub"}, "/x/hub"), ({"HF_HOME": "/y"}, "/y/hub"),
     ({"XDG_CACHE_HOME": "/z"}, "/z/huggingface/hub")],
)
def test_cache_dir_follows_the_hub_variables(monkeypatch: pytest.MonkeyPatch, env: dict, expected: str) -> None:
    for name in ("HF_HUB_CACHE", "HF_HOME", "XDG_CACHE_HOME"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert hf_cache.hub_cache_dir() == Path(expected)


def test_a_snapshot_counts_only_when_every_file_of_its_listing_is_whole(tmp_path: Path) -> None:
    """huggingface_hub keeps the repo's file list (trees/COMMIT.json): a pull cut off after config.json and one
    shard, or config.json fetched alone for the model's facts, is not a downloaded model."""
    root = builders.make_hf_cache(tmp_path / "hub", {"org/m": True})
    repo = root / "models--org--m"
    snapshot = repo / "snapshots/abc123"
    listed = {name: (snapshot / name).stat().st_size for name in ("config.json", "model.safetensors")}
    listed |= {"model.gguf": 9, "original/consolidated.pth": 9}  # other runtimes' copies: never needed
    (repo / "trees").mkdir()
    (repo / "trees/abc123.json").write_text(json.dumps({"files": {p: {"size": n} for p, n in listed.items()}}))
    assert hf_cache.find_snapshot("org/m", root) == snapshot and hf_cache.missing_files(snapshot) == []
    (snapshot / "model.safetensors").unlink()
    assert hf_cache.missing_files(snapshot) == ["model.safetensors"]
    assert hf_cache.find_snapshot("org/m", root) is None and hf_cache.scan(root) == []
    assert hf_cache.find_snapshot("org/m", root, revision="abc123") is None


def test_a_revision_finds_its_own_snapshot_only(tmp_path: Path) -> None:
    root = builders.make_hf_cache(tmp_path / "hub", {"org/m": True})
    repo = root / "models--org--m"
    (repo / "refs/v1").write_text("abc123")
    assert hf_cache.find_snapshot("org/m", root, revision="v1") == repo / "snapshots/abc123"
    assert hf_cache.find_snapshot("org/m", root, revision="v2") is None
    assert hf_cache.find_snapshot("org/m", root, revision="f" * 40) is None


def test_wanted_files_leave_out_other_runtimes_and_bin_twins() -> None:
    files = ["config.json", "model.safetensors", "pytorch_model.bin", "model.gguf", "onnx/model.onnx",
             "original/params.json", "tokenizer.json"]
    assert hf_cache.wanted_files(files) == ["config.json", "model.safetensors", "tokenizer.json"]
    assert hf_cache.wanted_files(["config.json", "pytorch_model.bin"]) == ["config.json", "pytorch_model.bin"]
