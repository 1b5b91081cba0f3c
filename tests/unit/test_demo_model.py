"""The demo model's one conversion: two processes that need it at once on a fresh machine convert it once."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from engine.locks import FolderLock
from engine.models import demo


@pytest.fixture()
def fresh_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty user cache: the demo model is not converted yet; returns where it goes."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    target = demo.demo_model_dir()
    target.parent.mkdir(parents=True)
    return target


def test_a_conversion_that_another_process_finished_meanwhile_is_not_done_again(
        fresh_cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The second of two runs started at once removed and rewrote the folder the first was loading."""
    converted: list[Path] = []
    monkeypatch.setattr(demo, "_convert", lambda target, log: converted.append(target))
    other = FolderLock(fresh_cache.parent)  # another process, converting
    assert other.acquire()

    def finish() -> None:
        time.sleep(0.3)
        fresh_cache.mkdir()
        (fresh_cache / "config.json").write_text("{}")
        (fresh_cache / "model.safetensors").write_bytes(b"weights")
        other.release()

    threading.Thread(target=finish).start()
    assert demo.ensure_demo_model(log=lambda _: None) == fresh_cache
    assert converted == []  # it waited for the other conversion, then found the folder complete


def test_a_conversion_held_too_long_is_said_naming_the_lock(fresh_cache: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(demo, "CONVERSION_WAIT_S", 0.2)
    other = FolderLock(fresh_cache.parent)
    assert other.acquire()
    try:
        with pytest.raises(TimeoutError, match=f"remove {fresh_cache.parent / 'lock'}"):
            demo.ensure_demo_model(log=lambda _: None)
    finally:
        other.release()
