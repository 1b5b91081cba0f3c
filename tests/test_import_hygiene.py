"""The app never loads the ML stack, and the engine's light modules load neither Textual nor torch.

Each check runs in a fresh interpreter, so nothing imported by other tests can hide a leak.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
ML_STACK = ["torch", "transformers", "peft", "bitsandbytes", "datasets", "accelerate"]


def loaded_after(code: str, watch: list[str]) -> list[str]:
    """Run ``code`` in a fresh interpreter; return which of ``watch`` ended up in sys.modules."""
    probe = f"{code}\nimport json, sys\nprint(json.dumps([m for m in {watch!r} if m in sys.modules]))"
    result = subprocess.run([sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("module", ["tuitune.app", "tuitune.__main__", "tuitune.screens.train",
                                    "tuitune.screens.new_run", "tuitune.cli.app"])
def test_app_modules_leave_the_ml_stack_out(module: str) -> None:
    assert loaded_after(f"import {module}", ML_STACK) == []


FIRST_SCREEN_LEAVES_OUT = ["engine.config", "pydantic", "engine.export.plan", "tuitune.dialogs.export",
                           "textual.widgets._text_area"]
"""What the runs list (the first screen) does not use and costs start-up most: the config's pydantic models
(about 50 ms to build), the export plan and dialog (about 0.1 s), TextArea and its themes (about 0.1 s). The
screens that use them import them when opened (issue 29: the first screen in 0.5 s)."""


def test_the_app_starts_without_the_screens_heavy_helpers() -> None:
    assert loaded_after("import tuitune.app", FIRST_SCREEN_LEAVES_OUT) == []


def test_every_tuitune_module_leaves_the_ml_stack_out() -> None:
    code = (
        "import pkgutil, importlib, tuitune\n"
        "for info in pkgutil.walk_packages(tuitune.__path__, 'tuitune.'):\n"
        "    importlib.import_module(info.name)\n"
    )
    assert loaded_after(code, ML_STACK) == []


def test_the_web_server_loads_only_when_served() -> None:
    """tuitune serve's aiohttp and textual-serve cost the app in a terminal nothing: every tuitune module, the
    serve command's own included, imports them only when it serves."""
    code = (
        "import pkgutil, importlib, tuitune\n"
        "for info in pkgutil.walk_packages(tuitune.__path__, 'tuitune.'):\n"
        "    importlib.import_module(info.name)\n"
    )
    assert loaded_after(code, ["aiohttp", "textual_serve", "aiohttp_jinja2"]) == []


def test_matplotlib_loads_only_when_plotting() -> None:
    """tuitune plot's matplotlib costs the app nothing: every tuitune module, plot's own included, imports it only
    when it draws."""
    code = (
        "import pkgutil, importlib, tuitune\n"
        "for info in pkgutil.walk_packages(tuitune.__path__, 'tuitune.'):\n"
        "    importlib.import_module(info.name)\n"
    )
    assert loaded_after(code, ["matplotlib"]) == []


@pytest.mark.parametrize("module", ["engine.config", "engine.protocol", "engine.paths"])
def test_engine_light_modules_load_neither_textual_nor_torch(module: str) -> None:
    assert loaded_after(f"import {module}", ["textual", *ML_STACK]) == []


MOST_TOP_LEVEL = 12
"""The contract core stays small enough to read (``__init__`` and ``__main__`` counted): what a thirteenth
module holds belongs in a subpackage named for it."""


def test_the_engine_keeps_at_most_twelve_top_level_modules() -> None:
    top = sorted(path.name for path in (REPO / "engine").glob("*.py"))
    assert len(top) <= MOST_TOP_LEVEL, f"engine/ has {len(top)} top-level modules: {top}"


def test_every_engine_module_belongs_to_a_layer_of_the_import_contracts() -> None:
    """The layers contract only constrains the modules it names: one left out could import anything."""
    import tomllib

    contracts = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]
    (engine_layers,) = [c for c in contracts if c["type"] == "layers" and c.get("containers") == ["engine"]]
    named = {part.strip() for layer in engine_layers["layers"] for part in layer.replace("|", ":").split(":")}
    modules = {path.stem if path.is_file() else path.name for path in (REPO / "engine").iterdir()
               if (path.suffix == ".py" and path.stem != "__init__") or (path / "__init__.py").is_file()}
    assert sorted(modules - named) == []
