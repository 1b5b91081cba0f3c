"""An export's artefacts checked against training: a merged folder's tokenizer, a GGUF's embedded template and
vocabulary (written with gguf's own GGUFWriter, read back with its GGUFReader), a Modelfile's TEMPLATE and stops.

The tokenizer is the Qwen2.5 fixture (tests/fixtures/templates); the artefacts are those an export writes for it,
and the same with one thing broken.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from engine.export.ollama import modelfile
from engine.jobs.export_check import check_export
from engine.models.tokenizer import load_tokenizer

_spec = importlib.util.spec_from_file_location("template_fixtures",
                                               Path(__file__).parents[1] / "fixtures/templates/build.py")
templates = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(templates)


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory: pytest.TempPathFactory):
    return load_tokenizer(str(templates.build(templates.family("qwen2_5"), tmp_path_factory.mktemp("qwen"))))


def write_gguf(path: Path, tokenizer, template: str | None) -> str:
    from gguf import GGUFWriter

    writer = GGUFWriter(str(path), "llama")
    vocab = tokenizer.get_vocab()
    writer.add_token_list(sorted(vocab, key=vocab.get))
    writer.add_add_bos_token(False)
    if template is not None:
        writer.add_chat_template(template)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path.name


def write_modelfile(folder: Path, tokenizer, change=lambda text: text) -> str:
    def render(messages, generation):
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=generation)

    text = modelfile("m.gguf", render, tokenizer.all_special_tokens, tokenizer.eos_token)
    (folder / "Modelfile").write_text(change(text), encoding="utf-8")
    return "Modelfile"


def test_artefacts_that_render_as_training_pass(tokenizer, tmp_path: Path) -> None:
    tokenizer.save_pretrained(tmp_path / "merged")
    names = ["merged", write_gguf(tmp_path / "m.gguf", tokenizer, tokenizer.chat_template),
             write_modelfile(tmp_path, tokenizer)]
    checks = check_export(tokenizer, tmp_path, names)
    assert [(c.check, c.severity) for c in checks] == [("merged", "ok"), ("gguf", "ok"), ("modelfile", "ok")]
    assert "<|im_end|> is id 256 there" in checks[1].message and checks[2].message.endswith("stops on <|im_end|>")


def test_a_gguf_with_another_template_or_none_is_an_error(tokenizer, tmp_path: Path) -> None:
    other = templates.family("qwen3")["chat_template"]  # no default system prompt
    wrong = check_export(tokenizer, tmp_path, [write_gguf(tmp_path / "other.gguf", tokenizer, other)])[0]
    assert wrong.severity == "error" and "renders the sample chat unlike training" in wrong.message
    assert "You are Qwen" in wrong.evidence
    none = check_export(tokenizer, tmp_path, [write_gguf(tmp_path / "none.gguf", tokenizer, None)])[0]
    assert none.severity == "error" and "embeds no chat template" in none.message


def test_a_modelfile_with_another_template_or_no_stop_is_an_error(tokenizer, tmp_path: Path) -> None:
    other = check_export(tokenizer, tmp_path, [write_modelfile(
        tmp_path, tokenizer, lambda text: text.replace('<|im_start|>assistant\\n"', '<|im_start|>model\\n"'))])[0]
    assert other.severity == "error" and "TEMPLATE renders the sample chat unlike training" in other.message
    assert "model" in other.evidence
    no_stop = check_export(tokenizer, tmp_path, [write_modelfile(
        tmp_path, tokenizer, lambda text: text.replace('PARAMETER stop "<|im_end|>"', ""))])[0]
    assert no_stop.severity == "error" and "does not stop on <|im_end|>" in no_stop.message


def test_a_merged_folder_with_another_template_is_an_error(tokenizer, tmp_path: Path) -> None:
    saved = tokenizer.chat_template
    tokenizer.chat_template = saved.replace("You are Qwen", "You are Bob")
    try:
        tokenizer.save_pretrained(tmp_path / "merged")
    finally:
        tokenizer.chat_template = saved
    found = check_export(tokenizer, tmp_path, ["merged"])[0]
    assert found.severity == "error" and "renders the sample chat to other tokens than training" in found.message
    assert found.evidence.startswith("at token ")
