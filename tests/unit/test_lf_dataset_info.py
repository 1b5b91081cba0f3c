"""LLaMA-Factory's dataset_info.json: names to files our data layer trains on (engine.lf.dataset_info)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from engine.config import ConfigError
from engine.data.checks import check_file
from engine.data.source import iter_records
from engine.lf.dataset_info import entry, iter_mapped, list_datasets, resolve


def write_info(folder: Path, info: dict) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "dataset_info.json").write_text(json.dumps(info, indent=2))
    return folder


def write_jsonl(path: Path, records: list) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def snapshot(folder: Path) -> dict[str, tuple[int, bytes]]:
    """Every file under ``folder`` with its modification time and bytes."""
    return {str(p.relative_to(folder)): (p.stat().st_mtime_ns, p.read_bytes())
            for p in folder.rglob("*") if p.is_file()}


def usable(path: str, fmt: str, stage: str = "sft") -> list:
    """The checked records of ``path`` as training reads them; fails on any problem."""
    items = list(check_file(path, fmt, stage))
    problems = [str(p) for i in items for p in getattr(i, "problems", [i]) if getattr(p, "severity", "") == "error"]
    assert not problems, problems
    return [i for i in items if getattr(i, "usable", False)]


def test_hub_script_and_cloud_entries_are_listed_with_why(tmp_path: Path) -> None:
    folder = write_info(tmp_path / "data", {
        "alpaca_en": {"hf_hub_url": "llamafactory/alpaca_en", "ms_hub_url": "llamafactory/alpaca_en"},
        "ms_only": {"ms_hub_url": "llamafactory/alpaca_en"},
        "hub_part": {"hf_hub_url": "llamafactory/DPO-En-Zh-20k", "subset": "en", "ranking": True},
        "bad_hub": {"hf_hub_url": "not a repo"},
        "belle": {"script_url": "belle_multiturn"},
        "cloud": {"cloud_file_name": "s3://bucket/data.json"},
        "local": {"file_name": "local.jsonl"},
        "gone": {"file_name": "missing.json"},
        "tools": {"file_name": "local.jsonl", "formatting": "sharegpt", "columns": {"tools": "tools"}},
        "csv": {"file_name": "table.csv"},
    })
    write_jsonl(folder / "local.jsonl", [{"instruction": "a", "output": "b"}])
    (folder / "table.csv").write_text("instruction,output\na,b\n")

    found = {e.name: e for e in list_datasets(folder)}
    assert found["alpaca_en"].usable and found["alpaca_en"].hub == "hf:llamafactory/alpaca_en:train"
    assert "ModelScope (llamafactory/alpaca_en)" in found["ms_only"].reason
    assert "subset 'en' (a part of a Hub dataset) is not read" in found["hub_part"].reason
    assert "'not a repo' is not a Hub repo id" in found["bad_hub"].reason
    assert "dataset script" in found["belle"].reason and "cloud storage" in found["cloud"].reason
    assert found["local"].usable and found["local"].files == [folder / "local.jsonl"]
    assert "no such file" in found["gone"].reason
    assert "tool calls" in found["tools"].reason
    assert "save it as JSON Lines" in found["csv"].reason
    assert [e.line for e in list_datasets(folder)][:2] == [2, 6]


def test_files_already_in_our_layout_train_as_they_are(tmp_path: Path) -> None:
    folder = write_info(tmp_path / "data", {"identity": {"file_name": "identity.json"},
                                            "chat": {"file_name": "chat.jsonl", "formatting": "sharegpt"}})
    (folder / "identity.json").write_text(json.dumps([{"instruction": "Hi", "input": "", "output": "Hello"}]))
    write_jsonl(folder / "chat.jsonl", [{"conversations": [{"from": "human", "value": "Hi"},
                                                           {"from": "gpt", "value": "Hello"}]}])
    resolved = resolve(["identity"], folder, cache=tmp_path / "cache")
    assert resolved.paths == [str(folder / "identity.json")] and resolved.format == "alpaca"
    both = resolve(["identity", "chat"], folder, cache=tmp_path / "cache")
    assert both.format == "auto" and "different layouts" in both.notes[0]
    assert not (tmp_path / "cache").exists()


def test_other_column_names_are_mapped_into_the_cache_never_the_users_folder(tmp_path: Path) -> None:
    folder = write_info(tmp_path / "data", {"qa": {"file_name": "qa.json", "columns": {
        "prompt": "question", "query": "context", "response": "answer", "system": "sys"}}})
    records = [{"question": "Capital of France?", "context": "", "answer": "Paris.", "sys": "Be brief."},
               {"question": "2+2?", "context": "Exactly.", "answer": "4", "sys": ""}]
    (folder / "qa.json").write_text(json.dumps(records, indent=2))
    before = snapshot(folder)

    resolved = resolve(["qa"], folder, cache=tmp_path / "cache")

    assert snapshot(folder) == before
    [path] = resolved.paths
    assert Path(path).parent == tmp_path / "cache" and resolved.format == "alpaca"
    source_lines = [r.line for r in iter_records(str(folder / "qa.json"))]
    converted = list(iter_records(path))
    assert [r.line for r in converted] == source_lines  # a problem names the user's line
    assert converted[0].value == {"instruction": "Capital of France?", "input": "", "output": "Paris.",
                                  "system": "Be brief."}
    assert [r.messages[-1]["content"] for r in usable(path, resolved.format)] == ["Paris.", "4"]
    assert "converted copy" in resolved.notes[0]


def test_sharegpt_tags_are_mapped_to_our_roles(tmp_path: Path) -> None:
    folder = write_info(tmp_path / "data", {"chat": {
        "file_name": "chat.jsonl", "formatting": "sharegpt",
        "columns": {"messages": "dialog", "system": "instructions"},
        "tags": {"role_tag": "speaker", "content_tag": "text", "user_tag": "client", "assistant_tag": "agent"}}})
    write_jsonl(folder / "chat.jsonl", [{"instructions": "You help.", "dialog": [
        {"speaker": "client", "text": "Hi"}, {"speaker": "agent", "text": "Hello"},
        {"speaker": "client", "text": "Bye"}, {"speaker": "agent", "text": "Goodbye"}]}])

    resolved = resolve(["chat"], folder, cache=tmp_path / "cache")

    assert resolved.format == "sharegpt"
    [record] = usable(resolved.paths[0], resolved.format)
    assert [(m["role"], m["content"]) for m in record.messages] == [
        ("system", "You help."), ("user", "Hi"), ("assistant", "Hello"), ("user", "Bye"), ("assistant", "Goodbye")]


def test_openai_style_entries_read_as_our_openai_layout(tmp_path: Path) -> None:
    folder = write_info(tmp_path / "data", {"oai": {
        "file_name": "oai.jsonl", "formatting": "sharegpt", "columns": {"messages": "messages"},
        "tags": {"role_tag": "role", "content_tag": "content", "user_tag": "user", "assistant_tag": "assistant",
                 "system_tag": "system"}}})
    write_jsonl(folder / "oai.jsonl", [{"messages": [{"role": "user", "content": "Hi"},
                                                     {"role": "assistant", "content": "Hello"}]}])
    resolved = resolve(["oai"], folder, cache=tmp_path / "cache")
    assert resolved.format == "openai" and resolved.paths == [str(folder / "oai.jsonl")]


def test_ranking_and_kto_entries_become_pair_and_kto_layouts(tmp_path: Path) -> None:
    folder = write_info(tmp_path / "data", {
        "pairs": {"file_name": "pairs.jsonl", "ranking": True,
                  "columns": {"prompt": "q", "chosen": "good", "rejected": "bad"}},
        "chat_pairs": {"file_name": "chat_pairs.jsonl", "formatting": "sharegpt", "ranking": True,
                       "columns": {"messages": "conversations", "chosen": "chosen", "rejected": "rejected"}},
        "kto": {"file_name": "kto.jsonl", "columns": {"prompt": "instruction", "response": "output",
                                                     "kto_tag": "label"}},
    })
    write_jsonl(folder / "pairs.jsonl", [{"q": "Hi", "good": "Hello!", "bad": "Go away."}])
    write_jsonl(folder / "chat_pairs.jsonl", [{"conversations": [{"from": "human", "value": "Hi"}],
                                               "chosen": {"from": "gpt", "value": "Hello!"},
                                               "rejected": {"from": "gpt", "value": "Go away."}}])
    write_jsonl(folder / "kto.jsonl", [{"instruction": "Hi", "output": "Hello!", "label": True},
                                       {"instruction": "Hi", "output": "Go away.", "label": False}])
    cache = tmp_path / "cache"

    pairs = resolve(["pairs"], folder, "dpo", cache=cache)
    assert pairs.format == "alpaca_pairs"
    [example] = usable(pairs.paths[0], pairs.format, "dpo")
    assert (example.example.chosen, example.example.rejected) == ("Hello!", "Go away.")
    chat = resolve(["chat_pairs"], folder, "dpo", cache=cache)
    assert chat.format == "sharegpt_pairs" and chat.paths == [str(folder / "chat_pairs.jsonl")]
    assert len(usable(chat.paths[0], chat.format, "dpo")) == 1
    kto = resolve(["kto"], folder, "kto", cache=cache)
    assert kto.format == "alpaca_kto"
    assert [r.example.label for r in usable(kto.paths[0], kto.format, "kto")] == [True, False]


def test_pretraining_text_column(tmp_path: Path) -> None:
    folder = write_info(tmp_path / "data", {"c4": {"file_name": "c4.jsonl", "columns": {"prompt": "text"}},
                                            "web": {"file_name": "web.jsonl", "columns": {"prompt": "content"}}})
    write_jsonl(folder / "c4.jsonl", [{"text": "Some raw text."}])
    write_jsonl(folder / "web.jsonl", [{"content": "Other raw text.", "url": "x"}])
    assert resolve(["c4"], folder, "pt", cache=tmp_path / "c").paths == [str(folder / "c4.jsonl")]
    web = resolve(["web"], folder, "pt", cache=tmp_path / "c")
    assert web.format == "text"
    assert [r.value for r in iter_records(web.paths[0])] == [{"text": "Other raw text."}]


def test_max_samples_keeps_the_first_records(tmp_path: Path) -> None:
    folder = write_info(tmp_path / "data", {"d": {"file_name": "d.jsonl"}})
    write_jsonl(folder / "d.jsonl", [{"instruction": f"q{i}", "output": f"a{i}"} for i in range(10)])
    resolved = resolve(["d"], folder, max_samples=3, cache=tmp_path / "cache")
    assert [r.value["instruction"] for r in iter_records(resolved.paths[0])] == ["q0", "q1", "q2"]


def test_a_converted_copy_is_reused_and_renewed_when_the_source_changes(tmp_path: Path) -> None:
    folder = write_info(tmp_path / "data", {"d": {"file_name": "d.jsonl", "columns": {"prompt": "q", "response": "a"}}})
    source = write_jsonl(folder / "d.jsonl", [{"q": "1", "a": "2"}])
    first = resolve(["d"], folder, cache=tmp_path / "cache").paths[0]
    stamp = Path(first).stat().st_mtime_ns
    assert resolve(["d"], folder, cache=tmp_path / "cache").paths[0] == first
    assert Path(first).stat().st_mtime_ns == stamp
    write_jsonl(source, [{"q": "1", "a": "2"}, {"q": "3", "a": "4"}])
    second = resolve(["d"], folder, cache=tmp_path / "cache").paths[0]
    assert second != first and len(list(iter_records(second))) == 2


def test_a_broken_record_is_named_in_the_users_file(tmp_path: Path) -> None:
    folder = write_info(tmp_path / "data", {"d": {"file_name": "d.jsonl", "columns": {"prompt": "q", "response": "a"}}})
    (folder / "d.jsonl").write_text('{"q": "1", "a": "2"}\n{"q": "3", "a": \n')
    with pytest.raises(ConfigError) as caught:
        resolve(["d"], folder, cache=tmp_path / "cache")
    assert f"{folder / 'd.jsonl'}:2" in caught.value.problems[0] and "JSON syntax error" in caught.value.problems[0]
    assert not (tmp_path / "cache").exists()  # nothing half-converted is left to be trained later


def test_unknown_names_and_unusable_entries_are_located(tmp_path: Path) -> None:
    folder = write_info(tmp_path / "data", {"alpaca_en": {"ms_hub_url": "llamafactory/alpaca_en"}})
    with pytest.raises(ConfigError) as caught:
        resolve(["nope", "alpaca_en"], folder)
    first, second = caught.value.problems
    assert "no dataset named 'nope'; it has: alpaca_en" in first
    assert second.startswith(f"{folder / 'dataset_info.json'}:2 alpaca_en: cannot be used: loads from ModelScope")


def test_a_broken_dataset_info_is_located(tmp_path: Path) -> None:
    folder = tmp_path / "data"
    folder.mkdir()
    (folder / "dataset_info.json").write_text('{\n  "a": {"file_name": "a.json",}\n}\n')
    with pytest.raises(ConfigError, match=r"dataset_info.json:2:\d+: JSON syntax error"):
        list_datasets(folder)
    with pytest.raises(ConfigError, match="no such file"):
        list_datasets(tmp_path / "elsewhere")


def test_preview_maps_in_memory(tmp_path: Path) -> None:
    folder = write_info(tmp_path / "data", {"d": {"file_name": "d.jsonl", "columns": {"prompt": "q", "response": "a"}}})
    write_jsonl(folder / "d.jsonl", [{"q": "1", "a": "2"}])
    found = entry("d", json.loads((folder / "dataset_info.json").read_text())["d"], folder)
    assert [r.value for r in iter_mapped(found, found.files[0])] == [{"instruction": "1", "output": "2"}]
    assert not (tmp_path / "cache").exists()


def test_data_flags_for_the_command_line(tmp_path: Path) -> None:
    from engine.compose import compose_config
    from engine.lf.dataset_info import data_flags

    folder = write_info(tmp_path / "data", {"a": {"file_name": "a.jsonl"}, "b": {"file_name": "b.jsonl"}})
    write_jsonl(folder / "a.jsonl", [{"instruction": "a", "output": "b"}])
    write_jsonl(folder / "b.jsonl", [{"instruction": "c", "output": "d"}])
    flags = data_flags(["a,b"], folder, cache=tmp_path / "cache")
    config = compose_config(None, None, flags, cwd=tmp_path)
    assert config.data.train == [str(folder / "a.jsonl"), str(folder / "b.jsonl")] and config.data.format == "alpaca"


def test_kto_demo_layout_reads_with_and_without_max_samples(tmp_path: Path) -> None:
    """LLaMA-Factory's kto_en_demo entry: role/content turns under messages, the tag in a label column."""
    folder = write_info(tmp_path / "data", {"kto_en_demo": {
        "file_name": "kto_en_demo.json", "formatting": "sharegpt",
        "columns": {"messages": "messages", "kto_tag": "label"},
        "tags": {"role_tag": "role", "content_tag": "content", "user_tag": "user", "assistant_tag": "assistant"}}})
    records = [{"messages": [{"content": f"Question {i}?", "role": "user"},
                             {"content": f"Answer {i}.", "role": "assistant"}], "label": i % 2 == 0}
               for i in range(4)]
    (folder / "kto_en_demo.json").write_text(json.dumps(records, indent=2))

    for max_samples in (None, 3):
        resolved = resolve(["kto_en_demo"], folder, "kto", max_samples=max_samples, cache=tmp_path / "cache")
        assert resolved.format == "sharegpt_kto"
        read = usable(resolved.paths[0], resolved.format, "kto")
        assert [(r.example.chosen, r.example.label) for r in read] == [
            (f"Answer {i}.", i % 2 == 0) for i in range(max_samples or 4)]


def test_a_txt_entry_is_one_document_per_line_as_llamafactory_reads_it(tmp_path: Path) -> None:
    """wiki_demo's layout: a .txt file with a text column; LLaMA-Factory reads one document per line."""
    folder = write_info(tmp_path / "data", {"wiki_demo": {"file_name": "wiki_demo.txt", "columns": {"prompt": "text"}}})
    lines = [f"Article {i} about something, in one long line." for i in range(5)]
    (folder / "wiki_demo.txt").write_text("\n".join(lines[:3]) + "\n\n" + "\n".join(lines[3:]) + "\n")

    resolved = resolve(["wiki_demo"], folder, "pt", cache=tmp_path / "cache")

    assert resolved.format == "text"
    read = usable(resolved.paths[0], resolved.format, "pt")
    assert [(r.line, r.example.text) for r in read] == [(1, lines[0]), (2, lines[1]), (3, lines[2]),
                                                       (5, lines[3]), (6, lines[4])]
    assert any("one document per line" in note and str(folder / "wiki_demo.txt") in note for note in resolved.notes)
    with pytest.raises(ConfigError) as caught:  # an SFT stage names the user's file and the stage that reads it
        resolve(["wiki_demo"], folder, "sft", cache=tmp_path / "cache")
    [problem] = caught.value.problems
    assert problem.startswith(f"wiki_demo: {folder / 'wiki_demo.txt'}: ") and "--stage pt" in problem, problem
    assert "cache" not in problem


def test_a_hub_entry_in_our_layout_resolves_to_its_hf_dataset(tmp_path: Path) -> None:
    chat = {"hf_hub_url": "org/chat", "split": "test", "formatting": "sharegpt"}
    folder = write_info(tmp_path / "data", {"alpaca_en": {"hf_hub_url": "llamafactory/alpaca_en"}, "chat": chat})
    resolved = resolve(["alpaca_en", "chat"], folder, cache=tmp_path / "cache")
    assert resolved.paths == ["hf:llamafactory/alpaca_en:train", "hf:org/chat:test"]
    assert resolved.format == "auto" and not (tmp_path / "cache").exists()  # nothing loaded or converted yet
