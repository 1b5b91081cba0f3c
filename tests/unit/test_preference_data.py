"""Preference pairs, KTO answers and raw text: layouts detected, records converted, problems located,
and the encoder's prompt/answer split and cutoff (the same one the check, the Data screen and the trainers use)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from engine.config import ConfigError, parse_config
from engine.data.checks import check_paths, detect_file_format, layout_problem
from engine.data.formats import detect_format, to_example
from engine.data.problems import DataError

Q, ZH = [{"role": "user", "content": "Hi"}], [{"role": "user", "content": "你好"}]


def write(path: Path, records: list[Any]) -> str:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    return str(path)


@pytest.mark.parametrize(("record", "layout", "prompt", "chosen", "rejected"), [
    ({"instruction": "Translate", "input": "cat", "chosen": "猫", "rejected": "狗"}, "alpaca_pairs",
     [{"role": "user", "content": "Translate\ncat"}], "猫", "狗"),
    ({"conversations": [{"from": "human", "value": "你好"}], "chosen": {"from": "gpt", "value": "你好！"},
      "rejected": {"from": "gpt", "value": "走开。"}}, "sharegpt_pairs", ZH, "你好！", "走开。"),
    ({"prompt": "Hi", "chosen": "Hello!", "rejected": "Go away."}, "trl_pairs", Q, "Hello!", "Go away."),
    ({"prompt": Q, "chosen": [{"role": "assistant", "content": "Hello!"}],
      "rejected": [{"role": "assistant", "content": "Go away."}]}, "trl_pairs", Q, "Hello!", "Go away."),
    ({"chosen": [*Q, {"role": "assistant", "content": "Hello!"}],  # TRL's implicit prompt
      "rejected": [*Q, {"role": "assistant", "content": "Go away."}]}, "trl_pairs", Q, "Hello!", "Go away."),
])
def test_every_pair_layout_becomes_a_prompt_and_two_answers(record: dict, layout: str, prompt: list, chosen: str,
                                                            rejected: str) -> None:
    assert detect_format(record) == layout
    example, problems = to_example(record, layout)
    assert problems == []
    assert (example.kind, example.prompt, example.chosen, example.rejected) == ("pairs", prompt, chosen, rejected)
    assert example.conversation("rejected") == [*prompt, {"role": "assistant", "content": rejected}]


@pytest.mark.parametrize(("record", "layout", "label"), [
    ({"prompt": "Hi", "completion": "Hello!", "label": True}, "trl_kto", True),
    ({"messages": [*ZH, {"role": "assistant", "content": "走开。"}], "kto_tag": False}, "sharegpt_kto", False),
    ({"instruction": "Hi", "output": "Hello!", "kto_tag": True}, "alpaca_kto", True),
])
def test_kto_layouts_become_one_labelled_answer(record: dict, layout: str, label: bool) -> None:
    assert detect_format(record) == layout
    example, problems = to_example(record, layout)
    assert problems == [] and example.kind == "kto" and example.label is label


@pytest.mark.parametrize(("record", "problems"), [
    ({"prompt": "Hi", "chosen": " ", "rejected": "No."}, [("chosen", "empty text")]),
    ({"prompt": "Hi", "chosen": "Yes."}, [("rejected", "missing field")]),
    ({"prompt": "Hi", "chosen": "Same.", "rejected": "Same."},
     [("rejected", "identical to chosen: the pair teaches no preference; drop it or fix one side")]),
    ({"prompt": Q, "chosen": [*Q, {"role": "assistant", "content": "A"}],
      "rejected": [*ZH, {"role": "assistant", "content": "B"}]},
     [("rejected", "the prompt differs between the sides: the turns before the rejected answer are not those "
                   "before the chosen one")]),
    ({"prompt": "Hi", "chosen": [{"role": "user", "content": "A"}], "rejected": "B"},
     [("chosen[0].role", "the chosen answer must be an assistant turn, got user")]),
    ({"conversations": [{"from": "human", "value": "Hi"}, {"from": "gpt", "value": "Hello"}],
      "chosen": {"from": "gpt", "value": "A"}, "rejected": {"from": "gpt", "value": "B"}},
     [("conversations[1].from", "the prompt must end with a user turn; the answer that follows it is what is "
                                "compared")]),
])
def test_bad_pairs_name_the_field(record: dict, problems: list) -> None:
    example, found = to_example(record, detect_format(record) or "trl_pairs")  # a file's first record decides
    assert example is None and found == problems


def test_kto_label_must_be_a_boolean() -> None:
    example, found = to_example({"prompt": "Hi", "completion": "Hello", "label": "yes"}, "trl_kto")
    assert example is None and found == [("label", "expected true (desirable) or false (undesirable), got string")]


def test_problems_are_located_by_file_line_record_and_field(tmp_path: Path) -> None:
    path = write(tmp_path / "pairs.jsonl", [
        {"prompt": "Hi", "chosen": "Hello!", "rejected": "Go away."},
        {"prompt": "你好", "chosen": "你好！", "rejected": "你好！"},
    ])
    summary = check_paths([path], stage="dpo")
    assert summary.formats == {path: "trl_pairs"} and summary.usable == 1
    assert [str(p) for p in summary.problems] == [
        f"{path}:2 record 1 field rejected: identical to chosen: the pair teaches no preference; "
        "drop it or fix one side"]


def test_a_stage_refuses_another_stage_s_data_naming_what_it_accepts(tmp_path: Path) -> None:
    pairs = write(tmp_path / "pairs.jsonl", [{"prompt": "Hi", "chosen": "Hello!", "rejected": "Go away."}])
    assert layout_problem(pairs, stage="dpo") is None and layout_problem(pairs, stage="kto") is None
    problem = layout_problem(pairs, stage="pt")
    assert problem.message.startswith("this file holds preference pairs (trl_pairs), which stage pt cannot train: "
                                      "stage pt trains on raw text")
    assert problem.message.endswith("This layout is for stage dpo, orpo or rm")
    kto = write(tmp_path / "kto.jsonl", [{"prompt": "Hi", "completion": "Hello!", "label": True}])
    assert "stage dpo trains on preference pairs: alpaca_pairs {instruction, input, chosen, rejected}" in \
        layout_problem(kto, stage="dpo").message
    # Without a stage (tuitune data check) every layout is known.
    assert detect_file_format(kto, stage=None) == ("trl_kto", None)


def test_txt_files_are_one_document_per_blank_line_separated_block(tmp_path: Path) -> None:
    path = tmp_path / "corpus.txt"
    path.write_text("First line.\nSame document.\n\n  \n第二篇文章。\n\n\nThird.\n", encoding="utf-8")
    records = []
    summary = check_paths([str(path)], stage="pt", on_record=records.append)
    assert summary.formats == {str(path): "text"} and summary.errors == 0
    assert [(r.line, r.example.text) for r in records] == [
        (1, "First line.\nSame document."), (5, "第二篇文章。"), (8, "Third.")]


def test_kto_with_one_kind_of_answer_is_refused_before_the_tokenizer_is_needed(tmp_path: Path) -> None:
    from engine.config import DataSection
    from engine.recipes.datasets import build_datasets

    path = write(tmp_path / "kto.jsonl", [{"prompt": "Hi", "completion": "Hello!", "label": False}] * 2)
    with pytest.raises(DataError) as caught:
        build_datasets(DataSection(train=[path]), tokenizer=None, seed=0, stage="kto")
    assert str(caught.value) == (f"{path}: every usable record is undesirable (2): kto needs desirable "
                                 "(label/kto_tag true) examples too")


def test_kto_needs_two_answers_a_batch_and_label_smoothing_needs_robust() -> None:
    with pytest.raises(ConfigError, match="stage kto needs train.batch_size of at least 2"):
        parse_config("stage: kto\ntrain: {batch_size: 1}\n")
    with pytest.raises(ConfigError, match="label_smoothing is used only by loss_type robust"):
        parse_config("stage: dpo\npreference: {label_smoothing: 0.1}\n")
    with pytest.raises(ConfigError,
                       match="stage: must be one of 'sft', 'pt', 'rm', 'dpo', 'kto', 'orpo', 'grpo' or 'rloo'"):
        parse_config("stage: ppo\n", "p.yaml")


def test_the_encoder_splits_prompt_and_answers_and_cuts_at_the_cutoff(demo_model_dir: Path) -> None:
    from engine.data.encode import encode_completions, encode_pairs, encode_texts
    from engine.models.tokenizer import load_tokenizer

    tokenizer = load_tokenizer(str(demo_model_dir))
    chosen = [*ZH, {"role": "assistant", "content": "你好！很高兴见到你。"}]
    rejected = [*ZH, {"role": "assistant", "content": "Go away."}]
    [pair] = encode_pairs([(chosen, rejected)], tokenizer, 1024)
    assert tokenizer.decode(pair.prompt_ids).endswith("<|im_start|>user\n你好<|im_end|>\n<|im_start|>assistant\n")
    assert tokenizer.decode(pair.chosen_ids) == "你好！很高兴见到你。<|im_end|>"
    assert tokenizer.decode(pair.rejected_ids) == "Go away.<|im_end|>"
    # Cut to leave two answer tokens a side; a cutoff inside the prompt leaves none (the pair is left out).
    [cut] = encode_pairs([(chosen, rejected)], tokenizer, len(pair.prompt_ids) + 2)
    assert cut.truncated and len(cut.chosen_ids) == len(cut.rejected_ids) == 2 and cut.prompt_ids == pair.prompt_ids
    [gone] = encode_pairs([(chosen, rejected)], tokenizer, len(pair.prompt_ids))
    assert gone.trained_tokens == 0
    # Only the last assistant turn is the answer; earlier ones belong to the prompt.
    history = [*Q, {"role": "assistant", "content": "Hello!"}, *ZH, {"role": "assistant", "content": "你好！"}]
    [answer] = encode_completions([history], tokenizer, 1024)
    assert (tokenizer.decode(answer.completion_ids) == "你好！<|im_end|>"
            and "Hello!" in tokenizer.decode(answer.prompt_ids))
    # Raw text: an end-of-sequence token after each document, cut into pieces, nothing dropped.
    [pieces] = encode_texts(["The Eiffel Tower stands in Paris. 长城很长。"], tokenizer, 8)
    ids = [t for p in pieces for t in p.input_ids]
    assert ids[-1] == tokenizer.eos_token_id and all(len(p.input_ids) <= 8 for p in pieces)
    assert tokenizer.decode(ids[:-1]) == "The Eiffel Tower stands in Paris. 长城很长。"
