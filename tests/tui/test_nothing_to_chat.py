"""Issue 25, item 5: on a run with nothing trained (the canned failed run: no adapter, no checkpoint) ``C`` is not
offered and, pressed, says why in a toast; ``R`` that cannot resume says why; and the Chat screen never drops an
Enter silently (a chat that cannot start says why again)."""

from __future__ import annotations

from pathlib import Path

from textual.widgets import Input

from tuitune.screens.chat import ChatScreen
from tuitune.screens.runs import RunsScreen
from tuitune.screens.train import TrainScreen


def last_toast(app) -> str:
    return [notification.message for notification in app._notifications][-1] if app._notifications else ""


def footer_keys(screen) -> set[str]:
    return {active.binding.description for active in screen.active_bindings.values()
            if active.binding.show and active.enabled}


async def test_runs_list_says_why_there_is_no_chat_and_no_resume(make_app, wait_for, runs_dir: Path) -> None:
    app = make_app(runs_dir)
    async with app.run_test(size=(120, 40)) as pilot:
        runs = app.screen
        await wait_for(pilot, lambda: isinstance(runs, RunsScreen) and runs.scans >= 2, what="the runs list")
        keys = [key.value for key in runs.table.rows]
        runs.table.move_cursor(row=keys.index(str(runs_dir / "failed")))
        await pilot.pause()
        assert not {"Chat", "Resume"} & footer_keys(runs)
        await pilot.press("C")
        await pilot.pause(0.2)
        assert isinstance(app.screen, RunsScreen)
        assert "failed has no adapter and no complete checkpoint: there is nothing to chat with" in last_toast(app)
        await pilot.press("R")
        await pilot.pause(0.2)
        assert "failed has no complete checkpoint to resume from" in last_toast(app)


async def test_dashboard_says_why_there_is_no_chat_and_no_resume(make_app, wait_for, runs_dir: Path) -> None:
    app = make_app(runs_dir, attach=runs_dir / "failed")
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, TrainScreen) and app.screen.state.events_seen > 0
                       and app.screen.alive is not None, what="the dashboard")
        await pilot.pause(0.3)
        assert not {"Chat", "Resume"} & footer_keys(app.screen)
        await pilot.press("C")
        await pilot.pause(0.2)
        assert isinstance(app.screen, TrainScreen)
        assert "failed has no adapter and no complete checkpoint" in last_toast(app)
        await pilot.press("R")
        await pilot.pause(0.2)
        assert "failed has no complete checkpoint to resume from" in last_toast(app)


async def test_a_chat_that_cannot_start_says_why_on_enter(make_app, wait_for, runs_dir: Path) -> None:
    app = make_app(runs_dir)
    async with app.run_test(size=(80, 24)) as pilot:
        app.open_chat(runs_dir / "failed")
        await wait_for(pilot, lambda: isinstance(app.screen, ChatScreen), what="the Chat screen")
        screen = app.screen
        await wait_for(pilot, lambda: screen.is_mounted and "no adapter" in str(screen.status.render()),
                       what="the failure")
        screen.query_one("#chat-prompt", Input).value = "hello?"
        await pilot.press("enter")
        await pilot.pause(0.2)
        assert "cannot chat" in last_toast(app) and "no adapter and no complete checkpoint" in last_toast(app)
