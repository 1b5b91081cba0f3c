"""The trainer says each step between its logs (issue 25, item 4): a DPO run logging every 5 steps at 110 s a step
showed "step 1/10" for five minutes. A ``step`` event moves progress, ETA and the runs list; at most one a second,
so a run of fast steps does not fill events.jsonl."""

from __future__ import annotations

import time
from pathlib import Path

from engine.recipes.callbacks import STEP_EVERY_S
from tuitune.runs.launch import continue_run, pause_run, stop_run
from tuitune.runs.state import RunState, fold


def test_a_slow_step_between_logs_is_said_and_fast_ones_at_most_once_a_second(eng, tiny_model_dir: Path,
                                                                               tiny_data: Path, tmp_path: Path) -> None:
    run_dir = eng.make_run(tmp_path, tiny_model_dir, tiny_data, train={"max_steps": 400, "logging_steps": 1000,
                                                                        "save_steps": 1000})
    eng.launch(run_dir)
    eng.wait_for(run_dir, eng.first("run_started"), what="run_started")
    assert pause_run(run_dir)
    eng.wait_for(run_dir, eng.first("paused"), what="the paused event")
    time.sleep(1.5)  # the step in flight now takes longer than STEP_EVERY_S: a slow step
    assert continue_run(run_dir)
    eng.wait_for(run_dir, lambda events: any(e["type"] == "step" for e in events), what="a step event")
    assert stop_run(run_dir)
    events = eng.wait_for(run_dir, lambda events: eng.terminal()(events) and events, what="the stop")
    steps = [e for e in events if e["type"] == "step"]
    logged = {e["step"] for e in events if e["type"] == "log"}
    assert steps and not logged & {e["step"] for e in steps}, (steps, logged)  # a logged step is said once
    assert all(b["step"] > a["step"] and b["t"] - a["t"] >= STEP_EVERY_S * 0.99 for a, b in zip(steps, steps[1:]))
    assert all(e["total_steps"] == 400 and e["elapsed_s"] > 0 and e["eta_s"] is not None for e in steps)
    for event in steps:  # what the dashboard and the runs list show once it is read: no point on the chart
        before = fold(RunState(), [e for e in events if e["seq"] < event["seq"]])
        after = fold(before, [event])
        assert (after.step, after.eta_s, after.train_series) == (event["step"], event["eta_s"], before.train_series)
