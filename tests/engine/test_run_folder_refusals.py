"""Folders and names that cannot be a run's (or a preset's) are refused before any work, in one located line:
a runs folder that is a file, a run or preset name with a newline, a LLaMA-Factory output_dir in the system's
own folders. The real command line in a subprocess, the app's rename and preset save on real folders."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from engine.config import ConfigError
from engine.paths import user_presets_dir
from engine.presets import save_user_preset
from tuitune.runs.launch import stop_run, wait_until_gone
from tuitune.runs.manage import rename_run


def tuitune(eng, *args: str, cwd: Path | None = None, **env: str) -> subprocess.CompletedProcess[str]:
    """The ``tuitune`` command line in a subprocess (``env`` added to the test's), waited for."""
    return subprocess.run([sys.executable, "-m", "tuitune", *args], cwd=cwd or eng.repo, env={**eng.env(), **env},
                          capture_output=True, text=True, timeout=240, stdin=subprocess.DEVNULL)


def one_line(done: subprocess.CompletedProcess[str]) -> str:
    """The command's stderr, asserted to be one line."""
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr, done.stderr
    return done.stderr


def test_a_runs_folder_that_is_a_file_is_refused_naming_who_chose_it(eng, tiny_model_dir: Path, tiny_data: Path,
                                                                     tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    runs.write_text("not a folder\n")

    by_flag = tuitune(eng, "--runs-dir", str(runs), "stop", "some-run")
    by_env = tuitune(eng, "train", "--model", str(tiny_model_dir), "--data", str(tiny_data), "--max-steps", "1",
                     "--detach", TUITUNE_RUNS_DIR=str(runs))

    assert by_flag.returncode == 2 and one_line(by_flag) == f"error: --runs-dir: {runs} is not a folder (it should " \
                                                            "hold run folders)\n"
    assert by_env.returncode == 2 and one_line(by_env).startswith(f"error: $TUITUNE_RUNS_DIR: {runs} is not a folder")
    assert runs.read_text() == "not a folder\n"


@pytest.mark.parametrize("given", ["a\nb", "trail\n", "/etc"], ids=["newline inside", "newline at the end", "/etc"])
def test_a_run_folder_no_run_can_have_is_refused_before_anything_starts(eng, tiny_model_dir: Path,
                                                                               tiny_data: Path, tmp_path: Path,
                                                                               given: str) -> None:
    """A newline in the folder's name would split every line that names the run; a system folder is not one."""
    run_dir = tmp_path / given if "\n" in given else Path(given)
    done = tuitune(eng, "train", "--model", str(tiny_model_dir), "--data", str(tiny_data), "--max-steps", "1",
                   "--detach", "--run-dir", str(run_dir))
    try:
        assert done.returncode == 2, done
        line = one_line(done)
        assert line.startswith("error: --run-dir: "), line
        assert ("control character" in line) if "\n" in given else ("is a system folder" in line), line
        assert not run_dir.exists() or not (run_dir / "config.yaml").exists()
    finally:
        if done.returncode == 0:  # it started: end it
            started = Path(done.stdout.removesuffix("\n"))  # the folder's own newline is part of its name
            stop_run(started, kill=True)
            wait_until_gone(started)


def test_the_apps_rename_refuses_a_name_ending_in_a_newline(tmp_path: Path) -> None:
    run_dir = tmp_path / "runs" / "first"
    run_dir.mkdir(parents=True)
    (run_dir / "config.yaml").write_text("{}\n")

    with pytest.raises(ValueError, match=r"cannot rename first: 'trail\\n' cannot be a folder name here"):
        rename_run(run_dir, "trail\n")

    assert [p.name for p in run_dir.parent.iterdir()] == ["first"]


def test_a_preset_name_ending_in_a_newline_is_refused(tmp_path: Path) -> None:
    """It was saved as ``trail⏎.yaml``. The save dialog checks names with the same pattern."""
    from tuitune.dialogs.save_preset import SavePresetDialog

    with pytest.raises(ConfigError, match="use 1 to 64 letters"):
        save_user_preset("trail\n", {"adapter": {"r": 8}})

    assert not user_presets_dir().exists() or not any(user_presets_dir().iterdir())
    assert SavePresetDialog("mine", set(), set()).problem("trail\n") is not None


LF_YAML = """\
model_name_or_path: {model}
stage: sft
do_train: true
finetuning_type: lora
dataset: tuito
dataset_dir: data
cutoff_len: 64
output_dir: {output_dir}
per_device_train_batch_size: 2
max_steps: 1
"""


def test_a_llamafactory_output_dir_in_the_system_folders_is_said_not_suggested(eng, tiny_model_dir: Path,
                                                                                tmp_path: Path) -> None:
    """import-lf suggested ``--run-dir /etc`` without a word; train refuses it before any work."""
    data = tmp_path / "data"
    data.mkdir()
    (data / "dataset_info.json").write_text(json.dumps({
        "tuito": {"file_name": "tuito.json", "columns": {"prompt": "question", "response": "answer"}}}))
    (data / "tuito.json").write_text(json.dumps([{"question": "Say hello.", "answer": "Hello there!"}] * 4))
    lf = tmp_path / "lf.yaml"
    lf.write_text(LF_YAML.format(model=tiny_model_dir, output_dir="/etc"))

    imported = tuitune(eng, "import-lf", lf.name, "-o", "run.yaml", cwd=tmp_path)
    trained = tuitune(eng, "train", lf.name, cwd=tmp_path)

    assert imported.returncode == 0, imported.stderr
    assert "--run-dir /etc" not in imported.stdout + (tmp_path / "run.yaml").read_text()
    assert "warning: lf.yaml:8 output_dir: /etc is a system folder" in imported.stderr, imported.stderr
    assert imported.stdout.endswith("train it with: tuitune train run.yaml\n"), imported.stdout
    assert trained.returncode == 2 and one_line(trained).startswith("error: lf.yaml:8 output_dir: /etc is a system "
                                                                    "folder"), trained.stderr
    assert not os.path.exists("/etc/config.yaml")
