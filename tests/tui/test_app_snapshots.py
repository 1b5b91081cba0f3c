"""Snapshots of the app's screens at 80x24 and 120x40, on the canned run folders.

Times come from the events and the canned pids are dead (``alive_runs`` says which runs count
as live), so every run renders the same screen. Update with ``pytest --snapshot-update``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.tui.canned import add_events
from tuitune.screens.runs import RunsScreen
from tuitune.screens.train import TrainScreen

SMALL, LARGE = (80, 24), (120, 40)


def settle_runs(wait_for):
    async def run_before(pilot) -> None:
        screen = pilot.app.screen
        assert isinstance(screen, RunsScreen)
        await wait_for(pilot, lambda: screen.scans >= 1, what="the runs scan")
        await pilot.pause()

    return run_before


def settle_dashboard(wait_for, *keys: str):
    async def run_before(pilot) -> None:
        await wait_for(pilot, lambda: isinstance(pilot.app.screen, TrainScreen), what="the dashboard")
        dash = pilot.app.screen
        await wait_for(pilot, lambda: dash.alive is not None and dash.state.events_seen > 0 and dash.log_lines,
                       what="the run's history and log")
        dash.repaint_if_due(force=True)
        await pilot.pause()
        await pilot.press(*keys)
        await pilot.pause()

    return run_before


@pytest.mark.parametrize("size", [SMALL, LARGE], ids=["80x24", "120x40"])
def test_runs_list(snap_compare, make_app, wait_for, runs_dir: Path, alive_runs: set[str], size) -> None:
    """You should see four runs, newest first: running (green), failed (red), stopped, finished,
    each with model, method, step/total, last loss, start time (UTC) and duration; below the
    table, the highlighted run's line; the footer shows Open, Refresh, "1234 screens" and n New run."""
    alive_runs.add("running")
    assert snap_compare(make_app(runs_dir), terminal_size=size, run_before=settle_runs(wait_for))


@pytest.mark.parametrize("size", [SMALL, LARGE], ids=["80x24", "120x40"])
def test_dashboard_running(snap_compare, make_app, wait_for, runs_dir: Path, alive_runs: set[str], size) -> None:
    """You should see the running run's dashboard: title with a green RUNNING badge, a falling
    cyan loss curve over steps 5-45, a progress bar at 38% with step 45/120 and ETA 2m15s, the
    numbers (epoch, loss, lr, grad norm, tokens/s), one H100 with its memory bar, the trainer's
    RSS and CPU, host RAM, the engine.log tail, and a footer with Stop & save, Save now, Kill, Back."""
    alive_runs.add("running")
    app = make_app(runs_dir, attach=runs_dir / "running")
    assert snap_compare(app, terminal_size=size, run_before=settle_dashboard(wait_for))


PAUSED_WITH_ALERTS = (
    {"type": "alert", "kind": "spike", "message": "loss 9.1 at step 45 is 6.6x the recent median 1.38",
     "action": "a one-off is often one odd batch; if it keeps rising, lower train.learning_rate", "step": 45,
     "severity": "warning", "stops": False},
    {"type": "alert", "kind": "gpu_temperature", "message": "GPU 0 is at 88 °C",
     "action": "check the server's cooling; the GPU will slow itself down", "step": 45, "severity": "warning",
     "stops": False},
    {"type": "paused"},
)


@pytest.mark.parametrize("size", [SMALL, LARGE], ids=["80x24", "120x40"])
def test_dashboard_paused_with_alerts(snap_compare, make_app, wait_for, runs_dir: Path, alive_runs: set[str],
                                      size) -> None:
    """You should see a blue PAUSED badge, a yellow band with the two alerts (a loss spike, a hot GPU)
    each with what to do, and a footer offering Stop & save, Kill, p Continue (no Save now, no Pause)."""
    alive_runs.add("running")
    add_events(runs_dir / "running", *PAUSED_WITH_ALERTS)
    app = make_app(runs_dir, attach=runs_dir / "running")
    assert snap_compare(app, terminal_size=size, run_before=settle_dashboard(wait_for))


@pytest.mark.parametrize("size", [SMALL, LARGE], ids=["80x24", "120x40"])
def test_dashboard_failed(snap_compare, make_app, wait_for, runs_dir: Path, size) -> None:
    """You should see a FAILED badge, a red band with the cause (CUDA out of memory), exit code and
    the hint, the traceback at the end of the log tail, and Stop/Save/Kill greyed out."""
    app = make_app(runs_dir, attach=runs_dir / "failed")
    assert snap_compare(app, terminal_size=size, run_before=settle_dashboard(wait_for))


def test_dashboard_finished_with_eval(snap_compare, make_app, wait_for, runs_dir: Path) -> None:
    """You should see a FINISHED badge, the train curve with three magenta eval points and a
    legend, a full progress bar with ETA done, and "no GPU: no NVIDIA driver" in the system panel."""
    app = make_app(runs_dir, attach=runs_dir / "finished")
    assert snap_compare(app, terminal_size=LARGE, run_before=settle_dashboard(wait_for))


def test_stop_asks_first(snap_compare, make_app, wait_for, runs_dir: Path, alive_runs: set[str]) -> None:
    """You should see, over the dashboard, a dialog asking whether to stop the run after it saves
    a checkpoint and the adapter, with "Stop & save (y)" and "Cancel (n)"."""
    alive_runs.add("running")
    app = make_app(runs_dir, attach=runs_dir / "running")
    assert snap_compare(app, terminal_size=SMALL, run_before=settle_dashboard(wait_for, "s"))


def test_new_run_first_step(snap_compare, make_app, runs_dir: Path) -> None:
    """You should see the new-run flow on its first step: the steps 1 Model (highlighted),
    2 Data, 3 Preset, 4 Review & start with the demo choices, the model field holding
    smollm2-135m-instruct, and a footer with Back and Start run."""
    assert snap_compare(make_app(runs_dir), terminal_size=SMALL, press=["n"])


def test_dashboard_stopped_with_checkpoint_offers_resume(snap_compare, make_app, wait_for, runs_dir: Path) -> None:
    """You should see a STOPPED badge, the curve up to step 40, ETA stopped, and a footer with
    R Resume beside the greyed-out Stop & save, Save now and Kill."""
    from engine.checkpoints import mark_complete

    folder = runs_dir / "stopped" / "checkpoints" / "checkpoint-40"
    folder.mkdir(parents=True)
    (folder / "trainer_state.json").write_text('{"global_step": 40}')
    (folder / "adapter_model.safetensors").write_bytes(b"weights")
    (folder / "optimizer.pt").write_bytes(b"moments")
    mark_complete(folder, 40)
    app = make_app(runs_dir, attach=runs_dir / "stopped")
    assert snap_compare(app, terminal_size=SMALL, run_before=settle_dashboard(wait_for))
