"""Export from the app refuses what ``tuitune export`` refuses before it starts, in the same words: here a
destination another export holds (its lock held by this test, as a live export's supervisor holds it)."""

from __future__ import annotations

from pathlib import Path

import pytest
from textual.widgets import Input

from engine.locks import FolderLock
from tuitune.dialogs.export import ExportDialog


async def test_an_export_to_a_folder_another_export_is_writing_is_refused_with_the_clis_line(
        make_app, wait_for, runs_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tuitune.runs import launch

    run = runs_dir / "finished"
    (run / "adapter").mkdir()
    (run / "adapter" / "adapter_config.json").write_text("{}")
    destination = tmp_path / "served"
    destination.mkdir()
    other_export = FolderLock(destination, lock_file=None)
    assert other_export.acquire()
    started: list[dict] = []
    monkeypatch.setattr(launch, "start_job", lambda run_dir, kind, settings, name=None: started.append(settings))
    app = make_app(runs_dir, attach=run)
    try:
        async with app.run_test(size=(80, 24)) as pilot:
            await wait_for(pilot, lambda: type(app.screen).__name__ == "TrainScreen"
                           and app.screen.status == "finished", what="the dashboard")
            await pilot.press("x")
            await wait_for(pilot, lambda: isinstance(app.screen, ExportDialog), timeout=30, what="the Export dialog")
            app.screen.query_one("#destination", Input).value = str(destination)
            await pilot.pause()
            await pilot.click("#export")
            line = f"{destination} is being written by another export; wait for it to end or choose another destination"
            await wait_for(pilot, lambda: any(str(n.message) == line and n.severity == "error"
                                              for n in app._notifications), timeout=30, what="the refusal")
    finally:
        other_export.release()
    assert started == []
