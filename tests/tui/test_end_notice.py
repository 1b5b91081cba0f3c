"""An attached app rings the terminal's bell and sends a desktop notification escape (OSC 9/777) when the run it
shows ends while it watches; a run that had ended before it was opened says nothing."""

from __future__ import annotations

from pathlib import Path

from tests.tui.canned import add_events
from tuitune.notice import notice_escape
from tuitune.screens.train import TrainScreen


async def open_dashboard(pilot, wait_for) -> TrainScreen:
    await wait_for(pilot, lambda: isinstance(pilot.app.screen, TrainScreen), what="the dashboard")
    dash = pilot.app.screen
    await wait_for(pilot, lambda: dash.alive is not None and dash.state.events_seen > 0, what="the run's history")
    return dash


async def test_the_end_of_a_watched_run_rings_once(make_app, wait_for, runs_dir: Path, alive_runs: set[str]) -> None:
    alive_runs.add("running")
    app = make_app(runs_dir, attach=runs_dir / "running")
    async with app.run_test(size=(120, 40)) as pilot:
        dash = await open_dashboard(pilot, wait_for)
        assert dash.alive and dash.notices == []
        add_events(runs_dir / "running", {"type": "run_finished", "step": 120, "train_loss": 1.2,
                                          "adapter_path": "adapter"})
        alive_runs.discard("running")
        await wait_for(pilot, lambda: dash.state.terminal is not None and dash.alive is False, what="the end")
        assert len(dash.notices) == 1
        assert dash.notices[0].startswith("\a\x1b]9;tuitune: running: ") and dash.notices[0].endswith("\x07")


async def test_a_run_that_ended_before_says_nothing(make_app, wait_for, runs_dir: Path) -> None:
    app = make_app(runs_dir, attach=runs_dir / "finished")
    async with app.run_test(size=(120, 40)) as pilot:
        dash = await open_dashboard(pilot, wait_for)
        await wait_for(pilot, lambda: dash.state.terminal is not None, what="the history")
        await pilot.pause()
        assert dash.notices == []


def test_the_escapes_for_each_setting() -> None:
    assert notice_escape("osc777", "tuitune: a;b", "finished\x1b]x") == "\a\x1b]777;notify;tuitune: a,b;finished ]x\x07"
    assert notice_escape("bell", "t", "b") == "\a"
    assert notice_escape("off", "t", "b") == ""
