"""What tuitune writes gets the mode the user's umask gives, as any other program's files do (issue 25, item 11):
an export's Modelfile and adapter copy were 0600/0700, left over from the temporary names they were written under."""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine.export.adapter import copy_adapter
from engine.files import write_text_atomic


@pytest.fixture
def umask_022() -> Iterator[None]:
    old = os.umask(0o022)
    yield
    os.umask(old)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_an_atomic_write_such_as_the_exports_modelfile_follows_the_umask(tmp_path: Path, umask_022: None) -> None:
    write_text_atomic(tmp_path / "Modelfile", "FROM ./demo-q8_0.gguf\n")
    assert oct(mode(tmp_path / "Modelfile")) == oct(0o644)


def test_an_exported_adapter_folder_follows_the_umask(tmp_path: Path, umask_022: None) -> None:
    weights = tmp_path / "run" / "adapter"
    weights.mkdir(parents=True)
    (weights / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": "/cache/x"}))
    (weights / "adapter_model.safetensors").write_bytes(b"\0" * 8)
    copy = copy_adapter(weights, tmp_path / "travel" / "adapter", "demo")
    assert oct(mode(copy)) == oct(0o755)
    assert {p.name: oct(mode(p)) for p in copy.iterdir()} == {"adapter_config.json": oct(0o644),
                                                              "adapter_model.safetensors": oct(0o644)}
