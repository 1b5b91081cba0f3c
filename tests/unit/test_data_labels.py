"""Exact label masks on the real SmolLM2 tokenizer: only assistant turns (and their end-of-turn) train."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from engine.config import DataSection
from engine.data.encode import IGNORE_INDEX, encode_conversation
from engine.data.problems import DataError
from engine.recipes.datasets import PadCollator, build_datasets, pack_records

EOT = "<|im_end|>"


@pytest.fixture(scope="module")
def tokenizer(demo_model_dir: Path):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(demo_model_dir)


def trained_runs(tokenizer, ids: list[int], labels: list[int]) -> list[str]:
    """The decoded runs of consecutive trained tokens, in order."""
    runs: list[list[int]] = []
    previous = IGNORE_INDEX
    for token, label in zip(ids, labels):
        if label != IGNORE_INDEX:
            assert label == token
            if previous == IGNORE_INDEX:
                runs.append([])
            runs[-1].append(token)
        previous = label
    return [tokenizer.decode(run) for run in runs]


def write_jsonl(path: Path, records: list[dict]) -> str:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return str(path)


FORMATS = {
    "alpaca": (
        {"instruction": "Name a colour", "input": "not red", "output": "Blue."},
        ["Blue."],
    ),
    "alpaca_history": (
        {"instruction": "And now?", "output": "Still here.", "system": "Be brief.",
         "history": [["Are you there?", "Yes, I am."]]},
        ["Yes, I am.", "Still here."],
    ),
    "sharegpt": (
        {"conversations": [{"from": "system", "value": "Be kind."}, {"from": "human", "value": "Hi"},
                           {"from": "gpt", "value": "Hello, friend!"}]},
        ["Hello, friend!"],
    ),
    "openai": (
        {"messages": [{"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "4"}]},
        ["4"],
    ),
    "multi_turn": (
        {"messages": [{"role": "user", "content": "First question"},
                      {"role": "assistant", "content": "First answer."},
                      {"role": "user", "content": "Second question"},
                      {"role": "assistant", "content": "Second answer, longer."}]},
        ["First answer.", "Second answer, longer."],
    ),
}


@pytest.mark.parametrize("name", list(FORMATS))
def test_only_assistant_turns_are_trained(tokenizer, tmp_path: Path, name: str) -> None:
    record, answers = FORMATS[name]
    path = write_jsonl(tmp_path / f"{name}.jsonl", [record])
    built = build_datasets(DataSection(train=[path], cutoff_len=512), tokenizer, seed=0)
    row = built.train[0]
    assert trained_runs(tokenizer, row["input_ids"], row["labels"]) == [a + EOT for a in answers]
    text = tokenizer.decode(row["input_ids"])
    assert all(a in text for a in answers) and text.startswith("<|im_start|>system")
    assert built.stats["format"] == name.split("_")[0].replace("multi", "openai")


def test_system_prompt_option_is_added_and_masked(tokenizer, tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "d.jsonl", [FORMATS["openai"][0]])
    built = build_datasets(DataSection(train=[path], system_prompt="You are Zork."), tokenizer, seed=0)
    row = built.train[0]
    assert "You are Zork." in tokenizer.decode(row["input_ids"])
    assert trained_runs(tokenizer, row["input_ids"], row["labels"]) == ["4" + EOT]


def test_truncation_is_counted_and_empty_records_reported(tokenizer, tmp_path: Path) -> None:
    long_prompt = "word " * 200
    records = [
        {"instruction": "Short", "output": "Fine."},
        {"instruction": "Q", "output": "answer " * 100},
        {"instruction": long_prompt, "output": "Lost."},
    ]
    path = write_jsonl(tmp_path / "d.jsonl", records)
    built = build_datasets(DataSection(train=[path], cutoff_len=64), tokenizer, seed=0)
    assert built.stats["truncated"] == 2 and built.stats["dropped_empty"] == 1
    assert built.stats["train_records"] == 2
    assert "2 records truncated at cutoff_len 64" in built.warnings
    assert any("d.jsonl:3 record 2" in w and "no trained token left" in w for w in built.warnings)
    assert max(len(ids) for ids in built.train["input_ids"]) == 64


def test_encode_conversation_cuts_labels_with_ids(tokenizer) -> None:
    messages = FORMATS["multi_turn"][0]["messages"]
    full = encode_conversation(messages, tokenizer, 10_000)
    cut = encode_conversation(messages, tokenizer, full.full_length - 3)
    assert not full.truncated and cut.truncated and cut.full_length == full.full_length
    assert cut.input_ids == full.input_ids[:-3] and cut.labels == full.labels[:-3]


def test_errors_refuse_with_located_messages(tokenizer, tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "data.jsonl", [FORMATS["openai"][0]] * 13 + [
        {"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"},
                      {"role": "bot", "content": "c"}]}])
    with pytest.raises(DataError) as caught:
        build_datasets(DataSection(train=[path]), tokenizer, seed=0)
    assert [str(p) for p in caught.value.problems] == [
        f"{path}:14 record 13 field messages[2].role: unknown role 'bot'; allowed: system, user, assistant"]


def test_validation_split_and_packing(tokenizer, tmp_path: Path) -> None:
    records = [{"instruction": f"Question {i}", "output": f"Answer {i}."} for i in range(10)]
    path = write_jsonl(tmp_path / "d.jsonl", records)
    built = build_datasets(DataSection(train=[path], val_size=0.2, packing=True, cutoff_len=128), tokenizer, seed=1)
    assert built.stats["train_records"] == 8 and built.stats["eval_records"] == 2
    assert built.stats["train_sequences"] < 8 and all(len(x) <= 128 for x in built.train["input_ids"])
    answers = [r for row in built.train for r in trained_runs(tokenizer, row["input_ids"], row["labels"])]
    assert len(answers) == 8 and all(a.startswith("Answer ") and a.endswith("." + EOT) for a in answers)
    with pytest.raises(DataError, match="leaving none to train on"):
        build_datasets(DataSection(train=[path], val_size=10), tokenizer, seed=1)


def test_pack_never_splits_a_record(tokenizer) -> None:
    encoded = [encode_conversation(FORMATS["openai"][0]["messages"], tokenizer, 100) for _ in range(5)]
    size = len(encoded[0].input_ids)
    packed = pack_records(encoded, size * 2 + 1)
    assert [len(ids) for ids in packed["input_ids"]] == [size * 2, size * 2, size]
    assert packed["position_ids"][0] == [*range(size), *range(size)]  # each record starts again at 0


def test_collator_pads_ids_and_labels() -> None:
    batch = PadCollator(pad_token_id=7)([{"input_ids": [1, 2, 3], "labels": [-100, 2, 3]},
                                         {"input_ids": [4], "labels": [4]}])
    assert batch["input_ids"].tolist() == [[1, 2, 3], [4, 7, 7]]
    assert batch["labels"].tolist() == [[-100, 2, 3], [4, -100, -100]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1], [1, 0, 0]]


def test_builtin_names_resolve_to_sample_data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from engine.data import source as data_source
    from engine.data.problems import SourceError
    from engine.data.source import resolve_path

    monkeypatch.setattr(data_source, "SAMPLE_DATA_DIR", tmp_path)
    (tmp_path / "identity.jsonl").write_text("{}\n")
    assert resolve_path("builtin:identity") == tmp_path / "identity.jsonl"
    with pytest.raises(SourceError, match="unknown built-in data set 'nope'; available: identity"):
        resolve_path("builtin:nope")


def test_datasets_folder_and_mixed_json_load_through_datasets(tokenizer, tmp_path: Path) -> None:
    from datasets import Dataset

    Dataset.from_list([FORMATS["sharegpt"][0]] * 2).save_to_disk(tmp_path / "folder")
    mixed = write_jsonl(tmp_path / "mixed.jsonl", [FORMATS["openai"][0] | {"id": 1},
                                                   FORMATS["multi_turn"][0] | {"id": {"nested": True}}])
    built = build_datasets(DataSection(train=[str(tmp_path / "folder"), mixed]), tokenizer, seed=0)
    assert built.stats["train_records"] == 4 and built.stats["format"] == "openai+sharegpt"
    runs = [trained_runs(tokenizer, row["input_ids"], row["labels"]) for row in built.train]
    assert runs == [["Hello, friend!" + EOT]] * 2 + [["4" + EOT],
                                                     ["First answer." + EOT, "Second answer, longer." + EOT]]
    assert built.warnings == [f"1 duplicate records (kept), first: {tmp_path}/folder record 1: duplicate of record 0"]


def test_checked_records_train_when_datasets_cannot_load(tokenizer, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    import datasets

    def refuse(*args, **kwargs):
        raise ValueError("cannot unify the schema")

    monkeypatch.setattr(datasets, "load_dataset", refuse)
    path = write_jsonl(tmp_path / "d.jsonl", [FORMATS["openai"][0]])
    built = build_datasets(DataSection(train=[path]), tokenizer, seed=0)
    assert trained_runs(tokenizer, built.train[0]["input_ids"], built.train[0]["labels"]) == ["4" + EOT]
    assert built.warnings == [f"{path}: datasets could not load it (ValueError: cannot unify the schema); "
                              "its checked records are used"]


def test_chat_template_failure_is_located(tokenizer, tmp_path: Path) -> None:
    import copy

    strict = copy.copy(tokenizer)
    strict.chat_template = ("{% for m in messages %}{% if 'forbidden' in m['content'] %}"
                            "{{ raise_exception('no forbidden words') }}{% endif %}"
                            "{{ m['role'] }}: {{ m['content'] }}{{ eos_token }}\n{% endfor %}")
    path = write_jsonl(tmp_path / "d.jsonl", [FORMATS["alpaca"][0], {"instruction": "a forbidden word", "output": "x"}])
    with pytest.raises(DataError) as caught:
        build_datasets(DataSection(train=[path]), strict, seed=0)
    assert [str(p) for p in caught.value.problems] == [
        f"{path}:2 record 1: the chat template failed: no forbidden words"]


@pytest.mark.parametrize("line, message", [
    ('{"instruction": "Hi", "output": "x\\ud800"}', "1 record 0 field output: contains a lone surrogate (\\ud800"),
    ('{"instruction": ' + "[" * 200_000 + "]" * 200_000 + "}", "1 record 0: JSON nested more than 100 levels deep"),
], ids=["lone-surrogate", "200000-deep"])
def test_training_refuses_what_the_check_refuses_with_the_same_message(tokenizer, tmp_path: Path, line: str,
                                                                        message: str) -> None:
    from engine.data.checks import check_paths

    path = tmp_path / "bad.jsonl"
    path.write_text(line + "\n", encoding="utf-8")
    with pytest.raises(DataError) as caught:
        build_datasets(DataSection(train=[str(path)]), tokenizer, seed=0)
    assert str(caught.value).startswith(f"{path}:{message}")
    assert [str(p) for p in caught.value.problems] == [str(p) for p in check_paths([str(path)]).problems]
