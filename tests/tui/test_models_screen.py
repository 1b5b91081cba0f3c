"""The models screen: sources, details, the estimate against the GPU, refusals, use for a new run."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
from textual.app import App
from textual.pilot import Pilot
from textual.widgets import Input, OptionList, Select

from engine.machine import gpus as gpus_mod
from engine.machine.gpus import Gpu
from tuitune.messages import ModelChosen
from tuitune.recent_models import add_recent, recent_models_path
from tuitune.screens.models import ModelsScreen
from tuitune.widgets.model_details import ModelDetails
from tuitune.widgets.model_memory import ModelMemory

_spec = importlib.util.spec_from_file_location("model_builders",
                                               Path(__file__).parents[1] / "fixtures/models/builders.py")
builders = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(builders)

GIB = 1024**3


class ModelsApp(App):
    """Opens the ModelsScreen at once."""

    def on_mount(self) -> None:
        """Show the models screen."""
        self.push_screen(ModelsScreen())


@pytest.fixture
def machine(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, demo_model_dir: Path) -> dict:
    """A fake HF cache with two models, one recent model, and one 24 GiB GPU (changeable)."""
    cache = builders.make_hf_cache(tmp_path / "hub", {"acme/tiny-chat": True, "acme/half-download": False})
    builders.make_hf_cache(cache, {"acme/other": True})
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    add_recent("acme/tiny-chat", now=1.0)
    state = {"gpus": [Gpu(0, "NVIDIA L4", 24 * GIB, 23 * GIB)], "note": ""}
    monkeypatch.setattr(gpus_mod, "list_gpus", lambda: (state["gpus"], state["note"]))
    return state


async def settle(pilot: Pilot) -> None:
    """Wait until workers are done and their messages handled."""
    for _ in range(3):
        await pilot.pause()
        await pilot.app.workers.wait_for_complete()
    await pilot.pause()


def shown(pilot: Pilot, widget: type) -> str:
    """The plain text a widget renders (rich renderables flattened)."""
    from rich.console import Console

    console = Console(width=200, record=True, file=open("/dev/null", "w"))
    console.print(pilot.app.screen.query_one(widget).content)
    return console.export_text()


async def type_path(pilot: Pilot, text: str) -> None:
    """Type ``text`` into the path box and press Enter."""
    box = pilot.app.screen.query_one("#path", Input)
    box.focus()
    box.value = text
    await pilot.press("enter")
    await settle(pilot)


async def test_sources_and_demo_details(machine: dict) -> None:
    """You should see the demo, recent and cached models, the demo's facts and an estimate that fits."""
    async with ModelsApp().run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        ids = [o.id for o in pilot.app.screen.query_one("#sources", OptionList).options if o.id]
        assert ids == ["smollm2-135m-instruct", "recent:acme/tiny-chat", "cache:acme/other", "cache:acme/tiny-chat"]
        details = shown(pilot, ModelDetails)
        assert "LlamaForCausalLM" in details and "134.5M" in details and "9 (3 kv)" in details
        memory = shown(pilot, ModelMemory)
        assert "Memory LoRA, 4,884,480 trainable, on cuda" in memory and "GPU 0 NVIDIA L4 24.0 GiB" in memory
        assert "✓ fits:" in memory and not pilot.app.screen.query_one(ModelMemory).has_class("-overflow")


async def test_choosing_a_cached_model_and_a_preset(machine: dict) -> None:
    """You should see the cached model's facts, then the QLoRA estimate when that preset is chosen."""
    async with ModelsApp().run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        sources = pilot.app.screen.query_one("#sources", OptionList)
        sources.highlighted = sources.get_option_index("cache:acme/other")
        await settle(pilot)
        details = shown(pilot, ModelDetails)
        assert "acme/other" in details and "Hugging Face cache" in details and "1,704" in details
        pilot.app.screen.query_one("#preset", Select).value = "qlora-4bit"
        await settle(pilot)
        assert "Memory QLoRA 4-bit" in shown(pilot, ModelMemory)


async def test_will_not_fit_warns_with_changes(machine: dict) -> None:
    """You should see a red warning naming what to change when the GPU is too small."""
    machine["gpus"] = [Gpu(0, "Tiny GPU", GIB // 2, GIB // 2)]
    async with ModelsApp().run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        memory = shown(pilot, ModelMemory)
        assert "✗ Will not fit: needs" in memory and "GPU 0 Tiny GPU has 512 MiB." in memory and "Try:" in memory
        assert "gradient_checkpointing: true saves" in memory or "batch_size" in memory
        assert pilot.app.screen.query_one(ModelMemory).has_class("-overflow")


async def test_no_gpu_compares_with_host_memory(machine: dict) -> None:
    """You should see why there is no GPU and CPU figures against host memory."""
    machine["gpus"], machine["note"] = [], "no NVIDIA driver"
    async with ModelsApp().run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        memory = shown(pilot, ModelMemory)
        assert "No GPU (no NVIDIA driver)" in memory and "on cpu" in memory and "(host memory)" in memory
        assert pilot.app.screen.query_one("#preset", Select).value == "cpu-first-try"  # as the new-run flow


async def test_typed_bad_folder_and_hub_id(machine: dict, tmp_path: Path) -> None:
    """You should see the refusal's message for a bad folder, and for a hub id not on this machine while offline."""
    (tmp_path / "empty").mkdir()
    async with ModelsApp().run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        await type_path(pilot, str(tmp_path / "empty"))
        assert "no config.json" in shown(pilot, ModelDetails)
        assert pilot.app.screen.query_one(ModelDetails).has_class("-error")
        assert "No estimate: choose a usable model." in shown(pilot, ModelMemory)
        await type_path(pilot, "acme/not-here")  # the suite runs with HF_HUB_OFFLINE=1
        assert "acme/not-here is not on this machine and HF_HUB_OFFLINE is set" in shown(pilot, ModelDetails)
        assert pilot.app.screen.query_one(ModelDetails).has_class("-error")


@pytest.fixture
def online(fake_hub, monkeypatch: pytest.MonkeyPatch):
    """The fake Hub, reachable from this process: huggingface_hub read HF_HUB_OFFLINE=1 (the suite's) when
    something imported it earlier; the screen passes the endpoint itself at each call."""
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    return fake_hub


async def test_typed_hub_id_shows_its_facts_estimate_and_verdict_without_its_weights(
        machine: dict, online, sharded_tiny: Path) -> None:
    """You should see a hub id's facts read from the Hub, what a pull would download, and the fit verdict."""
    online.add("org/tiny", sharded_tiny)
    async with ModelsApp().run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        await type_path(pilot, "org/tiny")
        details = shown(pilot, ModelDetails)
        assert "org/tiny" in details and "Hugging Face Hub (not downloaded)" in details, details
        assert "LlamaForCausalLM" in details and "Parameters" in details and "Download" in details
        assert "On the Hub, not on this machine: 16 MiB to download" in details
        memory = shown(pilot, ModelMemory)
        assert "✓ fits:" in memory and "GPU 0 NVIDIA L4" in memory, memory
        for shard in ("model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"):
            assert online.sent[f"org/tiny/{shard}"] <= 100_001 < (sharded_tiny / shard).stat().st_size
        await type_path(pilot, "org/tiyn")
        assert "no model org/tiyn on the Hub" in shown(pilot, ModelDetails)


async def test_path_completion(machine: dict, tmp_path: Path) -> None:
    """You should see the folder name completed when → accepts the suggestion."""
    builders.make_model(tmp_path / "my-model")
    async with ModelsApp().run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        box = pilot.app.screen.query_one("#path", Input)
        box.focus()
        await pilot.press(*f"{tmp_path}/my-m")
        await settle(pilot)
        await pilot.press("right", "enter")
        await settle(pilot)
        assert box.value == f"{tmp_path}/my-model/"
        assert "1,704" in shown(pilot, ModelDetails) and "my-model" in shown(pilot, ModelDetails)


async def test_use_for_new_run_posts_and_remembers(machine: dict) -> None:
    """You should see ModelChosen posted and the model first in the recent list."""
    messages: list = []
    async with ModelsApp().run_test(size=(120, 40), message_hook=messages.append) as pilot:
        await settle(pilot)
        await pilot.press("ctrl+n")
        await settle(pilot)
        chosen = list({id(m): m for m in messages if isinstance(m, ModelChosen)}.values())  # seen as it bubbles
        assert [m.name_or_path for m in chosen] == ["smollm2-135m-instruct"]
        saved = json.loads(recent_models_path().read_text())
        assert [e["name_or_path"] for e in saved] == ["smollm2-135m-instruct", "acme/tiny-chat"]


def test_snapshot_80x24(snap_compare, machine: dict) -> None:
    """You should see the sources, the demo model's facts and the top of its estimate on a small terminal."""
    assert snap_compare(ModelsApp(), terminal_size=(80, 24), run_before=settle)


def test_snapshot_120x40(snap_compare, machine: dict) -> None:
    """You should see the demo model's facts and its LoRA estimate fitting a 24 GiB GPU."""
    assert snap_compare(ModelsApp(), terminal_size=(120, 40), run_before=settle)


def test_snapshot_will_not_fit_120x40(snap_compare, machine: dict) -> None:
    """You should see the red will-not-fit warning with the changes to make."""
    machine["gpus"] = [Gpu(0, "Tiny GPU", GIB // 2, GIB // 2)]
    assert snap_compare(ModelsApp(), terminal_size=(120, 40), run_before=settle)


def test_complete_path_rules(tmp_path: Path) -> None:
    """Folders complete with a trailing /, hidden ones only after a dot, hub ids never."""
    from tuitune.path_suggester import PathSuggester

    complete_path = PathSuggester(paths_only=True).complete

    for name in ("alpha", "alps", ".hidden"):
        (tmp_path / name).mkdir()
    (tmp_path / "alto.txt").write_text("not a folder")
    assert complete_path(f"{tmp_path}/al") == f"{tmp_path}/alpha/"
    assert complete_path(f"{tmp_path}/alt") is None
    assert complete_path(f"{tmp_path}/.h") == f"{tmp_path}/.hidden/"
    assert complete_path(f"{tmp_path}/h") is None
    assert complete_path("HuggingFaceTB/SmolLM2") is None
    assert complete_path(f"{tmp_path}/missing/x") is None


async def test_a_model_typed_while_the_list_is_read_stays_shown(machine: dict, monkeypatch: pytest.MonkeyPatch
                                                                ) -> None:
    """You should see the model you typed, not the demo: the list's scan ending after Enter re-highlighted its first
    entry and replaced the typed model (a hub id's facts never showed when the GPU listing was slow)."""
    import threading

    listed = threading.Event()
    gpus = gpus_mod.list_gpus
    monkeypatch.setattr(gpus_mod, "list_gpus", lambda: listed.wait(10) and gpus())
    async with ModelsApp().run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        box = pilot.app.screen.query_one("#path", Input)
        box.focus()
        box.value = "acme/other"
        await pilot.press("enter")
        listed.set()
        await settle(pilot)
        assert pilot.app.screen.model_name == "acme/other"
        assert "acme/other" in shown(pilot, ModelDetails)
        await pilot.press("ctrl+r")  # a rescan keeps it too
        await settle(pilot)
        assert pilot.app.screen.model_name == "acme/other"


async def test_a_failing_scan_is_reported(machine: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    """You should see the error dialog naming the failure (as on every screen), and the demo model still shown."""
    from engine.models import hf_cache
    from tuitune.dialogs.error import ErrorModal

    def broken(*_args):
        raise PermissionError("cache folder not readable")

    monkeypatch.setattr(hf_cache, "scan", broken)
    async with ModelsApp().run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        assert isinstance(pilot.app.screen, ErrorModal) and "cache folder not readable" in pilot.app.screen.details
        await pilot.press("escape")
        assert "LlamaForCausalLM" in shown(pilot, ModelDetails)
