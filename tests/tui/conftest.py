"""Fixtures for the app's Pilot, snapshot and tmux tests: canned runs, steady clocks, no blinking."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest

FIXTURE_RUNS = Path(__file__).resolve().parent.parent / "fixtures" / "runs"
"""Canned run folders: running, finished, stopped, failed (times are in their events)."""


@pytest.fixture(autouse=True)
def steady_screen(monkeypatch: pytest.MonkeyPatch) -> None:
    """No cursor blink, UTC times: the same screen every run (as harlequin's tests do)."""
    from textual.widgets import Input, TextArea

    monkeypatch.setattr(Input, "_toggle_cursor", lambda self: None)
    monkeypatch.setattr(TextArea, "_toggle_cursor_blink_visible", lambda self: None)
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    from tuitune.screens import train

    # 2025-11-26 13:01:40 UTC: a live canned run's elapsed time stays put between snapshot runs
    monkeypatch.setattr(train, "wall_clock", lambda: 1764162100.0)
    yield
    monkeypatch.undo()
    time.tzset()


@pytest.fixture()
def runs_dir(tmp_path: Path) -> Path:
    """A writable copy of the canned runs."""
    target = tmp_path / "runs"
    shutil.copytree(FIXTURE_RUNS, target, ignore=shutil.ignore_patterns("*.py"))
    return target


@pytest.fixture()
def alive_runs(monkeypatch: pytest.MonkeyPatch) -> set[str]:
    """Names of run folders to treat as having a live engine (the canned pids are long dead)."""
    from tuitune.runs import folder

    names: set[str] = set()
    monkeypatch.setattr(folder, "engine_alive", lambda run_dir: Path(run_dir).name in names)
    return names


def _make_app(runs_dir: Path, attach: Path | None = None):
    from tuitune.app import TuituneApp
    from tuitune.settings import Settings

    return TuituneApp(runs_dir=runs_dir, attach=attach, settings=Settings(runs_dir=runs_dir, preset="default"))


@pytest.fixture()
def make_app():
    """Builds the app on a runs folder (optionally attached to a run) with default settings."""
    return _make_app


async def _wait_for(pilot, condition, timeout: float = 10.0, what: str = "condition") -> None:
    """Let the app run until ``condition()`` is true; fail naming ``what`` after ``timeout`` seconds.

    Workers here poll files forever, so ``wait_for_complete`` cannot be used; this checks
    the app's own state between short pauses instead of sleeping a fixed time.
    """
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        await pilot.pause(0.05)


@pytest.fixture()
def wait_for():
    """``await wait_for(pilot, condition, timeout, what)``: run the app until the condition holds."""
    return _wait_for
