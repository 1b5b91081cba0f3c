"""Issue 25, item 2: ``N`` on a run (a new run from its config) lands on the review with that run's settings, not
on the preset step with the machine's starting preset (on a CPU box ``cpu-first-try`` turned a 200-step run
into 30 steps "(preset)")."""

from __future__ import annotations

from pathlib import Path

from tuitune.screens.new_run import NewRunScreen
from tuitune.screens.runs import RunsScreen


async def test_n_reviews_the_runs_own_settings(wait_for, runs_dir: Path) -> None:
    from tuitune.app import TuituneApp
    from tuitune.settings import Settings

    app = TuituneApp(runs_dir=runs_dir, settings=Settings(runs_dir=runs_dir, preset="cpu-first-try"))
    async with app.run_test(size=(120, 40)) as pilot:
        runs = app.screen
        await wait_for(pilot, lambda: isinstance(runs, RunsScreen) and runs.scans >= 2, what="the runs list")
        keys = [key.value for key in runs.table.rows]
        runs.table.move_cursor(row=keys.index(str(runs_dir / "stopped")))  # 200 steps, dora
        await pilot.pause()
        await pilot.press("N")
        await wait_for(pilot, lambda: isinstance(app.screen, NewRunScreen), what="the new-run flow")
        flow = app.screen
        await wait_for(pilot, lambda: flow.config is not None, what="the resolved config")
        assert flow.step == "review"
        assert flow.config.train.max_steps == 200 and flow.config.adapter.method == "dora"
        assert flow.max_steps_input.placeholder == "200 (config of stopped)"
        assert "cpu-first-try" not in str(flow.steps_view.render())
