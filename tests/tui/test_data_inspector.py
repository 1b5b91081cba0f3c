"""The Data screen's inspector on its own, fed report events as ``python -m engine data`` streams them."""

from __future__ import annotations

from textual.app import App, ComposeResult
from textual.widgets import Static

from tuitune.widgets.data_inspector import DataInspector
from tuitune.widgets.data_table import ProblemTable


class InspectorApp(App):
    def compose(self) -> ComposeResult:
        yield DataInspector(model="", cutoff=512)


async def test_an_empty_problems_tab_says_there_are_none_rather_than_a_bare_header() -> None:
    app = InspectorApp()
    async with app.run_test(size=(80, 24)) as pilot:
        inspector = app.query_one(DataInspector)
        inspector.reset("")
        inspector.show_tab("tab-problems")
        await pilot.pause()
        line = inspector.query_one("#data-problem", Static)
        assert "no problems found so far" in str(line.render())
        inspector.add_events([{"type": "done", "errors": 0, "warnings": 0}])
        await pilot.pause()
        assert not inspector.query_one(ProblemTable).display
        assert str(line.render()) == "No problems found: every record can be trained on."
        inspector.add_events([{"type": "problem", "severity": "warning", "record": 3, "line": 4, "field": "",
                               "message": "empty answer", "file": "chat.jsonl"}])
        await pilot.pause()
        assert inspector.query_one(ProblemTable).display
