"""A checkpoint counts only when complete: marker written last, files as saved, state readable."""

from __future__ import annotations

import json
from pathlib import Path

from engine.checkpoints import MARKER, latest_checkpoint, list_checkpoints, mark_complete, problem


def checkpoint(run_dir: Path, step: int, complete: bool = True) -> Path:
    folder = run_dir / "checkpoints" / f"checkpoint-{step}"
    folder.mkdir(parents=True)
    (folder / "trainer_state.json").write_text(json.dumps({"global_step": step}))
    (folder / "adapter_model.safetensors").write_bytes(b"w" * 100)
    (folder / "optimizer.pt").write_bytes(b"o" * 200)
    if complete:
        mark_complete(folder, step)
    return folder


def test_the_newest_complete_checkpoint_is_the_one(tmp_path: Path) -> None:
    assert latest_checkpoint(tmp_path) is None
    checkpoint(tmp_path, 5)
    checkpoint(tmp_path, 20)
    checkpoint(tmp_path, 100, complete=False)
    assert latest_checkpoint(tmp_path) == tmp_path / "checkpoints" / "checkpoint-20"
    assert [(c.step, c.problem is None) for c in list_checkpoints(tmp_path)] == [(100, False), (20, True), (5, True)]


def test_each_way_of_being_torn_is_named(tmp_path: Path) -> None:
    torn = checkpoint(tmp_path, 1, complete=False)
    assert "never finished" in problem(torn)
    folder = checkpoint(tmp_path, 2)
    (folder / "trainer_state.json").write_text("")
    assert "trainer_state.json has 0 bytes" in problem(folder)
    folder = checkpoint(tmp_path, 3)
    (folder / "optimizer.pt").unlink()
    assert problem(folder) == "optimizer.pt is missing"
    folder = checkpoint(tmp_path, 4)
    (folder / MARKER).write_text("{")
    assert "marker is unreadable" in problem(folder)
    folder = tmp_path / "checkpoints" / "checkpoint-5"
    folder.mkdir()
    (folder / "trainer_state.json").write_text("{}")
    mark_complete(folder, 5)
    assert "weights or optimizer state were not saved" in problem(folder)
    assert latest_checkpoint(tmp_path) is None
