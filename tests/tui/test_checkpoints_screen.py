"""The Checkpoints screen (K on the dashboard) on a canned run folder: each checkpoint with its step, the train
loss logged last at or before it and the eval loss at it, the lowest eval loss marked best and chosen at first;
chat, evaluate and export open on the chosen checkpoint; a deleted one says why it cannot be used."""

from __future__ import annotations

from pathlib import Path

import pytest
from textual.widgets import DataTable, Input, Label, Static

from tests.tui.canned import add_events, overfit, save_checkpoint
from tuitune.dialogs.evaluate import EvaluateDialog
from tuitune.dialogs.export import ExportDialog
from tuitune.screens.chat import ChatScreen
from tuitune.screens.checkpoints import CheckpointsScreen
from tuitune.screens.train import TrainScreen

BAD_DATA = Path(__file__).resolve().parents[1] / "fixtures" / "bad_data" / "not_an_object.jsonl"


@pytest.fixture()
def no_chat_model(monkeypatch: pytest.MonkeyPatch) -> None:
    """The Chat screen opens without starting its model (the chat service is the engine tests' business)."""
    monkeypatch.setattr(ChatScreen, "start_service", lambda self: None)


async def open_checkpoints(pilot, wait_for) -> CheckpointsScreen:
    app = pilot.app
    await wait_for(pilot, lambda: isinstance(app.screen, TrainScreen) and app.screen.state.events_seen > 0,
                   what="the dashboard")
    await pilot.press("K")
    await wait_for(pilot, lambda: isinstance(app.screen, CheckpointsScreen) and app.screen.rows, what="the checkpoints")
    return app.screen


def cells(screen: CheckpointsScreen) -> list[list[str]]:
    table = screen.query_one("#checkpoints", DataTable)
    return [[str(cell) for cell in table.get_row_at(index)] for index in range(table.row_count)]


async def test_checkpoints_with_their_losses_the_best_marked_and_chosen(make_app, wait_for, runs_dir: Path,
                                                                        no_chat_model: None) -> None:
    overfit(runs_dir / "finished")
    app = make_app(runs_dir, attach=runs_dir / "finished")
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_checkpoints(pilot, wait_for)
        assert cells(screen) == [
            ["", "20", "1.7747", "1.8947", "deleted (save_total_limit)"],
            ["★ best", "40", "1.4199", "1.5399", ""],
            ["", "60", "1.2118", "1.6318", ""],
        ]
        note = str(screen.query_one("#note", Static).render())
        assert "last logged at or before the step" in note and "best: step 40" in note
        assert screen.chosen.step == 40  # the best is chosen at first
        await pilot.press("C")
        await wait_for(pilot, lambda: isinstance(app.screen, ChatScreen), what="the Chat screen")
        assert app.screen.run == str(runs_dir / "finished" / "checkpoints" / "checkpoint-40")
        await pilot.press("escape")
        await wait_for(pilot, lambda: isinstance(app.screen, CheckpointsScreen), what="back to the checkpoints")
        await pilot.press("x")
        await wait_for(pilot, lambda: isinstance(app.screen, ExportDialog), timeout=30, what="the Export dialog")
        assert "checkpoint-40" in str(app.screen.query_one("#title", Label).render())
        await pilot.press("escape")
        await wait_for(pilot, lambda: isinstance(app.screen, CheckpointsScreen), what="back to the checkpoints")
        await pilot.press("e")
        await wait_for(pilot, lambda: isinstance(app.screen, EvaluateDialog), what="the Evaluate dialog")
        assert "finished at checkpoint-40" in str(app.screen.query_one(Label).render())
        app.screen.query_one("#data-path", Input).value = str(runs_dir / "nope.jsonl")
        await pilot.press("enter")
        await pilot.pause(0.1)
        assert isinstance(app.screen, EvaluateDialog)  # no such file: it says so and stays
        assert "nope.jsonl: no such file" in str(app.screen.query_one("#data-problem", Static).render())
        app.screen.query_one("#data-path", Input).value = str(BAD_DATA)  # refused as tuitune eval refuses it
        await pilot.press("enter")
        await wait_for(pilot, lambda: any(n.title == "evaluation refused" for n in app._notifications),
                       what="the refusal")
        assert "data:" in [n.message for n in app._notifications][-1]
        assert isinstance(app.screen, CheckpointsScreen) and not (runs_dir / "finished" / "evals").exists()
        await pilot.press("up", "up")
        assert screen.chosen.step == 20
        await pilot.press("C")
        await pilot.pause(0.1)
        assert isinstance(app.screen, CheckpointsScreen)
        assert "checkpoint-20 cannot be used: deleted" in [n.message for n in app._notifications][-1]


async def test_without_eval_losses_none_is_marked_best_and_the_screen_says_why(make_app, wait_for,
                                                                              runs_dir: Path) -> None:
    save_checkpoint(runs_dir / "stopped", 20)  # the canned stopped run evaluated nothing
    app = make_app(runs_dir, attach=runs_dir / "stopped")
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_checkpoints(pilot, wait_for)
        assert [row[0] for row in cells(screen)] == ["", ""]
        assert "None is marked best: no checkpoint has an eval loss" in str(screen.query_one("#note", Static).render())


@pytest.mark.parametrize("size", [(80, 24), (120, 40)], ids=["80x24", "120x40"])
def test_checkpoints_snapshot(snap_compare, make_app, wait_for, runs_dir: Path, size) -> None:
    """You should see CHECKPOINTS finished, three rows (steps 20, 40, 60) with the train loss and eval loss of
    each, "★ best" in green on step 40, step 20 "deleted (save_total_limit)" dimmed, the cursor on step 40; below,
    what the loss columns mean and that step 40 is best; a footer with Chat, Evaluate, Export, Back."""
    overfit(runs_dir / "finished")

    async def run_before(pilot) -> None:
        await open_checkpoints(pilot, wait_for)
        await pilot.pause()

    assert snap_compare(make_app(runs_dir, attach=runs_dir / "finished"), terminal_size=size, run_before=run_before)


async def test_the_list_follows_a_live_run(make_app, wait_for, runs_dir: Path, alive_runs: set[str]) -> None:
    alive_runs.add("running")
    run_dir = runs_dir / "running"  # checkpoints at 20 and 40 so far, no evaluation
    save_checkpoint(run_dir, 20)
    save_checkpoint(run_dir, 40)
    app = make_app(runs_dir, attach=run_dir)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_checkpoints(pilot, wait_for)
        assert [row.step for row in screen.rows] == [20, 40] and screen.best is None
        save_checkpoint(run_dir, 60)
        add_events(run_dir, {"type": "eval", "step": 60, "eval_loss": 1.2}, {"type": "checkpoint", "step": 60,
                                                                              "path": "checkpoints/checkpoint-60"})
        await wait_for(pilot, lambda: [row.step for row in screen.rows] == [20, 40, 60], what="the new checkpoint")
        assert screen.best.step == 60 and cells(screen)[2][0] == "★ best"
