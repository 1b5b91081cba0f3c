"""A run whose model is a hub id starts by downloading it: the dashboard shows the download's bytes, rate and time
left, read from the same ``progress`` events ``tuitune pull`` follows."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from tuitune.runs.state import RunState, fold
from tuitune.screens.train import TrainScreen

EVENTS = [
    {"v": 1, "seq": 1, "t": 1764162000.0, "type": "phase", "name": "downloading",
     "message": "downloading org/model: 16 MiB (8 of 8 files) into the Hugging Face cache"},
    {"v": 1, "seq": 2, "t": 1764162004.0, "type": "progress", "phase": "download", "done": 8 << 20,
     "total": 16 << 20, "files_done": 3, "files_total": 8, "rate_bytes_per_s": 2 << 20, "eta_s": 4.0},
]


def test_a_download_progress_event_is_the_phase_message() -> None:
    state = fold(RunState(), EVENTS)
    assert state.phase == "downloading"
    assert state.phase_message == "8 MiB of 16 MiB (50%), 2 MiB/s, 4s left"


async def test_the_dashboard_shows_the_download_phase_of_a_starting_run(make_app, wait_for, runs_dir: Path,
                                                                       alive_runs: set[str]) -> None:
    """You should see "downloading: 8 MiB of 16 MiB (50%), 2 MiB/s, 4s left" beside the run's name."""
    run_dir = runs_dir / "downloading"
    run_dir.mkdir()
    shutil.copy(runs_dir / "running" / "config.yaml", run_dir / "config.yaml")
    (run_dir / "events.jsonl").write_text("".join(json.dumps(e) + "\n" for e in EVENTS))
    alive_runs.add("downloading")
    app = make_app(runs_dir, attach=run_dir)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, TrainScreen), what="the dashboard")
        dash = app.screen
        await wait_for(pilot, lambda: dash.state.phase == "downloading", what="the download's events")
        dash.repaint_if_due(force=True)
        await pilot.pause()
        title = str(dash.title_bar.render())
        assert "downloading: 8 MiB of 16 MiB (50%), 2 MiB/s, 4s left" in title, title
