"""tuitune train refuses, before a run folder exists, what estimate and data check already know."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from engine.compose import compose_config
from tuitune.cli.train import Refused, preflight

REPO = Path(__file__).resolve().parents[2]


def train(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO), "TUITUNE_RUNS_DIR": str(tmp_path / "runs")}
    return subprocess.run([sys.executable, "-m", "tuitune", "train", *args, "--detach"], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)


def test_a_hopeless_run_is_refused_unless_forced(tmp_path: Path) -> None:
    """batch_size 1e11 reached 12 GB before step 1; estimate called it hopeless."""
    config = tmp_path / "huge.yaml"
    config.write_text("train:\n  batch_size: 100000000000\n")
    done = train(tmp_path, str(config))
    assert done.returncode == 2 and "will not fit" in done.stderr and "--force" in done.stderr, done.stderr
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())
    preflight(compose_config(config_file=config), force=True)  # forced: no refusal


@pytest.mark.parametrize("flag, value, says", [
    ("--data", "missing.jsonl", "no such file or folder"),
    ("--model", "./no-such-model", "no-such-model"),
])
def test_missing_paths_are_found_before_a_run_folder_exists(tmp_path: Path, flag: str, value: str, says: str) -> None:
    done = train(tmp_path, flag, value)
    assert done.returncode == 2 and says in done.stderr, done.stderr
    assert done.stdout == ""  # --detach printed no run folder: there is none
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def test_data_of_a_layout_training_cannot_use_is_refused_naming_the_file(tmp_path: Path) -> None:
    data = tmp_path / "pairs.jsonl"
    data.write_text('{"prompt": "a", "chosen": "b", "rejected": "c"}\n')
    with pytest.raises(Refused, match=f"data: {data}:1 record 0"):
        preflight(compose_config(flags={"--data": ("data.train", [str(data)])}))


def test_remote_code_is_said_loudly_and_only_a_run_config_can_ask_for_it(tmp_path: Path) -> None:
    config = tmp_path / "remote.yaml"
    config.write_text("model:\n  name_or_path: ./no-such-model\n  trust_remote_code: true\n")
    done = train(tmp_path, str(config))
    assert "warning: this run executes Python code shipped with" in done.stderr, done.stderr
    preset = tmp_path / "sneaky.yaml"
    preset.write_text("model:\n  trust_remote_code: true\n")
    done = train(tmp_path, "--preset", str(preset))
    assert done.returncode == 2 and "trust_remote_code" in done.stderr and "warning" not in done.stderr


def test_a_data_file_without_records_is_refused_before_a_run_folder_exists(tmp_path: Path) -> None:
    """An empty file used to reach the trainer; it is said as data check says it."""
    (tmp_path / "empty.jsonl").write_text("\n")
    done = train(tmp_path, "--data", "empty.jsonl")
    assert done.returncode == 2 and "empty.jsonl: the file is empty: no records" in done.stderr, done.stderr
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


PARTLY_BAD = '{"instruction": "q", "output": "a"}\n{"instruction": 3, "output": "a"}\n{broken\n'
KTO_LABELS = "".join(f'{{"prompt": "q", "completion": "a", "label": {label}}}\n'
                     for label in ("true", "false", '"yes"'))


@pytest.mark.parametrize("name, content, says", [
    ("partly.jsonl", PARTLY_BAD, ["2 problems training refuses", "partly.jsonl:2 record 1 field instruction",
                                  "partly.jsonl:3:2 record 2: JSON syntax error"]),
    ("random.jsonl", bytes(range(128, 256)) * 8, ["random.jsonl:1:1 record 0: text is not valid UTF-8"]),
    ("deep.json", "[" * 200_000 + "]" * 200_000, ["deep.json:1 record 0: JSON nested more than 100 levels"]),
    ("long.jsonl", '{"instruction": "' + "x" * (17 << 20) + '", "output": "a"}\n',
     ["long.jsonl:1 record 0: the record is 17.0 MiB long"]),
    ("kto.jsonl", KTO_LABELS, ["kto.jsonl:3 record 2 field label: expected true (desirable) or false"]),
], ids=["partly-bad", "random-bytes", "deep-json", "17-MiB-line", "kto-labels"])
def test_data_training_would_refuse_is_refused_as_data_check_locates_it(
        tmp_path: Path, name: str, content: str | bytes, says: list[str]) -> None:
    """Partly bad data made a run folder and failed 25-30 s later at loading_data; data holding no
    usable record was refused as only "no records"."""
    data = tmp_path / name
    data.write_bytes(content if isinstance(content, bytes) else content.encode())
    done = train(tmp_path, *(["--stage", "kto"] if name == "kto.jsonl" else []), "--data", name)
    assert done.returncode == 2 and all(line in done.stderr for line in says), done.stderr
    assert "no records" not in done.stderr
    assert done.stdout == "" and (not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir()))


def test_eval_checks_its_held_out_data_record_by_record_before_the_job(tmp_path: Path) -> None:
    """Only the first records' layout was checked: partly bad held-out data started the job, which loaded
    the model and then failed on the records data check already knew."""
    run_dir = tmp_path / "runs" / "tuned"
    (run_dir / "adapter").mkdir(parents=True)
    (run_dir / "adapter" / "adapter_config.json").write_text("{}")
    (run_dir / "config.yaml").write_text("stage: sft\n")
    (tmp_path / "held_out.jsonl").write_text(PARTLY_BAD)
    env = {**os.environ, "PYTHONPATH": str(REPO), "TUITUNE_RUNS_DIR": str(tmp_path / "runs")}
    done = subprocess.run([sys.executable, "-m", "tuitune", "eval", "tuned", "--data", "held_out.jsonl", "--detach"],
                          env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert done.returncode == 2, done.stderr
    assert "error: data: 2 problems evaluation refuses" in done.stderr and "held_out.jsonl:2 record 1" in done.stderr
    assert done.stdout == "" and not (run_dir / "evals").exists()


def test_the_parameter_line_counts_the_base_as_the_presets_screen_does() -> None:
    """Parameter totals disagreed: 134,515,008 on the Presets screen, 139,399,488 (base + adapter) in train."""
    from tuitune.cli.train import params_line

    model = {"params_trainable": 4_884_480, "params_total": 139_399_488}
    assert params_line(model, "lora") == "4,884,480 parameters trained (lora) on a base of 134,515,008"
    assert params_line({"params_trainable": 10, "params_total": 10}, "full") == \
        "10 parameters trained (full) on a base of 10"


def test_a_rule_across_fields_names_the_flags_it_speaks_of() -> None:
    from engine.config import ConfigError

    with pytest.raises(ConfigError) as refused:
        compose_config(None, None, {"--nnodes": ("distributed.nnodes", 2)})
    assert refused.value.problems == ["--nnodes: distributed.nnodes above 1 needs distributed.master "
                                      "(ADDR:PORT of node 0)"]


def test_an_rl_run_nothing_rewards_or_whose_reward_is_missing_is_refused_before_a_run_folder_exists(
        tmp_path: Path) -> None:
    """The engine refused these only after loading the model; the review already knew."""
    (tmp_path / "p.jsonl").write_text('{"prompt": "What is 2 + 2?"}\n')
    done = train(tmp_path, "--stage", "grpo", "--data", "p.jsonl")
    assert done.returncode == 2 and "nothing rewards the answers" in done.stderr, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and done.stdout == ""
    config = tmp_path / "code.yaml"
    config.write_text(f"stage: grpo\ndata: {{train: [{tmp_path / 'p.jsonl'}]}}\nrl:\n  allow_code: true\n"
                      f"  rewards:\n    - {{kind: python, function: {tmp_path / 'gone.py'}:f}}\n")
    done = train(tmp_path, str(config))
    assert done.returncode == 2, done.stderr
    assert "warning: this run executes your Python code as a reward" in done.stderr
    assert f"rl.rewards[0] python: {tmp_path / 'gone.py'} does not exist" in done.stderr
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())
