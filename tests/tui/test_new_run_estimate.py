"""The new-run flow's review step: memory estimate, the warning before a run that will not fit, refusals.

The GPU the estimate compares against is faked (``engine.machine.gpus.list_gpus``), the model folders are
built by ``tests/fixtures/models/builders.py``, and ``tuitune.runs.launch.start_run`` only records
its call: launching itself is covered by the engine tests.
"""

from __future__ import annotations

import importlib.util
import json
import threading
from pathlib import Path

import pytest

from engine.machine import gpus as gpus_mod
from engine.models.info import read_model_info
from tuitune.dialogs.confirm import ConfirmDialog
from tuitune.screens.new_run import NewRunScreen

_spec = importlib.util.spec_from_file_location("model_builders",
                                               Path(__file__).parents[1] / "fixtures/models/builders.py")
builders = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(builders)

GIB = 1024**3
SEVEN_B = {
    "architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 4096, "intermediate_size": 11008,
    "num_hidden_layers": 32, "num_attention_heads": 32, "num_key_value_heads": 32, "vocab_size": 32000,
    "max_position_embeddings": 4096, "tie_word_embeddings": False, "torch_dtype": "bfloat16",
}
"""A Llama-2-7B layout: config.json only, so its shapes are derived and no 13 GB of weights are written."""


@pytest.fixture()
def small_gpu(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """One 8 GiB GPU is all the estimate sees; returns a list counting the GPU queries and their threads."""
    calls: list[int] = []

    def fake() -> tuple[list[gpus_mod.Gpu], str]:
        calls.append(threading.get_ident())
        return [gpus_mod.Gpu(0, "Test GPU", 8 * GIB, 8 * GIB)], ""

    monkeypatch.setattr(gpus_mod, "list_gpus", fake)
    return calls


@pytest.fixture()
def started(monkeypatch: pytest.MonkeyPatch) -> list[tuple[Path, object]]:
    """Records (run folder, config) of every start_run call instead of launching an engine."""
    from tuitune.runs import launch

    calls: list[tuple[Path, object]] = []
    monkeypatch.setattr(launch, "start_run", lambda run_dir, config: calls.append((Path(run_dir), config)) or 4242)
    return calls


def shown(widget) -> str:
    """The plain text a widget shows (rich renderables flattened)."""
    from rich.console import Console

    with open("/dev/null", "w") as sink:
        console = Console(width=200, record=True, file=sink)
        console.print(widget.content)
    return console.export_text()


async def review(pilot, wait_for, model: str) -> NewRunScreen:
    """Open the flow with ``model`` chosen, go through the steps to the review and wait for the verdict."""
    pilot.app.draft.model = model
    await pilot.press("n")
    flow = pilot.app.screen
    assert isinstance(flow, NewRunScreen)
    await pilot.press("enter", "enter", "enter")  # model, stage (sft), data
    await wait_for(pilot, lambda: flow.query_one("#presets").option_count > 1, what="the preset list")
    await pilot.press("enter")
    await wait_for(pilot, lambda: flow.starter.verdict is not None and flow.starter.verdict.config == flow.config,
                   what="the memory verdict")
    return flow


async def test_a_run_that_will_not_fit_warns_with_what_to_change_and_asks_before_starting(
        make_app, wait_for, runs_dir: Path, tmp_path: Path, small_gpu: list[int], started: list) -> None:
    model = builders.make_model(tmp_path / "llama-7b", SEVEN_B, weights=False)
    assert read_model_info(str(model)).params_total > 6e9  # the fixture really is a 7B model
    app = make_app(runs_dir)
    async with app.run_test(size=(120, 40)) as pilot:
        flow = await review(pilot, wait_for, str(model))
        assert small_gpu and threading.main_thread().ident not in small_gpu  # read in a worker
        est = flow.starter.verdict.estimate
        assert not flow.starter.verdict.fits and est.total > 8 * GIB and flow.starter.verdict.refusal is None
        panel = shown(flow.memory)
        assert "✗ Will not fit" in panel and "GPU 0 Test GPU has 8.0 GiB" in panel
        assert "Try:" in panel and "quant.mode: 4bit" in panel  # what to change
        assert flow.memory.has_class("-overflow")
        await pilot.press("ctrl+s")
        dialog = app.screen
        assert isinstance(dialog, ConfirmDialog) and "will not fit" in dialog.question
        assert "quant.mode: 4bit" in dialog.question and started == []
        # no one change is enough for a 7B model on 8 GiB: the dialog names the fewest that fit together
        assert "together: " in dialog.question and ", fits" in dialog.question
        await pilot.press("n")  # cancel: nothing starts, the review stays
        assert app.screen is flow and started == []
        await pilot.press("ctrl+s", "y")
        await wait_for(pilot, lambda: len(started) == 1, what="start_run after confirming")
        run_dir, config = started[0]
        assert config.model.name_or_path == str(model) and run_dir.parent == runs_dir.resolve()


async def test_a_run_that_fits_starts_without_asking(
        make_app, wait_for, runs_dir: Path, tmp_path: Path, small_gpu: list[int], started: list) -> None:
    model = builders.make_model(tmp_path / "tiny-llama")
    app = make_app(runs_dir)
    async with app.run_test(size=(120, 40)) as pilot:
        flow = await review(pilot, wait_for, str(model))
        assert flow.starter.verdict.fits and flow.starter.verdict.refusal is None
        assert "✓ fits" in shown(flow.memory) and not flow.memory.has_class("-overflow")
        assert "Will not fit" not in shown(flow.memory)
        flow.query_one("#name").value = "tiny-run"
        await pilot.press("ctrl+s")
        assert not isinstance(app.screen, ConfirmDialog)
        await wait_for(pilot, lambda: len(started) == 1, what="start_run")
        assert started[0][0] == runs_dir.resolve() / "tiny-run"


async def test_start_pressed_before_the_estimate_waits_for_it(
        make_app, wait_for, runs_dir: Path, tmp_path: Path, small_gpu: list[int], started: list,
        monkeypatch: pytest.MonkeyPatch) -> None:
    from tuitune.controllers import run_start

    model = builders.make_model(tmp_path / "llama-7b", SEVEN_B, weights=False)
    gate = threading.Event()
    real = run_start.check_run

    def slow_check(*args):
        gate.wait(10)
        return real(*args)

    monkeypatch.setattr(run_start, "check_run", slow_check)
    app = make_app(runs_dir)
    async with app.run_test(size=(120, 40)) as pilot:
        app.draft.model = str(model)
        await pilot.press("n", "ctrl+s")  # ctrl+s from the first step goes to the review
        flow = app.screen
        await wait_for(pilot, lambda: flow.config is not None, what="the resolved config")
        assert "Estimating memory" in shown(flow.memory)
        await pilot.press("ctrl+s")
        assert app.screen is flow and started == []  # nothing starts before the verdict
        gate.set()
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmDialog), what="the question once estimated")
        await pilot.press("y")
        await wait_for(pilot, lambda: len(started) == 1, what="start_run")


async def test_a_model_needing_remote_code_is_refused_at_review(
        make_app, wait_for, runs_dir: Path, tmp_path: Path, small_gpu: list[int], started: list) -> None:
    config = dict(builders.TINY_LLAMA, auto_map={"AutoModelForCausalLM": "modeling_custom.CustomLM"})
    model = builders.make_model(tmp_path / "custom", config)
    app = make_app(runs_dir)
    async with app.run_test(size=(120, 40)) as pilot:
        flow = await review(pilot, wait_for, str(model))
        refusal = str(flow.refusal_view.render())
        assert "needs remote code" in refusal and "model.trust_remote_code: true" in refusal
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert app.screen is flow and started == []
        assert any("needs remote code" in str(n.message) for n in app._notifications)


async def test_an_unreadable_model_folder_is_refused_with_its_cause(
        make_app, wait_for, runs_dir: Path, tmp_path: Path, small_gpu: list[int], started: list) -> None:
    folder = tmp_path / "not-a-model"
    folder.mkdir()
    (folder / "notes.json").write_text(json.dumps({"hello": 1}))
    app = make_app(runs_dir)
    async with app.run_test(size=(120, 40)) as pilot:
        flow = await review(pilot, wait_for, str(folder))
        assert "no config.json" in str(flow.refusal_view.render())
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert app.screen is flow and started == []
