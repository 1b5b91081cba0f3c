"""A real run of the tiny model started from the new-run flow and watched on the dashboard."""

from __future__ import annotations

from pathlib import Path

from textual.widgets import Input

from tuitune.screens.new_run import NewRunScreen
from tuitune.screens.runs import RunsScreen
from tuitune.screens.train import TrainScreen


async def test_new_run_of_tiny_model_trains_live_to_an_adapter(make_app, wait_for, tmp_path: Path,
                                                                tiny_model_dir: Path) -> None:
    runs_dir = tmp_path / "runs"
    app = make_app(runs_dir)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("n")
        flow = app.screen
        assert isinstance(flow, NewRunScreen)
        flow.query_one("#model", Input).value = str(tiny_model_dir)
        await pilot.press("enter", "enter", "enter")  # model, stage (sft), data
        await wait_for(pilot, lambda: flow.query_one("#presets").option_count > 1, what="the preset list")
        app.draft.preset = "cpu-first-try"
        flow.take_draft()
        await pilot.press("enter")
        await wait_for(pilot, lambda: flow.config is not None, what="the resolved config")
        flow.query_one("#max_steps", Input).value = "3"
        flow.query_one("#cutoff", Input).value = "64"
        await wait_for(pilot, lambda: flow.config is not None and flow.config.train.max_steps == 3, what="steps")
        assert flow.config.model.name_or_path == str(tiny_model_dir) and flow.config.train.logging_steps == 1
        await pilot.press("enter")  # Enter on the review step starts the run

        await wait_for(pilot, lambda: isinstance(app.screen, TrainScreen), timeout=20, what="the dashboard")
        dash = app.screen
        assert dash.run_dir.parent == runs_dir.resolve()
        await wait_for(pilot, lambda: dash.state.terminal is not None, timeout=240, what="the run to end")
        await wait_for(pilot, lambda: dash.repaints >= 2 and "done" in str(dash.stats.render()), what="a repaint")
        assert dash.status == "finished", dash.state.terminal
        assert [step for step, _ in dash.state.train_series] == [1.0, 2.0, 3.0]
        assert dash.chart.redraws >= 1 and "step 3/3" in str(dash.stats.render())
        adapter = dash.run_dir / dash.state.terminal["adapter_path"]
        assert (adapter / "adapter_config.json").is_file() and (adapter / "adapter_model.safetensors").is_file()

        await pilot.press("escape")
        runs = app.screen
        assert isinstance(runs, RunsScreen)
        key = str(dash.run_dir)
        await wait_for(pilot, lambda: key in runs.runs and runs.runs[key].status == "finished",
                       what="the run listed as finished (next rescan)")
        assert runs.runs[key].state.step == 3
