"""Issue 25, item 3: the review's run name is made from the model; when the model changes it follows, unless the
user typed a name of their own."""

from __future__ import annotations

from pathlib import Path

from tuitune.screens.new_run import NewRunScreen


async def review_with_model(pilot, wait_for, flow: NewRunScreen, model: str) -> None:
    """Back to the model step, type ``model``, and jump to the review (ctrl+s from an earlier step reviews)."""
    while flow.step != "model":
        await pilot.press("escape")
    flow.model_input.value = model
    await pilot.press("ctrl+s")
    await wait_for(pilot, lambda: flow.step == "review" and flow.config is not None
                   and flow.config.model.name_or_path == model, what=f"the review of {model}")


async def test_the_name_follows_the_model_until_one_is_typed(make_app, wait_for, runs_dir: Path) -> None:
    app = make_app(runs_dir)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("n")
        await wait_for(pilot, lambda: isinstance(app.screen, NewRunScreen), what="the new-run flow")
        flow = app.screen
        await review_with_model(pilot, wait_for, flow, "org/first-model")
        assert flow.name_input.value.startswith("first-model-lora-")
        await review_with_model(pilot, wait_for, flow, "org/second-model")
        assert flow.name_input.value.startswith("second-model-lora-")
        flow.name_input.value = "my-own-name"
        await pilot.pause()
        await review_with_model(pilot, wait_for, flow, "org/third-model")
        assert flow.name_input.value == "my-own-name"
