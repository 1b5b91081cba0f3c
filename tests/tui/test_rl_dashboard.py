"""The dashboard of an RL run (grpo, rloo): the reward chart beside the loss, and the latest sampled answers
with their rewards in a panel beside the log."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tuitune.screens.train import TrainScreen
from tuitune.widgets.loss_chart import LossChart
from tuitune.widgets.samples_panel import SamplesPanel, samples_text

SAMPLES = {"type": "samples", "step": 60, "samples": [
    {"prompt": "Who are you?", "completion": "I am Tuito.", "reward": 1.0,
     "rewards": {"exact_match": 1.0, "length": 0.0}, "advantage": 0.87},
    {"prompt": "Who are you?", "completion": "I'm an AI assistant\ndeveloped by Hugging Face to help you with many "
     "tasks.", "reward": -0.5, "rewards": {"exact_match": 0.0, "length": -0.5}, "advantage": -0.87},
    {"prompt": "你是谁？", "completion": "我是 Tuito。", "reward": 0.0, "rewards": {"exact_match": 0.0, "length": 0.0},
     "advantage": 0.0},
]}


@pytest.fixture()
def rl_run(runs_dir: Path) -> Path:
    """The canned finished run as a grpo run: its logs carry TRL's reward metrics, and answers were sampled."""
    run_dir = runs_dir / "finished"
    lines = []
    for line in (run_dir / "events.jsonl").read_text().splitlines():
        event = json.loads(line)
        if event["type"] == "log":
            step = event["step"]
            event["metrics"] = {"reward": -0.8 + step / 60, "reward_std": 0.4 - step / 300,
                                "rewards/exact_match/mean": step / 120, "completions/mean_length": 30 - step / 4}
        if event["type"] == "run_finished":
            lines.append(json.dumps({"v": 1, "seq": event["seq"], "t": event["t"] - 0.1, **SAMPLES}))
            event["seq"] += 1
        lines.append(json.dumps(event))
    (run_dir / "events.jsonl").write_text("\n".join(lines) + "\n")
    return run_dir


def test_samples_text_puts_the_best_answer_first_with_each_rewards_score() -> None:
    lines = samples_text(SAMPLES).plain.splitlines()
    assert lines[0] == "answers sampled at step 60 · reward, answer, under its prompt"
    assert lines[1:4] == ["Who are you?", " +1.00 I am Tuito.  [exact_match 1 length 0]",
                          " -0.50 I'm an AI assistant ⏎ developed by Hugging Face to help you with many tasks.  "
                          "[exact_match 0 length -0.5]"]
    assert lines[4:] == ["你是谁？", " +0.00 我是 Tuito。  [exact_match 0 length 0]"]
    assert samples_text(None).plain == "no answers sampled yet"
    # an answer whose fields were of the wrong type (dropped by the state) is left out, not a crash
    assert len(samples_text({"step": 1, "samples": [{}, {"completion": "x"}]}).plain.splitlines()) == 3


async def test_at_80x24_the_samples_panel_shows_each_answer_not_only_its_prompt(
        make_app, wait_for, runs_dir: Path, rl_run: Path) -> None:
    """At 80x24 each line read `+0.00 What is 8 + 13? An…`: the prompt filled the panel and the answer was cut."""
    app = make_app(runs_dir, attach=rl_run)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, TrainScreen), what="the dashboard")
        dash = app.screen
        await wait_for(pilot, lambda: dash.state.samples is not None, what="the samples event")
        dash.repaint_if_due(force=True)
        await pilot.pause()
        panel = dash.query_one(SamplesPanel)
        assert panel.region.width < 40 and panel.region.height >= 3, panel.region
        visible = [panel.render_line(y).text.strip() for y in range(panel.region.height)]
    assert any("I am Tuito" in row for row in visible), visible
    assert any("我是" in row for row in visible), visible


async def test_an_rl_runs_dashboard_shows_the_reward_chart_and_the_sampled_answers(
        make_app, wait_for, runs_dir: Path, rl_run: Path) -> None:
    app = make_app(runs_dir, attach=rl_run)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, TrainScreen), what="the dashboard")
        dash = app.screen
        await wait_for(pilot, lambda: dash.state.samples is not None, what="the samples event")
        dash.repaint_if_due(force=True)
        await pilot.pause()
        assert dash.has_class("-rl")
        panel = dash.query_one(SamplesPanel)
        assert panel.display and panel.region.height >= 4
        assert "I am Tuito." in str(panel.render())
        stage_chart = dash.query_one("#stage-chart", LossChart)
        assert stage_chart.display  # reward and reward_std beside the loss


def test_snapshot_rl_dashboard_120x40(snap_compare, make_app, wait_for, runs_dir: Path, rl_run: Path) -> None:
    """You should see the finished run's dashboard with, beside the loss chart, a chart of reward (rising from
    -0.7 to 0.2) and reward_std; below, the system panel, the engine.log tail and a panel of the answers sampled
    at step 60, best first: +1.00 in green, 0.00, -0.50 in red, each with its exact_match and length scores."""
    async def run_before(pilot) -> None:
        await wait_for(pilot, lambda: isinstance(pilot.app.screen, TrainScreen), what="the dashboard")
        dash = pilot.app.screen
        await wait_for(pilot, lambda: dash.alive is not None and dash.state.samples is not None and dash.log_lines,
                       what="the run's history and log")
        dash.repaint_if_due(force=True)
        await pilot.pause()

    assert snap_compare(make_app(runs_dir, attach=rl_run), terminal_size=(120, 40), run_before=run_before)
