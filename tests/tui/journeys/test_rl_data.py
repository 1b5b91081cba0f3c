"""The Data screen on prompts for the RL stages ({prompt, answer}): the layout is recognised, and a record
shows its prompt with its reference answer, or says that it has none."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from textual.app import App
from textual.widgets import Static

from tuitune.screens.data import DataScreen


class DataApp(App):
    """Pushes a DataScreen with the given arguments."""

    def __init__(self, **screen_args) -> None:
        super().__init__()
        self.screen_args = screen_args

    def on_mount(self) -> None:
        """Show the data screen."""
        self.push_screen(DataScreen(**self.screen_args))


@pytest.fixture()
def prompts_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    records = [{"prompt": "What is 2 + 2?", "answer": "4"},
               {"prompt": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "你好"}]},
               {"answer": "orphan"}]
    (tmp_path / "prompts.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))
    monkeypatch.chdir(tmp_path)
    return tmp_path


async def test_prompts_show_with_their_reference_answer(prompts_dir: Path) -> None:
    app = DataApp(path="prompts.jsonl", model=None, cutoff=64)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = app.screen
        while not (screen.report_done and screen.opened):
            await pilot.pause(0.05)
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert screen.fmt == "prompts"
        body = str(screen.query_one("#record-body", Static).render())
        assert "What is 2 + 2?" in body and "reference answer\n4" in body
        assert str(screen.table.get_row_at(2)[3]) == "prompt: missing field"
        previews = [str(cell) for cell in screen.table.get_row_at(0) + screen.table.get_row_at(1)]
        assert "What is 2 + 2? → 4" in previews and "你好" in previews and not any("None" in p for p in previews)
        screen.table.move_cursor(row=1)
        await pilot.pause()
        await app.workers.wait_for_complete()
        await pilot.pause()
        body = str(screen.query_one("#record-body", Static).render())
        assert "Be brief." in body and "你好" in body and "(none: rewards without a reference score it)" in body
