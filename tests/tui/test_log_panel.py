"""The dashboard's log panel opens with what the run said, not the libraries' noise (issue 25, item 10): lines
logged under a library's logger and Python warnings stay in engine.log and out of the panel."""

from __future__ import annotations

from pathlib import Path

from textual.widgets import Static

from tuitune.screens.train import TrainScreen

ENGINE_LOG = """\
[supervisor 01:34:25] starting train: python -m engine train --run-dir runs/finished
2026-12-07 01:34:28,571 kernels._internals.hf_hub Skipping publisher trust check (offline)
2026-12-07 01:34:28,572 bitsandbytes.backends.cpu.ops Failed to load CPU gemm_4bit_forward from kernels-community
/venv/site-packages/peft/layer.py:1264: FutureWarning: `torch_dtype` is deprecated! Use `dtype` instead!
  warnings.warn(
2026-12-07 01:34:29,100 engine.recipes.sft loaded 4 records (0 truncated)
2026-12-07 01:34:29,101 transformers.trainer_utils Some columns have no argument
    and have been ignored: text.
{'loss': 1.234, 'grad_norm': 0.5, 'learning_rate': 0.0002, 'epoch': 0.5}
[supervisor 01:34:40] train exited with 0
"""


async def test_the_log_panel_leaves_library_noise_in_engine_log(make_app, wait_for, runs_dir: Path) -> None:
    run_dir = runs_dir / "finished"
    (run_dir / "engine.log").write_text(ENGINE_LOG)
    app = make_app(runs_dir, attach=run_dir)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, TrainScreen), what="the dashboard")
        dash = app.screen
        await wait_for(pilot, lambda: dash.log_read, what="engine.log read")
        dash.repaint_if_due(force=True)
        await pilot.pause()
        shown = str(dash.query_one("#log", Static).render()).splitlines()
    assert shown[0].startswith("[supervisor 01:34:25] starting train")
    assert shown[1] == "2026-12-07 01:34:29,100 engine.recipes.sft loaded 4 records (0 truncated)"
    assert not any(word in line for line in shown for word in ("gemm_4bit", "kernels", "Warning", "warnings.warn",
                                                               "transformers", "have been ignored"))
    assert "{'loss': 1.234" in shown[-2] and shown[-1] == "[supervisor 01:34:40] train exited with 0"
    assert "gemm_4bit_forward" in (run_dir / "engine.log").read_text()
