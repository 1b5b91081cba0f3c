"""An export's temporary folder carries its pid; only folders of processes that are gone are swept."""

import os
import subprocess
import sys
from pathlib import Path

from engine.export import plan


def test_only_folders_of_gone_processes_are_removed(tmp_path: Path) -> None:
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    dead = tmp_path / f"{plan.STAGING_PREFIX}{gone.pid}-abcd"
    mine = tmp_path / f"{plan.staging_prefix()}efgh"
    unnamed = tmp_path / f"{plan.STAGING_PREFIX}ijkl"  # no pid in the name: whose it is cannot be told
    for folder in (dead, mine, unnamed):
        folder.mkdir()
        (folder / "part.gguf").write_bytes(b"x")
    assert plan.staging_prefix() == f".tuitune-export-{os.getpid()}-"
    assert plan.remove_stale_staging(tmp_path) == [dead]
    assert not dead.exists() and mine.is_dir() and unnamed.is_dir()
