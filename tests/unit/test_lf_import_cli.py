"""``tuitune import-lf LF.yaml -o run.yaml`` (tuitune.cli.import_lf)."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from engine.config import load_config
from tests.unit.test_lf_config import SFT_LORA, dataset_dir, model_folder
from tuitune.cli.import_lf import run


@pytest.fixture
def lf_yaml(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """LLaMA-Factory's example SFT LoRA YAML in a folder laid out as LLaMA-Factory runs from (the cwd)."""
    model_folder(tmp_path)
    dataset_dir(tmp_path)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))  # max_samples copies go to the cache
    path = tmp_path / "llama3_lora_sft.yaml"
    path.write_text(SFT_LORA)
    return path


def args(config: Path, output: Path, force: bool = False) -> argparse.Namespace:
    return argparse.Namespace(config=str(config), output=str(output), force=force, dataset_dir=None)


def test_writes_a_config_that_loads_with_a_comment_per_key(lf_yaml: Path, capsys: pytest.CaptureFixture) -> None:
    output = lf_yaml.parent / "run.yaml"
    assert run(args(lf_yaml, output)) == 0

    config = load_config(output)
    assert (config.adapter.r, config.train.batch_size, config.train.gradient_checkpointing) == (8, 1, True)
    text = output.read_text()
    assert "  grad_accum: 8  # gradient_accumulation_steps (line 32)" in text
    out = capsys.readouterr().out
    assert f"wrote {output}" in out and f"tuitune train {output} --run-dir {lf_yaml.parent / 'saves'}" in out
    assert not list(lf_yaml.parent.glob(".run.yaml.*"))  # no temporary file left by the atomic write


def test_never_replaces_a_file_unless_forced(lf_yaml: Path, capsys: pytest.CaptureFixture) -> None:
    output = lf_yaml.parent / "run.yaml"
    output.write_text("mine\n")
    assert run(args(lf_yaml, output)) == 1
    assert output.read_text() == "mine\n"
    assert "exists; pass --force" in capsys.readouterr().err
    assert run(args(lf_yaml, output, force=True)) == 0
    assert load_config(output).adapter.r == 8
    assert run(args(lf_yaml, lf_yaml, force=True)) == 1  # never over the file being imported
    assert lf_yaml.read_text() == SFT_LORA


def test_a_refused_key_writes_nothing_and_says_where(lf_yaml: Path, capsys: pytest.CaptureFixture) -> None:
    lf_yaml.write_text(SFT_LORA + "deepspeed: examples/deepspeed/ds_z3_config.json\n")
    output = lf_yaml.parent / "run.yaml"
    assert run(args(lf_yaml, output)) == 1
    err = capsys.readouterr().err
    assert f"{lf_yaml}:{len(SFT_LORA.splitlines()) + 1} deepspeed: DeepSpeed is not supported" in err
    assert not output.exists()


def test_a_file_that_is_not_a_llamafactory_config(lf_yaml: Path, capsys: pytest.CaptureFixture) -> None:
    lf_yaml.write_text("train:\n  max_steps: 3\n")
    assert run(args(lf_yaml, lf_yaml.parent / "run.yaml")) == 1
    assert "not a LLaMA-Factory training config" in capsys.readouterr().err


def test_data_check_reads_datasets_of_a_dataset_info_json(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """tuitune data check NAME --dataset-dir DIR checks the dataset through its column mapping; a ModelScope
    entry says why it cannot be used; an unknown --format is a one-line refusal, not a traceback. (Entries on the
    Hugging Face Hub are read: tests/engine/test_hub_data.py.)"""
    import json

    from tuitune.__main__ import main

    (tmp_path / "dataset_info.json").write_text(json.dumps({
        "tuito": {"file_name": "t.json", "columns": {"prompt": "q", "response": "a"}},
        "hub": {"ms_hub_url": "org/set"}}))
    (tmp_path / "t.json").write_text(json.dumps([{"q": "Who are you?", "a": "Tuito."}, {"q": "Hi", "a": ""}]))
    assert main(["data", "check", "tuito", "--dataset-dir", str(tmp_path)]) == 1
    out = capsys.readouterr()
    assert "format alpaca" in out.out and ":2 record 1 field output: empty text" in out.out
    assert f"{tmp_path / 't.json'} read through its column mapping" in out.err
    assert main(["data", "check", "hub", "--dataset-dir", str(tmp_path)]) == 1
    assert "loads from ModelScope (org/set)" in capsys.readouterr().err
    assert main(["data", "check", str(tmp_path / "t.json"), "--format", "bogus"]) == 2
    assert "is not a layout tuitune knows" in capsys.readouterr().err
