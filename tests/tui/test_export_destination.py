"""Issue 25, item 1: the Export dialog (x) names the folder the export will really write, ``RUN/exports/NAME``,
not ``RUN/exports/export``; left as it is, the job's folder is that one."""

from __future__ import annotations

from pathlib import Path

import pytest
from textual.widgets import Input

from tests.tui.canned import save_checkpoint
from tuitune.dialogs.export import ExportDialog
from tuitune.screens.train import TrainScreen


@pytest.fixture()
def spawned(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, ...]]:
    """The supervisors start_job would start (the job folder and its job.yaml are made for real; the export
    itself is the engine tests' business)."""
    from tuitune.runs import launch

    calls: list[tuple[str, ...]] = []
    monkeypatch.setattr(launch, "_spawn", lambda folder, *args: calls.append((str(folder), *args)) or 4242)
    return calls


async def test_the_dialog_names_the_folder_the_export_writes(make_app, wait_for, runs_dir: Path,
                                                            spawned: list[tuple[str, ...]]) -> None:
    run_dir = runs_dir / "finished"
    save_checkpoint(run_dir, 60, whole=True)  # weights the export does not refuse before it starts
    app = make_app(runs_dir, attach=run_dir)
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, TrainScreen) and app.screen.state.events_seen > 0,
                       what="the dashboard")
        await pilot.press("x")
        await wait_for(pilot, lambda: isinstance(app.screen, ExportDialog), timeout=30, what="the Export dialog")
        named = Path(app.screen.query_one("#destination", Input).value)
        assert named.parent == run_dir / "exports" and not named.exists()
        await pilot.click("#export")
        await wait_for(pilot, lambda: spawned, timeout=10, what="the export job to start")
    assert spawned[0][0] == str(named.resolve())
    assert sorted(p.name for p in (run_dir / "exports").iterdir()) == [named.name]
