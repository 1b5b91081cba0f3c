"""Checkboxes readable without colour (issue 25, item 8): Textual draws ``▐X▌`` ticked and unticked alike."""

from __future__ import annotations

from pathlib import Path

from textual.app import App
from textual.widgets import Checkbox

from tuitune.dialogs.export import ExportDialog


class Host(App):
    def on_mount(self) -> None:
        self.push_screen(ExportDialog("demo", Path("/tmp/exports/new"), 134_515_008, "float32", "LlamaForCausalLM"))


async def test_the_export_dialogs_boxes_show_ticked_and_unticked_apart_in_monochrome() -> None:
    app = Host()
    async with app.run_test(size=(80, 24)) as pilot:
        def mark(selector: str) -> str:
            return str(app.screen.query_one(selector, Checkbox).render())[:3]

        assert (mark("#merged"), mark("#gguf-f16")) == ("▐X▌", "▐ ▌")
        await pilot.click("#gguf-f16")
        await pilot.click("#merged")
        await pilot.pause()
        assert (mark("#merged"), mark("#gguf-f16")) == ("▐ ▌", "▐X▌")
