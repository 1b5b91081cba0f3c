"""Export from the app: x on an ended run opens the Export dialog and starts the export job it asks for."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tuitune.dialogs.export import ExportDialog


async def test_x_on_the_dashboard_asks_then_starts_the_export_job_and_reports_its_end(
        make_app, wait_for, demo_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tuitune.runs import launch

    run = tmp_path / "runs" / demo_run.name
    shutil.copytree(demo_run, run, ignore=shutil.ignore_patterns("evals", "exports"))
    started: list[dict] = []

    def fake_start_job(run_dir: Path, kind: str, settings: dict, name: str | None = None):
        """What the supervised job would write: its folder, started, then finished."""
        job = Path(run_dir) / "exports" / "job1"
        job.mkdir(parents=True)
        started.append({"kind": kind, **settings})
        lines = [{"v": 1, "seq": 1, "t": 1.0, "type": "job_started", "kind": "export"},
                 {"v": 1, "seq": 2, "t": 2.0, "type": "job_finished", "destination": str(job), "outputs": []}]
        (job / "events.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
        return job, 4242

    monkeypatch.setattr(launch, "start_job", fake_start_job)
    app = make_app(run.parent, attach=run)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: type(app.screen).__name__ == "TrainScreen" and app.screen.status == "finished",
                       what="the dashboard")
        assert "x" in app.screen.active_bindings
        await pilot.press("x")
        await wait_for(pilot, lambda: isinstance(app.screen, ExportDialog), timeout=30, what="the Export dialog")
        assert "Needs about" in str(app.screen.space_line.render())  # the model's size was read
        await pilot.click("#export")
        await wait_for(pilot, lambda: started, what="the export job")
        assert started[0]["kind"] == "export" and started[0]["merged"] is True and started[0]["weights"] == "adapter"
        await wait_for(pilot, lambda: any("exported to" in str(n.message) for n in app._notifications),
                       timeout=30, what="the end reported")
