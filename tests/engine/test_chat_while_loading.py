"""Issue 25, item 5: a question sent while the Chat screen's model still loads is not dropped: the screen says the
model is loading and asks it once the model is ready (the tiny run's real chat service)."""

from __future__ import annotations

import time
from pathlib import Path

from tuitune.screens.chat import ChatScreen


async def until(pilot, condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out after {timeout:.0f}s waiting for {what}"
        await pilot.pause(0.05)


async def test_a_question_sent_while_loading_is_asked_once_ready(tiny_run: Path) -> None:
    from tuitune.app import TuituneApp
    from tuitune.settings import Settings

    app = TuituneApp(runs_dir=tiny_run.parent, chat=tiny_run, settings=Settings(preset="default"))
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: isinstance(app.screen, ChatScreen) and app.screen.is_mounted, 30, "the Chat screen")
        screen = app.screen
        screen.prompt.value = "Hello?"
        await pilot.press("enter")
        assert not screen.ready  # still loading: this is the case under test
        assert "asked once it is ready" in [n.message for n in app._notifications][-1]
        await until(pilot, lambda: screen.exchanges and screen.answering is None, 120, "the answer")
        assert screen.exchanges[0].question == "Hello?" and screen.exchanges[0].ended.get("tuned")
