"""The new-run review with the real chat-template doctor: an error shown in red on the review, asked about at start.

The tiny model's template is changed so that ``<|im_end|>`` opens the next turn (never trained);
``tuitune.runs.launch.start_run`` only records its call: launching itself is covered by the engine tests.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from tuitune.dialogs.confirm import ConfirmDialog
from tuitune.screens.new_run import NewRunScreen

EOT_AT_NEXT_TURN = ("{% for m in messages %}{% if not loop.first %}<|im_end|>\n{% endif %}<|im_start|>{{ m['role'] }}\n"
                    "{{ m['content'] }}{% endfor %}{% if add_generation_prompt %}<|im_end|>\n<|im_start|>assistant\n"
                    "{% endif %}")


async def test_a_template_error_is_shown_in_red_on_the_review_and_asked_about_at_the_start(
        make_app, wait_for, runs_dir: Path, tmp_path: Path, tiny_model_dir: Path, monkeypatch) -> None:
    from tuitune.runs import launch

    started: list[Path] = []
    monkeypatch.setattr(launch, "start_run", lambda run_dir, config: started.append(Path(run_dir)) or 4242)
    model = tmp_path / "model"
    shutil.copytree(tiny_model_dir, model)
    (model / "chat_template.jinja").write_text(EOT_AT_NEXT_TURN, encoding="utf-8")
    app = make_app(runs_dir)
    async with app.run_test(size=(120, 40)) as pilot:
        app.draft.model = str(model)
        await pilot.press("n")
        flow = app.screen
        assert isinstance(flow, NewRunScreen)
        await pilot.press("enter", "enter", "enter")  # model, stage (sft), data
        await wait_for(pilot, lambda: flow.query_one("#presets").option_count > 1, what="the preset list")
        await pilot.press("enter")
        await wait_for(pilot, lambda: flow.starter.verdict is not None and flow.starter.verdict.config == flow.config,
                       what="the memory verdict")
        await wait_for(pilot, lambda: flow.starter.template is not None, timeout=60, what="the doctor's verdicts")
        shown = flow.template_view.content
        assert flow.template_view.display and started == []
        assert "chat template: end of turn: <|im_end|> after the answers is not trained" in shown.plain
        assert any(span.style == "bold red" for span in shown.spans)
        await pilot.press("ctrl+s")
        assert isinstance(app.screen, ConfirmDialog)
        assert "end of turn: <|im_end|> after the answers is not trained" in app.screen.question
        await pilot.press("n")  # not forced: nothing starts
        assert app.screen is flow and started == []
        await pilot.press("ctrl+s")  # the same config is not checked again
        assert isinstance(app.screen, ConfirmDialog)
        await pilot.press("y")
        await wait_for(pilot, lambda: len(started) == 1, what="start_run after Start anyway")
