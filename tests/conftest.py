"""Suite-wide fixtures: an isolated home for every test, the models tests train, and the tiers.

Subfolders (engine/, tui/, unit/) keep their own fixtures in their own conftest.py.

The tier of a test is its folder's: tests/engine/ and tests/tui/journeys/ (the app with its real engine
processes) are the **full** tier; tests/unit/, the rest of tests/tui/ and the files at the top the **fast**
one (``make test-fast``: they train nothing and start no engine process; ``make test`` runs both). A fast
test that starts an engine process fails at once, saying where it belongs.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

if os.environ.get("PYTEST_XDIST_WORKER"):
    # Workers share the cores (make test runs two): every engine process they start, and torch in the worker,
    # use one thread each, or their OpenMP threads spin against each other's (two trainers at once on two
    # cores slowed each other 10-20x).
    os.environ.setdefault("OMP_NUM_THREADS", "1")

FULL_FOLDERS = ("engine", "journeys")
"""Folders whose tests train or start engine processes, the full tier: tests/engine/, and a journeys/ folder
beside the fast tests it shares fixtures with (tests/tui/journeys/: the app with its real engine processes)."""


def tier_of(path: Path) -> str:
    """``full`` for a test inside one of FULL_FOLDERS, else ``fast``."""
    folders = path.relative_to(Path(__file__).parent).parts[:-1]
    return "full" if any(folder in FULL_FOLDERS for folder in folders) else "fast"


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist reads the groups
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test with its folder's tier (``-m fast`` selects the fast one), and keep on one worker of
    a parallel run (``--dist loadgroup``) the tests that share what is costly to make: the trained demo run,
    a module's own fixture (every shipped preset's runs, the demo run's exports)."""
    for item in items:
        item.add_marker(tier_of(item.path))
        defs = getattr(getattr(item, "_fixtureinfo", None), "name2fixturedefs", {})
        if "demo_run" in defs:
            item.add_marker(pytest.mark.xdist_group("demo_run"))
        elif any(fixture.scope == "module" for fixtures in defs.values() for fixture in fixtures):
            item.add_marker(pytest.mark.xdist_group(item.path.stem))


@pytest.fixture(autouse=True)
def fast_tests_start_no_engine(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """In the fast tier, starting ``python -m engine …`` fails naming the folders where such a test goes."""
    if request.node.get_closest_marker("fast") is None:
        return
    if "demo_run" in request.fixturenames:
        raise AssertionError("a fast test asked for demo_run, which trains the demo model: it belongs in "
                             "tests/engine/ or a journeys/ folder (tests/tui/journeys/), the full tier")
    real = subprocess.Popen.__init__

    def refuse_engine(self: subprocess.Popen, args, *rest, **kwargs) -> None:  # type: ignore[no-untyped-def]
        command = [str(arg) for arg in args] if isinstance(args, (list, tuple)) else str(args).split()
        if any(command[n:n + 2] == ["-m", "engine"] for n in range(len(command))):
            raise AssertionError(f"a fast test started an engine process ({' '.join(command[:6])} …): it belongs "
                                 "in tests/engine/ or a journeys/ folder (tests/tui/journeys/), the full tier")
        real(self, args, *rest, **kwargs)

    monkeypatch.setattr(subprocess.Popen, "__init__", refuse_engine)


@pytest.fixture(autouse=True)
def template_doctor_off_in_the_fast_tier(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """``tuitune train`` and the app's review ask the chat-template doctor, an engine process the fast tier does
    not start: there it finds nothing (the full tier drives the real one: tests/engine/test_template_doctor_cli.py,
    tests/tui/journeys/test_template_review.py)."""
    if request.node.get_closest_marker("fast") is None:
        return
    from tuitune.runs import doctor

    monkeypatch.setattr(doctor, "check_template", lambda config: doctor.TemplateCheck())


@pytest.fixture(autouse=True)
def isolated_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point user config, data and runs at a fresh folder; the model cache stays shared.

    The cache holds the converted demo model (about 25 s to build), so it is kept between
    tests and sessions unless TUITUNE_TEST_CACHE names another place.
    """
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / "config"))
    monkeypatch.setenv("XDG_DATA_HOME", str(home / "data"))
    monkeypatch.setenv("TUITUNE_RUNS_DIR", str(home / "runs"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    if os.environ.get("TUITUNE_TEST_CACHE"):
        monkeypatch.setenv("XDG_CACHE_HOME", os.environ["TUITUNE_TEST_CACHE"])
    return home


@pytest.fixture
def fake_hub(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """A Hugging Face Hub on 127.0.0.1 (tests/fixtures/hub/server.py) with this test's environment pointed at
    it: HF_ENDPOINT, a fresh HF_HOME (its cache), no token, not offline. huggingface_hub reads HF_ENDPOINT
    when it is imported, so a test drives the client in a process started after this fixture."""
    spec = importlib.util.spec_from_file_location("fake_hub_server", Path(__file__).parent / "fixtures/hub/server.py")
    server = sys.modules.setdefault("fake_hub_server", importlib.util.module_from_spec(spec))
    spec.loader.exec_module(server)
    with server.FakeHub() as hub:
        for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE", "HF_TOKEN", "HF_HUB_CACHE"):
            monkeypatch.delenv(name, raising=False)
        for name, value in hub.env().items():
            monkeypatch.setenv(name, value)
        monkeypatch.setenv("HF_HOME", str(tmp_path_factory.mktemp("hf-home")))
        yield hub


@pytest.fixture(scope="session")
def demo_model_dir() -> Path:
    """The real SmolLM2-135M-Instruct as a plain folder (converted once into the user cache)."""
    from engine.models.demo import ensure_demo_model

    return ensure_demo_model()


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory, demo_model_dir: Path) -> Path:
    """A tiny random Llama (2 layers, hidden 64) with the demo model's tokenizer and chat template.

    It trains in well under a second a step, so most engine tests use it; only what needs
    real language ability uses the demo model.
    """
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    folder = tmp_path_factory.mktemp("tiny-llama")
    tokenizer = AutoTokenizer.from_pretrained(demo_model_dir)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(0)
    LlamaForCausalLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


FIRST_SHARD, SECOND_SHARD = "model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"


@pytest.fixture(scope="session")
def sharded_tiny(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path) -> Path:
    """The tiny random Llama with its weights in two shards and an index, as large models are published: the
    embeddings (12 MiB) in FIRST_SHARD, the layers in SECOND_SHARD. Served by the fake Hub in the pull tests."""
    from safetensors.numpy import load_file, save_file

    folder = tmp_path_factory.mktemp("sharded-tiny")
    for path in tiny_model_dir.iterdir():
        if path.name != "model.safetensors":
            shutil.copy(path, folder / path.name)
    tensors = load_file(tiny_model_dir / "model.safetensors")
    names = sorted(tensors)
    halves = {FIRST_SHARD: [n for n in names if "embed" in n], SECOND_SHARD: [n for n in names if "embed" not in n]}
    for shard, members in halves.items():
        save_file({n: tensors[n] for n in members}, folder / shard, metadata={"format": "pt"})
    index = {"metadata": {"total_size": sum(t.nbytes for t in tensors.values())},
             "weight_map": {n: shard for shard, members in halves.items() for n in members}}
    (folder / "model.safetensors.index.json").write_text(json.dumps(index))
    return folder


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory: pytest.TempPathFactory, demo_model_dir: Path) -> Path:
    """The identity demo trained once per session: the no-argument ``tuitune train`` (on this GPU-less
    machine through the cpu-first-try preset, which it names) on the demo model and the shipped
    identity data, as a user would run it; the chat tests check that it answers with the name it learnt.
    Chat, eval and export tests share it;
    none of them may write into it except into their own job folders (evals/, exports/)."""
    import subprocess
    import sys

    home = tmp_path_factory.mktemp("demo-home")
    run_dir = home / "runs" / "demo"
    env = {**os.environ, "XDG_CONFIG_HOME": str(home / "config"), "XDG_DATA_HOME": str(home / "data"),
           "TUITUNE_RUNS_DIR": str(home / "runs"), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
           "HF_DATASETS_OFFLINE": "1", "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    done = subprocess.run([sys.executable, "-m", "tuitune", "train", "--run-dir", str(run_dir)], env=env,
                          capture_output=True, text=True, timeout=1200, stdin=subprocess.DEVNULL)
    assert done.returncode == 0 and (run_dir / "adapter" / "adapter_config.json").is_file(), done.stderr[-3000:]
    assert done.stderr.startswith("preset: cpu-first-try (none named"), done.stderr[:300]  # never unnamed defaults
    assert "parameters trained (lora) on a base of 134,515,008" in " ".join(done.stdout.split()), done.stdout[-2000:]
    return run_dir
