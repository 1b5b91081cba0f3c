"""The runs list shows the runs folder's queue first, in order with each run's place; keys move a queued run sooner
or later and take it out of the queue (tuitune.runs.queue), and a snapshot at 80x24."""

from __future__ import annotations

from pathlib import Path

from tuitune.runs.queue import QueuedRun, add_runs, read_queue
from tuitune.screens.runs import QUEUED_KEY, RunsScreen


def queue_three(runs_dir: Path) -> None:
    """Three queued runs of a sweep, as ``tuitune queue add --sweep`` leaves them."""
    add_runs(runs_dir, [QueuedRun(f"sw-lr-{lr}", {"model": {"name_or_path": "/models/tiny-llama"},
                                                  "adapter": {"method": "lora"}, "train": {"max_steps": 20}},
                                  added=1764162000.0)
                        for lr in ("0.0001", "0.0002", "0.0004")])


async def open_list(pilot, wait_for) -> RunsScreen:
    screen = pilot.app.screen
    await wait_for(pilot, lambda: isinstance(screen, RunsScreen) and screen.scans >= 2, what="the runs list")
    return screen


def states(screen: RunsScreen) -> list[tuple[str, str]]:
    """(name, state) of each row, top to bottom."""
    columns = [str(c.label) for c in screen.table.columns.values()]
    rows = [screen.table.get_row(key) for key in screen.table.rows]
    return [(str(row[0]), str(row[columns.index("state")])) for row in rows]


async def test_queued_runs_come_first_and_move_and_go(make_app, wait_for, runs_dir: Path) -> None:
    queue_three(runs_dir)
    app = make_app(runs_dir)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_list(pilot, wait_for)
        assert states(screen)[:4] == [("sw-lr-0.0001", "queued #1"), ("sw-lr-0.0002", "queued #2"),
                                      ("sw-lr-0.0004", "queued #3"), ("running", "lost")]
        assert "queue (3, not running" in str(screen.heading.render())
        screen.table.move_cursor(row=1)
        await pilot.pause()
        assert "starts after 1 queued run" in str(screen.detail.render())

        await pilot.press("shift+up")
        await wait_for(pilot, lambda: [r.name for r in read_queue(runs_dir).runs][0] == "sw-lr-0.0002",
                       what="the move up")
        await wait_for(pilot, lambda: states(screen)[0] == ("sw-lr-0.0002", "queued #1"), what="the row to move")
        assert screen.table.cursor_row == 0  # the cursor went with it

        await pilot.press("J", "J")
        await wait_for(pilot, lambda: [r.name for r in read_queue(runs_dir).runs][-1] == "sw-lr-0.0002",
                       what="the moves down")
        await wait_for(pilot, lambda: states(screen)[2] == ("sw-lr-0.0002", "queued #3"), what="the rows to move")

        await pilot.press("enter")  # a queued run has no dashboard yet
        assert app.screen is screen
        await pilot.press("d")
        await wait_for(pilot, lambda: len(read_queue(runs_dir).runs) == 2, what="the removal")
        await wait_for(pilot, lambda: QUEUED_KEY + "sw-lr-0.0002" not in screen.queued, what="the row to go")
        assert [r.name for r in read_queue(runs_dir).runs] == ["sw-lr-0.0001", "sw-lr-0.0004"]
        assert (runs_dir / "finished").is_dir()  # d on a queued row deletes no run folder


async def test_sooner_and_later_show_on_queued_rows_only(make_app, wait_for, runs_dir: Path) -> None:
    queue_three(runs_dir)
    app = make_app(runs_dir)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_list(pilot, wait_for)
        assert screen.check_action("queue_move", (1,)) is True
        keys = [key.value for key in screen.table.rows]
        screen.table.move_cursor(row=keys.index(str(runs_dir / "finished")))
        await pilot.pause()
        assert screen.check_action("queue_move", (1,)) is False
        await pilot.press("K")  # nothing moves
        assert [r.name for r in read_queue(runs_dir).runs] == ["sw-lr-0.0001", "sw-lr-0.0002", "sw-lr-0.0004"]


def test_runs_list_with_a_queue_at_80x24(snap_compare, make_app, wait_for, runs_dir: Path,
                                         alive_runs: set[str]) -> None:
    """You should see three runs queued first, in italics with their places (queued #1, #2, #3), then the
    four canned runs; the heading says the queue has three runs and no runner; the detail line of the first says
    what it waits for and that shift+↑/↓ (K/J) moves it and d takes it out; the footer offers Sooner and Later."""
    queue_three(runs_dir)
    alive_runs.add("running")

    async def run_before(pilot) -> None:
        screen = pilot.app.screen
        await wait_for(pilot, lambda: screen.scans >= 2 and screen.queued, what="the runs and the queue")
        await pilot.pause()
        await wait_for(pilot, lambda: len(screen.query("FooterKey")) > 0, what="the footer's keys")
        await pilot.pause()

    assert snap_compare(make_app(runs_dir), terminal_size=(80, 24), run_before=run_before)
