"""The dashboard's title at 80x24 (issue 25, item 6): it left out the stage, and its warning was cut at the
screen's edge even at 160 columns. The stage is named, and the warning has lines of its own, wrapped."""

from __future__ import annotations

import json
from pathlib import Path

from textual.widgets import Static

from tuitune.screens.train import TrainScreen

WARNING = ("12 of 40 records were longer than data.cutoff_len (256 tokens) and were cut at the end: raise "
           "data.cutoff_len, or see which ones with tuitune data check")


def with_warning(run_dir: Path) -> None:
    """The finished run with a data warning written before its end, as the trainer writes one."""
    lines = []
    for line in (run_dir / "events.jsonl").read_text().splitlines():
        event = json.loads(line)
        if event["type"] == "run_finished":
            lines.append(json.dumps({"v": 1, "seq": event["seq"], "t": event["t"] - 0.1, "type": "warning",
                                     "message": WARNING, "code": "data"}))
            event["seq"] += 1
        lines.append(json.dumps(event))
    (run_dir / "events.jsonl").write_text("\n".join(lines) + "\n")


async def test_the_title_names_the_stage_and_wraps_its_warning(make_app, wait_for, runs_dir: Path) -> None:
    with_warning(runs_dir / "finished")
    app = make_app(runs_dir, attach=runs_dir / "finished")
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, TrainScreen), what="the dashboard")
        dash = app.screen
        await wait_for(pilot, lambda: dash.state.warnings, what="the warning")
        dash.repaint_if_due(force=True)
        await pilot.pause()
        title = dash.query_one("#title", Static)
        shown = [title.render_line(y).text.rstrip() for y in range(title.region.height)]
    assert "· sft · lora" in shown[0], shown
    assert " ".join(" ".join(shown[1:]).split()) == f"⚠ {WARNING}", shown
