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


def test_data_check_refuses_multimodal_records_given_by_path(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """LLaMA-Factory's mllm_demo layout (messages with <image> markers and an images column) given by path:
    every record with media is an error naming its field, never trained as text with the markers left in."""
    import json

    from engine.data.formats import to_example, to_messages
    from tuitune.__main__ import main

    turns = [{"role": "user", "content": "<image>Who are they?"}, {"role": "assistant", "content": "Players."}]
    records = [{"messages": turns, "images": ["mllm_demo_data/1.jpg"]},
               {"messages": turns, "videos": ["mllm_demo_data/1.mp4"]},
               {"messages": turns, "audios": ["mllm_demo_data/1.mp3"]},
               {"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}],
                "images": []}]
    path = tmp_path / "mllm_demo.json"
    path.write_text(json.dumps(records, indent=2))
    assert main(["data", "check", str(path)]) == 1
    out = capsys.readouterr().out
    assert "records: 4 (1 usable)" in out, out
    for n, field in enumerate(("images", "videos", "audios")):
        assert f"record {n} field {field}: " in out and "multimodal" in out
    pair = {"conversations": [{"from": "human", "value": "<image>Hi"}], "chosen": {"from": "gpt", "value": "a"},
            "rejected": {"from": "gpt", "value": "b"}, "images": ["x.jpg"]}
    assert to_example(pair, "sharegpt_pairs")[0] is None and to_messages(records[0], "openai")[0] is None


def test_data_check_says_how_a_txt_file_was_read(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """By path a .txt file is tuitune's reading (blank-line blocks); through dataset_info.json it is
    LLaMA-Factory's (one document per line); without --stage pt the error names the user's file."""
    import json

    from tuitune.__main__ import main

    (tmp_path / "dataset_info.json").write_text(json.dumps({"wiki": {"file_name": "wiki.txt",
                                                                     "columns": {"prompt": "text"}}}))
    (tmp_path / "wiki.txt").write_text("One line.\nAnother line.\n\nA third.\n")
    assert main(["data", "check", str(tmp_path / "wiki.txt")]) == 0
    out = capsys.readouterr().out
    assert "format text (one document per blank-line-separated block" in out and "records: 2" in out, out
    assert main(["data", "check", "wiki", "--dataset-dir", str(tmp_path), "--stage", "pt"]) == 0
    captured = capsys.readouterr()
    assert "one document per line" in captured.err and "records: 3" in captured.out, captured
    assert main(["data", "check", "wiki", "--dataset-dir", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert f"{tmp_path / 'wiki.txt'}: " in err and "--stage pt" in err and "missing field" not in err, err


MERGE_YAML = """\
### Note: DO NOT use quantized model or quantization_bit when merging lora adapters

### model
model_name_or_path: Qwen/Qwen3-4B-Instruct-2507
adapter_name_or_path: saves/qwen3-4b/lora/sft
template: qwen3_nothink
trust_remote_code: true

### export
export_dir: saves/qwen3_sft_merged
export_size: 5
export_device: cpu  # choices: [cpu, auto]
export_legacy_format: false
"""
INFER_YAML = """\
model_name_or_path: Qwen/Qwen3-4B-Instruct-2507
adapter_name_or_path: saves/qwen3-4b/lora/sft
template: qwen3_nothink
infer_backend: huggingface  # choices: [huggingface, vllm, sglang, ktransformers]
trust_remote_code: true
"""


def test_merge_and_inference_yamls_name_the_tuitune_command(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                            capsys: pytest.CaptureFixture) -> None:
    """LLaMA-Factory's examples/merge_lora and examples/inference YAMLs given to tuitune train (or import-lf):
    one refusal saying which tuitune command does that job, with its command line, not every key unknown."""
    from tuitune.__main__ import main

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "share"))
    (tmp_path / "merge.yaml").write_text(MERGE_YAML)
    (tmp_path / "infer.yaml").write_text(INFER_YAML)
    (tmp_path / "base.yaml").write_text(INFER_YAML.replace("adapter_name_or_path: saves/qwen3-4b/lora/sft\n", ""))

    assert main(["train", "merge.yaml"]) == 2
    err = capsys.readouterr().err
    assert "merge.yaml: a LLaMA-Factory merge config (llamafactory-cli export)" in err, err
    assert "tuitune export saves/qwen3-4b/lora/sft --merged --to saves/qwen3_sft_merged" in err
    assert "export_size" not in err and "unknown" not in err.lower() and "extra" not in err.lower()
    assert main(["train", "infer.yaml"]) == 2
    err = capsys.readouterr().err
    assert "infer.yaml: a LLaMA-Factory inference config (llamafactory-cli chat)" in err, err
    assert "tuitune chat saves/qwen3-4b/lora/sft" in err and "infer_backend" not in err
    assert main(["train", "base.yaml"]) == 2
    assert "names no adapter" in capsys.readouterr().err
    assert main(["import-lf", "merge.yaml", "-o", "run.yaml"]) == 1
    assert "tuitune export saves/qwen3-4b/lora/sft --merged" in capsys.readouterr().err
    assert not (tmp_path / "run.yaml").exists() and not (tmp_path / "saves").exists()
