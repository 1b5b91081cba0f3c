"""Pulling from the Models screen: ctrl+g on a typed hub id starts the same pull job as ``tuitune pull`` (a real
engine process, against the fake Hub on 127.0.0.1) and shows its progress until the model is in the cache."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from rich.console import Console
from textual.app import App
from textual.widgets import Input, OptionList

from engine.paths import pull_dir
from engine.protocol import read_events
from tuitune.screens.models import ModelsScreen
from tuitune.widgets.model_details import ModelDetails


class ModelsApp(App):
    """Opens the ModelsScreen at once."""

    def on_mount(self) -> None:
        """Show the models screen."""
        self.push_screen(ModelsScreen())


async def test_ctrl_g_pulls_the_typed_hub_id_with_progress_and_lists_it_as_cached(
        fake_hub, sharded_tiny: Path, wait_for, monkeypatch: pytest.MonkeyPatch) -> None:
    """You should see "Pulling org/tiny: …" with a bar, then "org/tiny is in the Hugging Face cache: FOLDER", and
    org/tiny among the cached models."""
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)  # as read when first imported
    fake_hub.add("org/tiny", sharded_tiny)
    async with ModelsApp().run_test(size=(120, 40)) as pilot:
        screen = pilot.app.screen
        await wait_for(pilot, lambda: isinstance(screen, ModelsScreen), what="the Models screen")
        box = screen.query_one("#path", Input)
        box.focus()
        box.value = "org/tiny"
        await pilot.press("enter")
        await wait_for(pilot, lambda: screen.info is not None and screen.info.name_or_path == "org/tiny", timeout=30,
                       what="the hub id's facts")
        screen.sources.focus()  # the key is the screen's, as a user reaches it from the list
        await pilot.press("ctrl+g")
        await wait_for(pilot, lambda: screen.pulling is None and "is in the Hugging Face cache" in str(
            screen.pull_line.render()), timeout=60, what="the pull's end")
        events = read_events(pull_dir("org/tiny"))
        assert [e["type"] for e in events][0] == "job_started" and events[-1]["type"] == "job_finished"
        assert any(e["type"] == "progress" for e in events)
        await wait_for(pilot, lambda: "cache:org/tiny" in [o.id for o in screen.query_one("#sources",
                                                                                         OptionList).options],
                       timeout=30, what="the cache rescanned")
        await wait_for(pilot, lambda: screen.info is not None and screen.info.source == "hf-cache", timeout=30,
                       what="the model read again from the cache")
        console = Console(width=200, record=True, file=io.StringIO())
        console.print(screen.query_one(ModelDetails).content)
        assert "org/tiny  LlamaForCausalLM  Hugging Face cache" in console.export_text()
