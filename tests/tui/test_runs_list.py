"""The runs list: a layout for 80 and 120 columns, rename, delete, and a new run from a run's config."""

from __future__ import annotations

import os
from pathlib import Path

from engine.locks import FolderLock
from tuitune.dialogs.confirm import ConfirmDialog
from tuitune.dialogs.rename_run import RenameRunDialog
from tuitune.screens.new_run import NewRunScreen
from tuitune.screens.runs import RunsScreen


async def open_list(pilot, wait_for) -> RunsScreen:
    screen = pilot.app.screen
    await wait_for(pilot, lambda: isinstance(screen, RunsScreen) and screen.scans >= 2, what="the runs list")
    return screen


async def select(pilot, screen: RunsScreen, name: str) -> None:
    keys = [key.value for key in screen.table.rows]
    screen.table.move_cursor(row=keys.index(str(screen.runs_dir / name)))
    await pilot.pause()


async def test_columns_fit_the_width_and_names_are_whole_at_120(make_app, wait_for, runs_dir: Path) -> None:
    long = "a-run-whose-name-is-long-enough-to-be-cut-at-thirty"
    os.rename(runs_dir / "finished", runs_dir / long)
    app = make_app(runs_dir)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_list(pilot, wait_for)
        assert [str(c.label) for c in screen.table.columns.values()] == ["name", "state", "step", "loss"]
    app = make_app(runs_dir)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_list(pilot, wait_for)
        shown = [str(c.label) for c in screen.table.columns.values()]
        assert {"state", "step", "loss", "started"} <= set(shown) and "model" not in shown  # gave way to the name
        names = [str(screen.table.get_row(key)[0]) for key in screen.table.rows]
        assert long in names
    os.rename(runs_dir / long, runs_dir / "finished")
    app = make_app(runs_dir)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_list(pilot, wait_for)
        assert [str(c.label) for c in screen.table.columns.values()] == [
            "name", "model", "method", "state", "step", "loss", "started", "duration"]


async def test_rename_refuses_bad_names_and_renames_the_folder(make_app, wait_for, runs_dir: Path) -> None:
    app = make_app(runs_dir)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_list(pilot, wait_for)
        await select(pilot, screen, "stopped")
        await pilot.press("f2")
        dialog = app.screen
        assert isinstance(dialog, RenameRunDialog)
        dialog.name_input.value = "finished"  # taken
        await pilot.press("enter")
        assert app.screen is dialog and "exists already" in str(dialog.problem_line.render())
        dialog.name_input.value = "my run/2"
        await pilot.press("enter")
        assert app.screen is dialog and "cannot be a folder name" in str(dialog.problem_line.render())
        dialog.name_input.value = "kept-dora"
        await pilot.press("enter")
        await wait_for(pilot, lambda: (runs_dir / "kept-dora").is_dir() and not (runs_dir / "stopped").exists(),
                       what="the rename")
        await wait_for(pilot, lambda: str(runs_dir / "kept-dora") in screen.runs, what="the renamed row")


async def test_delete_asks_and_refuses_a_run_that_is_working(make_app, wait_for, runs_dir: Path) -> None:
    app = make_app(runs_dir)
    lock = FolderLock(runs_dir / "failed")
    assert lock.acquire()
    try:
        async with app.run_test(size=(120, 40)) as pilot:
            screen = await open_list(pilot, wait_for)
            await select(pilot, screen, "failed")
            await pilot.press("d")
            await pilot.pause()
            assert app.screen is screen and (runs_dir / "failed").is_dir()  # its trainer holds the lock
            await select(pilot, screen, "finished")
            await pilot.press("d")
            assert isinstance(app.screen, ConfirmDialog) and "finished" in app.screen.question
            await pilot.press("n")
            assert (runs_dir / "finished").is_dir()
            await pilot.press("d", "y")
            await wait_for(pilot, lambda: not (runs_dir / "finished").exists(), what="the delete")
            await wait_for(pilot, lambda: str(runs_dir / "finished") not in screen.runs, what="the row to go")
    finally:
        lock.release()


async def test_new_run_from_a_runs_config(make_app, wait_for, runs_dir: Path) -> None:
    app = make_app(runs_dir)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_list(pilot, wait_for)
        await select(pilot, screen, "stopped")
        await pilot.press("N")
        await wait_for(pilot, lambda: isinstance(app.screen, NewRunScreen), what="the new-run flow")
        flow = app.screen
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: flow.config is not None, what="the resolved config")
        assert flow.config.adapter.method == "dora" and "config of stopped" in str(flow.steps_view.render())
