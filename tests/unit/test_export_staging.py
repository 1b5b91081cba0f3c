"""An export holds its temporary folder's lock; only folders whose lock no process holds are swept."""

from pathlib import Path

from engine.export import plan
from engine.locks import LOCK_FILE, FolderLock


def test_only_folders_whose_lock_is_free_are_removed(tmp_path: Path) -> None:
    killed = tmp_path / f"{plan.STAGING_PREFIX}abcd"  # an export killed outright: its lock file, nobody holding it
    live = tmp_path / f"{plan.STAGING_PREFIX}efgh"  # an export writing now
    unlocked = tmp_path / f"{plan.STAGING_PREFIX}ijkl"  # no lock file: not a folder an export left
    for folder in (killed, live, unlocked):
        folder.mkdir()
        (folder / "part.gguf").write_bytes(b"x")
    (killed / LOCK_FILE).touch()
    held = FolderLock(live)
    assert held.acquire()
    try:
        assert plan.remove_stale_staging(tmp_path) == [killed]
        assert not killed.exists() and live.is_dir() and unlocked.is_dir()
    finally:
        held.release()
