"""Structural checks: every malformed file of the corpus gets its own located message; formats are detected."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from engine.data.checks import check_paths, detect_file_format
from engine.data.formats import detect_format

BAD = Path(__file__).resolve().parent.parent / "fixtures" / "bad_data"

# file -> the first problem, as printed (path relative to the corpus), and its severity
CORPUS = {
    "syntax_error.jsonl": "syntax_error.jsonl:3:21 record 2: JSON syntax error: Expecting ',' delimiter",
    "trailing_comma.json": "trailing_comma.json:4:1: JSON syntax error: trailing comma before ']'",
    "unclosed_array.json": "unclosed_array.json:4:1: JSON syntax error: the array is not closed with ']'",
    "single_object.json": "single_object.json:1: the file holds a single JSON object; expected a JSON array of "
    "records or JSON Lines (one record per line) (the records seem to be under key 'data': keep just that array)",
    "invalid_utf8.jsonl": "invalid_utf8.jsonl:2:21 record 1: text is not valid UTF-8 (byte 0xe9); save the file "
    "as UTF-8",
    "empty.jsonl": "empty.jsonl: the file is empty: no records",
    "empty_array.json": "empty_array.json: the array is empty: no records",
    "not_an_object.jsonl": "not_an_object.jsonl:2 record 1: expected a JSON object (a record), got array",
    "unknown_format.jsonl": "unknown_format.jsonl:1 record 0: cannot tell the format from the record's keys "
    "(question, answer): expected instruction/output (alpaca), conversations of from/value (sharegpt) or "
    "messages of role/content (openai); or choose the format",
    "preference_pairs.jsonl": "preference_pairs.jsonl:1 record 0: this file holds preference pairs "
    "(trl_pairs), which stage sft cannot train: stage sft trains on instruction data: alpaca {instruction, "
    "input, output}, sharegpt {conversations: [{from, value}]} or openai {messages: [{role, content}]}. "
    "This layout is for stage dpo, orpo or rm",
    "raw_text.jsonl": "raw_text.jsonl:1 record 0: this file holds raw text (text), which stage sft cannot "
    "train: stage sft trains on instruction data: alpaca {instruction, input, output}, sharegpt "
    "{conversations: [{from, value}]} or openai {messages: [{role, content}]}. This layout is for stage pt",
    "alpaca_missing_output.jsonl": "alpaca_missing_output.jsonl:2 record 1 field output: missing field",
    "alpaca_empty_instruction.jsonl": "alpaca_empty_instruction.jsonl:3 record 2 field instruction: empty text",
    "alpaca_wrong_type.jsonl": "alpaca_wrong_type.jsonl:1 record 0 field output: expected a string, got number",
    "alpaca_bad_history.jsonl": "alpaca_bad_history.jsonl:1 record 0 field history[0]: expected an "
    "[instruction, answer] pair of two strings",
    "sharegpt_unknown_role.jsonl": "sharegpt_unknown_role.jsonl:2 record 1 field conversations[1].from: "
    "unknown role 'bot'; allowed: human, user, gpt, assistant, chatgpt, model, system",
    "sharegpt_missing_value.json": "sharegpt_missing_value.json:14 record 1 field conversations[1].value: "
    "missing field",
    "openai_unknown_role.jsonl": "openai_unknown_role.jsonl:14 record 13 field messages[2].role: unknown role "
    "'bot'; allowed: system, user, assistant",
    "openai_broken_order.jsonl": "openai_broken_order.jsonl:1 record 0 field messages[1].role: expected an "
    "assistant turn here (user and assistant must alternate, starting with user), got user",
    "openai_assistant_first.jsonl": "openai_assistant_first.jsonl:1 record 0 field messages[0].role: expected a "
    "user turn here (user and assistant must alternate, starting with user), got assistant",
    "openai_ends_with_user.jsonl": "openai_ends_with_user.jsonl:1 record 0 field messages[2].role: the "
    "conversation ends with a user turn; the last turn must be the assistant's answer, which is what is trained",
    "openai_late_system.jsonl": "openai_late_system.jsonl:1 record 0 field messages[1].role: a system turn may "
    "only come first",
    "openai_null_content.jsonl": "openai_null_content.jsonl:1 record 0 field messages[1].content: empty (null)",
    "openai_messages_not_a_list.jsonl": "openai_messages_not_a_list.jsonl:1 record 0 field messages: expected an "
    "array of turns, got string",
    "openai_empty_conversation.jsonl": "openai_empty_conversation.jsonl:2 record 1 field messages: empty "
    "conversation (no turns)",
    "openai_mixed_sharegpt_turns.jsonl": "openai_mixed_sharegpt_turns.jsonl:2 record 1 field messages[0].role: "
    "missing field (this turn has from/value: sharegpt format?)",
    "openai_wrong_role_type.jsonl": "openai_wrong_role_type.jsonl:1 record 0 field messages[0].role: expected a "
    "string, got number",
    "duplicates.jsonl": "duplicates.jsonl:3 record 2: duplicate of record 0 (line 1)",
    "not_a_dataset_folder": "not_a_dataset_folder: not a folder saved by datasets (no state.json or "
    "dataset_dict.json)",
}


def test_corpus_covers_every_file() -> None:
    assert sorted(CORPUS) == sorted(p.name for p in BAD.iterdir())
    assert len(set(CORPUS.values())) == len(CORPUS) >= 20


@pytest.mark.parametrize("name", sorted(CORPUS))
def test_each_bad_file_has_its_own_located_message(name: str) -> None:
    summary = check_paths([str(BAD / name)])
    assert summary.problems, f"{name}: no problem found"
    first = summary.problems[0]
    assert str(first) == f"{BAD}/{CORPUS[name]}"
    assert first.severity == ("warning" if name == "duplicates.jsonl" else "error")
    assert summary.errors == (0 if name == "duplicates.jsonl"
                              else len([p for p in summary.problems if p.severity == "error"]))


RECORDS = {
    "alpaca": {"instruction": "Hi", "input": "", "output": "Hello"},
    "sharegpt": {"conversations": [{"from": "human", "value": "Hi"}, {"from": "gpt", "value": "Hello"}]},
    "openai": {"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}]},
    "trl_pairs": {"prompt": "Hi", "chosen": "Hello", "rejected": "Bye"},
    "text": {"text": "Hello world"},
}


@pytest.mark.parametrize("fmt", list(RECORDS))
@pytest.mark.parametrize("layout", ["jsonl", "json", "bom-jsonl"])
def test_format_detected_in_files(tmp_path: Path, fmt: str, layout: str) -> None:
    record = RECORDS[fmt]
    path = tmp_path / f"data.{layout}"
    if layout == "json":
        path.write_text(json.dumps([record, record], indent=2))
    else:
        path.write_bytes((b"\xef\xbb\xbf" if layout.startswith("bom") else b"") + (json.dumps(record) + "\n").encode())
    found, problem = detect_file_format(str(path))
    assert found == fmt
    assert (problem is None) == (fmt in ("alpaca", "sharegpt", "openai"))
    if problem is None:
        summary = check_paths([str(path)])
        assert summary.errors == 0 and summary.usable == summary.records >= 1


def test_format_detected_in_datasets_folders(tmp_path: Path) -> None:
    from datasets import Dataset, DatasetDict

    Dataset.from_list([RECORDS["openai"]] * 3).save_to_disk(tmp_path / "flat")
    DatasetDict({"train": Dataset.from_list([RECORDS["alpaca"]]), "test": Dataset.from_list([RECORDS["alpaca"]])}
                ).save_to_disk(tmp_path / "dict")
    flat = check_paths([str(tmp_path / "flat")])
    assert flat.formats == {str(tmp_path / "flat"): "openai"} and flat.records == 3 and flat.warnings == 2
    assert str(flat.problems[0]) == f"{tmp_path}/flat record 1: duplicate of record 0"
    assert check_paths([str(tmp_path / "dict")]).formats == {str(tmp_path / "dict"): "alpaca"}


def test_format_override_checks_against_the_chosen_format(tmp_path: Path) -> None:
    path = tmp_path / "d.jsonl"
    path.write_text(json.dumps(RECORDS["alpaca"]) + "\n")
    summary = check_paths([str(path)], fmt="openai")
    assert [str(p) for p in summary.problems] == [f"{path}:1 record 0 field messages: missing field"]


def test_detect_format_of_record_shapes() -> None:
    assert detect_format({"messages": [{"from": "human", "value": "x"}]}) == "sharegpt"
    assert detect_format({"conversations": [{"role": "user", "content": "x"}]}) == "openai"
    assert detect_format({"output": "x"}) == "alpaca"
    assert detect_format(["not", "a", "record"]) is None


def test_missing_path_is_one_clear_problem(tmp_path: Path) -> None:
    summary = check_paths([str(tmp_path / "nope.jsonl")])
    assert [str(p) for p in summary.problems] == [f"{tmp_path}/nope.jsonl: no such file or folder"]


def test_summary_counts_turns(tmp_path: Path) -> None:
    path = tmp_path / "d.jsonl"
    two = {"messages": RECORDS["openai"]["messages"] * 2}
    path.write_text(json.dumps(RECORDS["openai"]) + "\n" + json.dumps(two) + "\n\n")
    summary = check_paths([str(path)])
    assert summary.records == 2 and summary.turn_stats() == {"min": 2, "mean": 3.0, "max": 4}


def test_app_side_data_modules_load_no_ml_stack() -> None:
    import subprocess
    import sys

    code = ("import sys, tuitune.screens.data, tuitune.cli.data_check, engine.data.report, engine.data.index; "
            "print(sorted(m for m in ('torch', 'transformers', 'datasets', 'peft', 'accelerate') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def first_problem(path: Path) -> str:
    summary = check_paths([str(path)])
    assert summary.errors >= 1, f"{path.name}: no error found"
    return str(next(p for p in summary.problems if p.severity == "error"))


def deep(depth: int) -> str:
    return "[" * depth + "]" * depth


def test_a_record_nested_200000_deep_is_a_located_problem_not_a_recursion_error(tmp_path: Path) -> None:
    path = tmp_path / "deep.jsonl"
    path.write_text(json.dumps(RECORDS["alpaca"]) + "\n" + '{"instruction": ' + deep(200_000) + ', "output": "x"}\n')
    assert first_problem(path) == f"{path}:2 record 1: JSON nested more than 100 levels deep; a record needs a few"


def test_nesting_inside_strings_does_not_count(tmp_path: Path) -> None:
    path = tmp_path / "brackets.jsonl"
    path.write_text(json.dumps({"instruction": "[{" * 500, "output": "]}" * 500}) + "\n")
    assert check_paths([str(path)]).errors == 0


def test_a_deep_record_in_a_json_array_is_a_located_problem(tmp_path: Path) -> None:
    path = tmp_path / "deep.json"
    path.write_text("[\n" + json.dumps(RECORDS["alpaca"]) + ",\n" + '{"instruction": ' + deep(200_000) + "}\n]\n")
    assert first_problem(path) == f"{path}:3 record 1: JSON nested more than 100 levels deep; a record needs a few"
    path.write_text("[\n" + json.dumps(RECORDS["alpaca"]) + ",\n" + '{"instruction": ' + deep(150) + "}\n]\n")
    assert first_problem(path) == f"{path}:3 record 1: JSON nested more than 100 levels deep; a record needs a few"


def test_a_deep_single_object_file_is_a_problem_not_a_crash(tmp_path: Path) -> None:
    path = tmp_path / "object.json"
    path.write_text('{"data":\n' + deep(200_000) + "\n}\n")
    assert first_problem(path).startswith(f"{path}:1")


def test_a_line_over_16_mib_is_refused_with_the_limit(tmp_path: Path) -> None:
    """A 100 MB line passed the check and then aborted training inside the datasets JSON reader."""
    path = tmp_path / "long.jsonl"
    record = json.dumps({"instruction": "x" * (17 << 20), "output": "y"})
    other = {"instruction": "Bye", "output": "Goodbye"}
    path.write_text(json.dumps(RECORDS["alpaca"]) + "\n" + record + "\n" + json.dumps(other) + "\n")
    summary = check_paths([str(path)])
    assert [str(p) for p in summary.problems] == [
        f"{path}:2 record 1: the record is 17.0 MiB long; one record (line) may be at most 16 MiB"]
    assert summary.records == 3 and summary.usable == 2


def test_a_record_over_the_limit_in_a_json_array_is_refused(tmp_path: Path, monkeypatch) -> None:
    from engine.data import source

    monkeypatch.setattr(source, "MAX_RECORD_BYTES", 1 << 20)
    path = tmp_path / "long.json"
    path.write_text(json.dumps([RECORDS["alpaca"], {"instruction": "x" * (2 << 20), "output": "y"}], indent=1))
    assert first_problem(path) == (f"{path}:7 record 1: the record is 2.0 MiB long; "
                                   "one record (line) may be at most 1 MiB")


@pytest.mark.parametrize("record, field", [
    ('{"instruction": "hi \\ud800 there", "output": "x"}', "instruction"),
    ('{"instruction": "hi", "output": "x\\udfff"}', "output"),
    ('{"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "\\udc80"}]}',
     "messages[1].content"),
    ('{"conversations": [{"from": "human", "value": "\\ud83d"}, {"from": "gpt", "value": "b"}]}',
     "conversations[0].value"),
    ('{"instruction": "a", "output": "b", "history": [["\\ud800", "c"]]}', "history[0][0]"),
], ids=["alpaca-instruction", "alpaca-output", "openai-content", "sharegpt-value", "alpaca-history"])
def test_a_lone_surrogate_is_a_located_problem_naming_the_field(tmp_path: Path, record: str, field: str) -> None:
    """It passed the check, then failed the chat template in training."""
    path = tmp_path / "surrogate.jsonl"
    path.write_text(record + "\n")
    problem = first_problem(path)
    assert problem.startswith(f"{path}:1 record 0 field {field}: contains a lone surrogate (\\u")
    assert "not valid Unicode text" in problem


def test_keys_with_a_lone_surrogate_print(tmp_path: Path) -> None:
    path = tmp_path / "keys.jsonl"
    path.write_text('{"\\ud800": 1}\n')
    first_problem(path).encode("utf-8")


@pytest.mark.parametrize(("name", "says"), [
    ("hf:qa", "'qa' is not a Hub repo id"),
    ("hf:org/q a", "'org/q a' is not a Hub repo id"),
    ("hf:org/qa:train[:10]", "'train[:10]' is not a split's name"),
])
def test_a_malformed_hub_dataset_name_is_one_problem_before_any_loading(name: str, says: str) -> None:
    summary = check_paths([name], "auto")
    assert [str(p).split(": ", 1)[0] for p in summary.problems] == [name]
    assert says in summary.problems[0].message and "hf:ORG/NAME or hf:ORG/NAME:SPLIT" in summary.problems[0].message
