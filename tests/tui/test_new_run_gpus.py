"""The new-run review lists the GPUs found and trains on the ones ticked; without a GPU it says the CPU trains.

NVML is faked (``engine.machine.gpus.list_gpus``); the model is the tiny fixture folder.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from engine.machine import gpus as gpus_mod
from tuitune.screens.new_run import NewRunScreen

_spec = importlib.util.spec_from_file_location("model_builders",
                                               Path(__file__).parents[1] / "fixtures/models/builders.py")
builders = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(builders)
GIB = 1024**3


def fake_gpus(monkeypatch: pytest.MonkeyPatch, found: list[gpus_mod.Gpu], note: str = "") -> None:
    monkeypatch.setattr(gpus_mod, "list_gpus", lambda: (found, note))


async def review(pilot, wait_for, model: str) -> NewRunScreen:
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


async def test_the_review_lists_the_gpus_and_trains_on_those_ticked(make_app, wait_for, runs_dir: Path,
                                                                     tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """You should see both GPUs ticked, the second with its busy process; unticked, the run takes GPU 0 alone."""
    fake_gpus(monkeypatch, [gpus_mod.Gpu(0, "Test GPU", 24 * GIB, 20 * GIB),
                            gpus_mod.Gpu(1, "Test GPU", 24 * GIB, 4 * GIB, processes=1)])
    model = builders.make_model(tmp_path / "tiny")
    async with make_app(runs_dir).run_test(size=(120, 40)) as pilot:
        flow = await review(pilot, wait_for, str(model))
        listed = flow.gpu_list
        assert listed.display and listed.option_count == 2 and sorted(listed.selected) == [0, 1]
        assert "1 process on it" in str(listed.get_option_at_index(1).prompt)
        assert "(each of 2 GPUs)" in flow.starter.verdict.capacity.label  # judged per GPU
        listed.deselect(1)
        await wait_for(pilot, lambda: flow.config is not None and flow.config.train.gpus == [0]
                       and flow.starter.verdict.config == flow.config, what="the run on GPU 0 alone")
        assert flow.starter.verdict.capacity.label == "GPU 0 Test GPU"
        listed.deselect(0)
        await wait_for(pilot, lambda: flow.config is None, what="a run on no GPU refused")
        assert "tick at least one GPU" in str(flow.errors_view.render())


async def test_without_a_gpu_the_review_says_the_cpu_trains(make_app, wait_for, runs_dir: Path, tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    fake_gpus(monkeypatch, [], "no NVIDIA driver")
    model = builders.make_model(tmp_path / "tiny")
    async with make_app(runs_dir).run_test(size=(80, 24)) as pilot:
        flow = await review(pilot, wait_for, str(model))
        assert not flow.gpu_list.display
        assert "none found (no NVIDIA driver): the run trains on the CPU" in str(flow.gpu_note.render())
        assert flow.config.train.gpus == "all"
