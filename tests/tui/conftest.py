"""Fixtures for the app's Pilot, snapshot and tmux tests: canned runs, steady clocks, no blinking."""

from __future__ import annotations

import inspect
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


STEADY_GAP_S = 0.15
"""Seconds between two looks at the screen that must agree before a snapshot is taken."""
STEADY_WAIT_S = 5.0
"""Most seconds to wait for the screen to stop changing (a spinner never does: the snapshot is taken anyway)."""


@pytest.fixture()
def snap_compare(snap_compare, request: pytest.FixtureRequest):
    """pytest-textual-snapshot's ``snap_compare``, taken once the screen has stopped changing, and telling
    what differs when it does not match.

    The screenshot is taken right after ``run_before``: on a loaded machine a repaint the app had
    already scheduled (a footer after its bindings changed, a panel's timed redraw) could still be on
    its way. CI's snapshot report is out of reach, so a mismatch prints the rows that differ.
    """

    def compare(app, press=(), terminal_size=(80, 24), run_before=None) -> bool:
        async def before_then_steady(pilot) -> None:
            if run_before is not None and inspect.isawaitable(result := run_before(pilot)):
                await result
            await pilot.pause()
            await pilot.press(*press)
            deadline = time.monotonic() + STEADY_WAIT_S
            last = pilot.app.export_screenshot()
            while time.monotonic() < deadline:
                await pilot.pause(STEADY_GAP_S)
                now = pilot.app.export_screenshot()
                if now == last:
                    return
                last = now

        same = snap_compare(app, terminal_size=terminal_size, run_before=before_then_steady)
        if not same:
            _print_snapshot_rows(request.node)
        return same

    return compare


def _print_snapshot_rows(node) -> None:
    """The rows of the expected and the actual screen that differ, as text (from the plugin's report data)."""
    import difflib
    import pickle

    from pytest_textual_snapshot import node_to_report_path

    data = pickle.loads(node_to_report_path(node).read_bytes())
    expected, actual = _svg_rows(data[1]), _svg_rows(data[2])
    print("the snapshot's rows that differ (- expected, + actual):")
    print("\n".join(difflib.unified_diff(expected, actual, lineterm="", n=0)))


def _svg_rows(svg: str) -> list[str]:
    """The text of a Textual SVG screenshot, row by row."""
    import html
    import re

    rows: dict[float, list[tuple[float, str]]] = {}
    for match in re.finditer(r'<text class="[^"]*" x="([\d.]+)" y="([\d.]+)"[^>]*>(.*?)</text>', svg):
        x, y, text = float(match[1]), float(match[2]), html.unescape(match[3])
        rows.setdefault(y, []).append((x, text))
    return ["".join(text for _, text in sorted(row)).replace("\xa0", " ").rstrip() for _, row in sorted(rows.items())]
