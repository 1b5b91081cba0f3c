"""tuitune attach on a LLaMA-Factory output folder: its dashboard read-only, following as it trains."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "lf_runs"


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


async def test_attach_shows_an_lf_runs_loss_and_progress_and_follows_new_lines(make_app, wait_for,
                                                                               tmp_path: Path) -> None:
    folder = tmp_path / "saves" / "qwen2_lora_sft_running"
    shutil.copytree(FIXTURES / "qwen2_lora_sft_running", folder)
    log = folder / "trainer_log.jsonl"
    lines = log.read_text().splitlines()
    log.write_text("\n".join(lines[:-2]) + "\n")  # the run is two lines behind; they come while we watch
    app = make_app(tmp_path / "runs", attach=folder)
    async with app.run_test(size=(120, 40)) as pilot:
        dash = app.screen
        await wait_for(pilot, lambda: type(dash).__name__ == "TrainScreen" and dash.state.step > 0,
                       what="the LF run's history")
        step_before = dash.state.step
        assert dash.lf and "LLaMA-Factory, read-only" in str(dash.title_bar.render())
        assert dash.state.train_series and dash.state.total_steps
        assert not any(key in dash.active_bindings for key in ("s", "c", "k", "p", "R", "C", "x"))
        before = snapshot(folder)
        with open(log, "a") as file:
            file.write("\n".join(lines[-2:]) + "\n")
        added = snapshot(folder)
        last = json.loads(lines[-1])
        await wait_for(pilot, lambda: f"step {last['current_steps']}/" in str(dash.stats.render()), timeout=15,
                       what="the new lines on screen")
        assert dash.state.step > step_before
    assert snapshot(folder) == added and set(before) == set(added)  # nothing written into their folder


def test_attach_command_accepts_an_lf_folder_and_refuses_a_plain_one(tmp_path: Path, capsys, monkeypatch) -> None:
    import argparse

    from tuitune.cli import app as cli_app

    opened: list[Path] = []

    class FakeApp:
        def __init__(self, runs_dir, attach, settings) -> None:
            opened.append(attach)

        def run(self) -> None:
            pass

    monkeypatch.setattr("tuitune.app.TuituneApp", FakeApp)
    folder = tmp_path / "lf"
    shutil.copytree(FIXTURES / "qwen2_lora_sft_finished", folder)
    assert cli_app.run(argparse.Namespace(command="attach", run=str(folder), runs_dir=str(tmp_path / "runs"))) == 0
    assert opened == [folder.resolve()]
    (tmp_path / "plain").mkdir()
    assert cli_app.run(argparse.Namespace(command="attach", run=str(tmp_path / "plain"),
                                          runs_dir=str(tmp_path / "runs"))) == 2
    assert "is a folder but not a run folder" in capsys.readouterr().err


async def test_the_runs_list_shows_lf_folders_of_a_configured_path_read_only(wait_for, tmp_path: Path) -> None:
    from tuitune.app import TuituneApp
    from tuitune.settings import Settings

    saves = tmp_path / "LLaMA-Factory" / "saves"
    shutil.copytree(FIXTURES / "qwen2_lora_sft_finished", saves / "qwen2-0.5b" / "lora" / "sft")
    app = TuituneApp(runs_dir=tmp_path / "runs", settings=Settings(llamafactory_dirs=[saves]))
    async with app.run_test(size=(120, 40)) as pilot:
        runs = app.screen
        await wait_for(pilot, lambda: getattr(runs, "scans", 0) >= 2 and runs.runs, what="the runs list")
        [run] = runs.runs.values()
        assert run.lf and run.name == "LF:qwen2-0.5b/lora/sft" and run.status == "finished"
        assert str(runs.table.get_row_at(0)[0]) == "LF:qwen2-0.5b/lora/sft"
        assert not any(runs.check_action(a, ()) for a in ("chat", "export", "rename", "delete", "new_from_config"))
        await pilot.press("enter")
        await wait_for(pilot, lambda: type(app.screen).__name__ == "TrainScreen" and app.screen.lf,
                       what="its read-only dashboard")


def test_settings_read_llamafactory_dirs(tmp_path: Path) -> None:
    from tuitune.settings import load_settings

    path = tmp_path / "settings.yaml"
    path.write_text("llamafactory_dirs: ~/LLaMA-Factory/saves\n")
    assert load_settings(path).llamafactory_dirs == [Path("~/LLaMA-Factory/saves").expanduser()]
