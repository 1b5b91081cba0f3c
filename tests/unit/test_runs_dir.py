"""One rule for the runs folder: --runs-dir over TUITUNE_RUNS_DIR over the settings file over XDG,
the same for train, stop, attach and the app."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from engine.config import RunConfig, write_config
from tuitune.__main__ import build_parser
from tuitune.cli.common import runs_root

REPO = Path(__file__).resolve().parents[2]
COMMANDS = [["train"], ["stop", "r"], ["attach", "r"], []]


@pytest.fixture
def places(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    """A settings file naming one folder, an XDG data home, and two more candidate folders."""
    spots = {name: tmp_path / name for name in ("flag", "env", "settings", "xdg")}
    config_home = tmp_path / "config"
    (config_home / "tuitune").mkdir(parents=True)
    (config_home / "tuitune" / "settings.yaml").write_text(f"runs_dir: {spots['settings']}\n")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(config_home))
    monkeypatch.setenv("XDG_DATA_HOME", str(spots["xdg"]))
    monkeypatch.delenv("TUITUNE_RUNS_DIR", raising=False)
    return spots


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: c[0] if c else "app")
def test_the_precedence_is_the_same_for_every_command(places: dict[str, Path], command: list[str],
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    def root(*before: str) -> Path:
        return runs_root(build_parser().parse_args([*before, *command]))

    assert root() == places["settings"].resolve()
    monkeypatch.setenv("TUITUNE_RUNS_DIR", str(places["env"]))
    assert root() == places["env"].resolve()
    assert root("--runs-dir", str(places["flag"])) == places["flag"].resolve()
    (Path(os.environ["XDG_CONFIG_HOME"]) / "tuitune" / "settings.yaml").unlink()
    monkeypatch.delenv("TUITUNE_RUNS_DIR")
    assert root() == (places["xdg"] / "tuitune" / "runs").resolve()


def test_the_app_uses_the_same_rule(places: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    from tuitune.app import TuituneApp

    assert TuituneApp().runs_dir == places["settings"].resolve()
    monkeypatch.setenv("TUITUNE_RUNS_DIR", str(places["env"]))
    assert TuituneApp().runs_dir == places["env"].resolve()
    assert TuituneApp(runs_dir=places["flag"]).runs_dir == places["flag"].resolve()


def test_stop_finds_a_run_by_name_in_the_settings_runs_folder(places: dict[str, Path]) -> None:
    """The bug this rule fixes: the app honoured the settings file, tuitune stop did not."""
    run_dir = places["settings"] / "my-run"
    run_dir.mkdir(parents=True)
    write_config(RunConfig(), run_dir / "config.yaml")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, "-m", "tuitune", "stop", "my-run"], env=env, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 1
    assert f"{run_dir} is not running" in done.stderr, done.stderr
    env["TUITUNE_RUNS_DIR"] = str(places["env"])
    done = subprocess.run([sys.executable, "-m", "tuitune", "attach", "my-run"], env=env, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 2 and f"no run named 'my-run' in {places['env']}" in done.stderr, done.stderr
