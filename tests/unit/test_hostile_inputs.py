"""Files that are not files: a FIFO or a device given as a config, a preset or data is refused at once.

Opening a FIFO for reading blocks until a writer comes, so before these fixes a FIFO hung
``tuitune train``, ``tuitune data check`` and the trainer. No test here can block: each FIFO
has a watchdog that opens its writing end whenever someone waits to read it (the reader then
sees an empty file and goes on), and it records that the FIFO was opened, which fails the test.
Subprocesses get a timeout.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from engine.config import ConfigError, load_config
from engine.data.checks import check_paths
from engine.data.problems import SourceError
from engine.paths import user_presets_dir
from engine.presets import list_presets, load_preset

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def make_fifo() -> Iterator[Callable[[Path], threading.Event]]:
    """``make_fifo(path)`` makes a FIFO and returns an Event that is set if anyone opens it to read."""
    done = threading.Event()
    threads: list[threading.Thread] = []

    def watch(path: Path, opened: threading.Event) -> None:
        while not done.wait(0.02):
            try:
                fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK)  # succeeds only while a reader waits
            except OSError:
                continue
            opened.set()
            os.close(fd)

    def make(path: Path) -> threading.Event:
        os.mkfifo(path)
        opened = threading.Event()
        thread = threading.Thread(target=watch, args=(path, opened), daemon=True)
        thread.start()
        threads.append(thread)
        return opened

    yield make
    done.set()
    for thread in threads:
        thread.join(timeout=2)


def test_a_fifo_config_is_refused_without_opening_it(tmp_path: Path, make_fifo) -> None:
    opened = make_fifo(tmp_path / "run.yaml")
    (tmp_path / "link.yaml").symlink_to(tmp_path / "run.yaml")
    for name in ("run.yaml", "link.yaml"):
        with pytest.raises(ConfigError) as err:
            load_config(tmp_path / name)
        assert err.value.problems == [f"{tmp_path / name}: not a regular file (a FIFO); give a YAML file"]
    assert not opened.is_set()


def test_a_folder_as_config_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not a regular file \\(a folder\\)"):
        load_config(tmp_path)


def test_a_fifo_preset_is_refused_and_listed_without_opening_it(make_fifo) -> None:
    user_presets_dir().mkdir(parents=True)
    opened = make_fifo(user_presets_dir() / "pipe.yaml")
    with pytest.raises(ConfigError, match="pipe.yaml: not a regular file"):
        load_preset(user_presets_dir() / "pipe.yaml")
    [info] = [i for i in list_presets() if i.name == "pipe"]
    assert "not a regular file" in info.error
    assert not opened.is_set()


def test_a_fifo_as_data_is_one_problem_and_never_opened(tmp_path: Path, make_fifo) -> None:
    from engine.data.index import RecordIndex

    path = tmp_path / "data.jsonl"
    opened = make_fifo(path)
    summary = check_paths([str(path)])
    assert [str(p) for p in summary.problems] == [
        f"{path}: not a regular file (a FIFO); give a JSON or JSON Lines file, or a folder saved by datasets"]
    assert summary.errors == 1
    with pytest.raises(SourceError, match="not a regular file"):
        RecordIndex(str(path))
    assert not opened.is_set()


def test_a_device_as_data_is_refused() -> None:
    summary = check_paths(["/dev/zero"])
    assert [str(p) for p in summary.problems] == [
        "/dev/zero: not a regular file (a character device); give a JSON or JSON Lines file, or a folder saved by "
        "datasets"]


def test_tuitune_data_check_on_a_fifo_and_a_device_answers_at_once(tmp_path: Path, make_fifo) -> None:
    """This command used to hang on the FIFO for ever."""
    path = tmp_path / "data.jsonl"
    opened = make_fifo(path)
    for target in (str(path), "/dev/zero"):
        result = subprocess.run([sys.executable, "-m", "tuitune", "data", "check", target], cwd=ROOT,
                                capture_output=True, text=True, timeout=60)
        assert result.returncode == 1, result.stderr
        assert f"{target}: not a regular file" in result.stdout + result.stderr
        assert "Traceback" not in result.stderr
    assert not opened.is_set()


def test_tuitune_data_check_on_a_200000_deep_record_reports_it(tmp_path: Path) -> None:
    """This command used to end in a RecursionError traceback."""
    path = tmp_path / "deep.jsonl"
    path.write_text('{"instruction": ' + "[" * 200_000 + "]" * 200_000 + ', "output": "x"}\n')
    result = subprocess.run([sys.executable, "-m", "tuitune", "data", "check", str(path)], cwd=ROOT,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 1, result.stderr
    assert f"{path}:1 record 0: JSON nested more than 100 levels deep" in result.stdout
    assert "Traceback" not in result.stderr
