"""Compare: marking runs in the runs list, the curves, figures and config diff, at 80x24 (tabs) and 120x40."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.tui.test_app_flow import add_checkpoint
from tuitune.screens.compare import CompareScreen
from tuitune.screens.runs import MARK, RunsScreen

SMALL, LARGE = (80, 24), (120, 40)


async def open_list(pilot, wait_for) -> RunsScreen:
    screen = pilot.app.screen
    await wait_for(pilot, lambda: isinstance(screen, RunsScreen) and screen.scans >= 2, what="the runs list")
    return screen


async def select(pilot, screen: RunsScreen, name: str) -> None:
    keys = [key.value for key in screen.table.rows]
    screen.table.move_cursor(row=keys.index(str(screen.runs_dir / name)))
    await pilot.pause()


def names_shown(screen: RunsScreen) -> list[str]:
    return [str(screen.table.get_row(key)[0]) for key in screen.table.rows]


def footer_keys(screen) -> dict[str, int]:
    """Each footer key's description and the column its right edge reaches."""
    return {key.description: key.region.right for key in screen.query("FooterKey")}


async def test_space_marks_runs_and_c_compares_them_with_the_footer_inside_80_columns(
        make_app, wait_for, runs_dir: Path) -> None:
    add_checkpoint(runs_dir / "stopped", 40)  # R Resume joins the footer too: its widest
    app = make_app(runs_dir)
    async with app.run_test(size=SMALL) as pilot:
        screen = await open_list(pilot, wait_for)
        await select(pilot, screen, "finished")
        await pilot.press("space")
        assert MARK + "finished" in names_shown(screen) and "Compare" not in footer_keys(screen)
        assert "1 marked" in str(screen.heading.render())
        await pilot.press("c")  # one run marked: nothing to compare yet
        assert app.screen is screen
        await select(pilot, screen, "stopped")
        await pilot.press("space")
        await wait_for(pilot, lambda: "Compare" in footer_keys(screen), what="Compare in the footer")
        await pilot.pause()
        keys = footer_keys(screen)
        assert {"Resume", "Chat", "Compare"} <= set(keys) and max(keys.values()) <= SMALL[0], keys
        assert "2 marked: c compares them" in str(screen.heading.render())
        await pilot.press("space")  # unmarks
        assert "stopped" in names_shown(screen) and screen.marked == [str(runs_dir / "finished")]
        await pilot.press("space")
        await wait_for(pilot, lambda: screen.scans >= 4, what="a rescan")
        assert screen.marked == [str(runs_dir / "finished"), str(runs_dir / "stopped")]  # a rescan keeps marks
        await pilot.press("c")
        await wait_for(pilot, lambda: isinstance(app.screen, CompareScreen) and app.screen.loads, what="Compare")
        assert [run.name for run in app.screen.runs] == ["finished", "stopped"]
        await pilot.press("escape")
        assert app.screen is screen


async def test_compare_at_120x40_shows_curves_figures_and_only_the_keys_that_differ(
        make_app, wait_for, runs_dir: Path) -> None:
    app = make_app(runs_dir)
    async with app.run_test(size=LARGE) as pilot:
        await open_list(pilot, wait_for)
        app.open_compare([runs_dir / "finished", runs_dir / "stopped"])
        await wait_for(pilot, lambda: isinstance(app.screen, CompareScreen) and app.screen.loads, what="Compare")
        compare = app.screen
        assert not compare.tabs.display
        # laid out on the refresh after the runs are read
        await wait_for(pilot, lambda: all(widget.display and widget.region.height
                                          for widget in (compare.chart, compare.figures, compare.diff)),
                       what="the curves, the figures and the differing keys together")
        assert {name: (len(points), points[-1]) for name, points in compare.lines.items()} == {
            "finished": (12, (60.0, 1.2118)), "stopped": (8, (40.0, 1.4199))}
        rows = [compare.figures.get_row_at(row) for row in range(compare.figures.row_count)]
        figures = {str(row[0]): [str(cell) for cell in row[1:]] for row in rows}
        assert figures["best eval loss"] == ["1.332 @60", "–"]
        assert figures["peak memory"] == ["2.0 GiB rss", "20.0 GiB cuda"]
        assert figures["duration"] == ["1m53s", "1m18s"]
        diff = [str(compare.diff.get_row_at(row)[0]) for row in range(compare.diff.row_count)]
        assert diff == ["adapter.method", "data.val_size", "train.max_steps"]

        await pilot.press("x")  # against tokens seen: 212.7 tokens/s for 9 s a log
        assert compare.lines["finished"][-1] == (pytest.approx(12 * 9 * 212.7), 1.2118)
        assert "against tokens seen" in compare.chart.border_title
        await pilot.press("x")
        assert compare.lines["finished"][-1] == (111.5, 1.2118)  # seconds since the first event
        await pilot.press("m")
        assert compare.lines["finished"][-1] == (111.5, 1.3318) and compare.lines["stopped"] == []
        assert "eval_loss against seconds" in compare.chart.border_title


async def test_compare_at_80x24_is_tabs(make_app, wait_for, runs_dir: Path) -> None:
    app = make_app(runs_dir)
    async with app.run_test(size=SMALL) as pilot:
        await open_list(pilot, wait_for)
        app.open_compare([runs_dir / "finished", runs_dir / "stopped", runs_dir / "failed"])
        await wait_for(pilot, lambda: isinstance(app.screen, CompareScreen) and app.screen.loads, what="Compare")
        compare = app.screen
        assert compare.tabs.display and compare.chart.display and not compare.lower.display
        await pilot.press("tab")
        assert compare.figures.display and not compare.chart.display and not compare.diff.display
        await pilot.press("tab")
        assert compare.diff.display and not compare.figures.display
        assert compare.diff.row_count == 5  # the failed run's model and 4-bit quantization differ too
        await pilot.press("shift+tab", "shift+tab")
        assert compare.chart.display


def settle_compare(wait_for, *keys: str):
    async def run_before(pilot) -> None:
        app = pilot.app
        await wait_for(pilot, lambda: isinstance(app.screen, CompareScreen) and app.screen.loads, what="Compare")
        await pilot.pause()
        await pilot.press(*keys)
        await pilot.pause()

    return run_before


@pytest.mark.parametrize("size", [SMALL, LARGE], ids=["80x24", "120x40"])
def test_compare_snapshot(snap_compare, make_app, wait_for, runs_dir: Path, size) -> None:
    """You should see "Compare 3 runs: finished, stopped, failed" in their colours (green, yellow, magenta), the
    three loss curves against the step with a legend of the names; at 120x40 below them the figures (state, step,
    final and best loss, best eval loss 1.332 @60 for finished, tokens/s, peak memory, duration) beside the five
    config keys that differ; at 80x24 tabs Curves, Figures, Config diff over the curves alone."""
    from tuitune.app import TuituneApp
    from tuitune.settings import Settings

    app = TuituneApp(runs_dir=runs_dir, settings=Settings(runs_dir=runs_dir, preset="default"),
                     compare=[runs_dir / "finished", runs_dir / "stopped", runs_dir / "failed"])
    assert snap_compare(app, terminal_size=size, run_before=settle_compare(wait_for))


def test_tuitune_compare_opens_the_app_on_compare_in_a_terminal(tmp_path: Path, runs_dir: Path) -> None:
    """The command a person types, in tmux at 80x24: Compare on two runs, its tabs, back to the runs list, marking
    two others there and comparing them; and the one-line refusal of a single run."""
    import shutil

    from tests.tui.journeys.test_tmux import TUITUNE, Pane, shell

    if shutil.which("tmux") is None:
        pytest.fail("tmux is not installed: it is a test dependency (apt-get install -y tmux; make test installs it)")
    pane = Pane(f"tuitune-compare-{os.getpid()}", shell(f"TZ=UTC {TUITUNE} --runs-dir {runs_dir} compare finished "
                                                         "stopped"), size=SMALL)
    try:
        pane.wait(r"Compare 2 runs: finished, stopped", timeout=30)
        pane.wait(r"loss against step")
        pane.keys("x")
        pane.wait(r"loss against tokens seen")
        pane.keys("Tab")
        pane.wait(r"best eval loss +1\.332 @60 +–")
        pane.keys("Tab")
        pane.wait(r"adapter\.method +lora +dora")
        pane.keys("Escape")
        pane.wait(r"Runs \(4\)")
        pane.keys("Down", "Space", "Down", "Space")  # failed, then stopped
        pane.wait(r"2 marked: c compares them")
        pane.keys("c")
        pane.wait(r"Compare 2 runs: failed, stopped")
        pane.keys("C-q")
        pane.wait(r"APP-EXITED-0")
        pane.respawn(shell(f"{TUITUNE} --runs-dir {runs_dir} compare finished"))
        pane.wait(r"APP-EXITED-2")
        assert "error: compare needs two or more runs; got 1 (finished)" in pane.screen()
    finally:
        pane.close()
