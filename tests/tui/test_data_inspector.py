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


LONG = {"type": "problem", "severity": "error", "record": 3, "line": 4, "field": "output", "file": "chat.jsonl",
        "message": "the answer is longer than cutoff_len (612 tokens of 512): it would be cut before its "
                   "end-of-turn token, so the model would not learn to stop"}


def problem_rows(app: App) -> list[str]:
    """The problem texts of the table's rows as the screen shows them."""
    lines = ["".join(segment.text for segment in strip).rstrip() for strip in app.screen._compositor.render_strips()]
    return [line.split("#3", 1)[1].strip() for line in lines if "chat.jsonl:4 #3" in line]


async def test_a_long_problem_is_cut_after_a_whole_word_and_again_when_the_screen_widens() -> None:
    """At 80x24 a row read `output: the answer is longer than cutoff_le`: cut mid-word, with no mark that
    more follows. The row ends after a whole word with an ellipsis; the line under the table has it whole."""
    full = f"output: {LONG['message']}"
    app = InspectorApp()
    async with app.run_test(size=(80, 24)) as pilot:
        inspector = app.query_one(DataInspector)
        inspector.reset("")
        inspector.show_tab("tab-problems")
        inspector.add_events([LONG, LONG])
        await pilot.pause()
        narrow = problem_rows(app)
        assert len(narrow) == 2 and narrow[0].endswith("…"), narrow
        shown = narrow[0].removesuffix("…")
        assert full.startswith(shown) and full[len(shown)] == " ", narrow  # ends where a word ends
        await pilot.resize_terminal(160, 24)
        await pilot.pause()
        wide = problem_rows(app)
        assert wide[0] == full or (len(wide[0]) > len(narrow[0]) and wide[0].endswith("…")), wide
        await pilot.press("down")
        await pilot.pause()
        assert LONG["message"] in " ".join(str(inspector.query_one("#data-problem", Static).render()).split())
