"""The model card of a pushed export (engine/export/card.py), built from a canned finished run folder."""

from __future__ import annotations

from pathlib import Path

import yaml

from engine.config import load_config
from engine.export.card import model_card
from engine.protocol import read_events

FINISHED = Path(__file__).resolve().parents[1] / "fixtures" / "runs" / "finished"


def card(model: str, train: list[str] | None = None, outputs: list[str] | None = None) -> tuple[dict, str]:
    config = load_config(FINISHED / "config.yaml")
    config.model.name_or_path = model
    config.data.train = train or config.data.train
    text = model_card("me/tuned", FINISHED, config, read_events(FINISHED), "adapter", outputs or [])
    return yaml.safe_load(text.split("---\n")[1]), text


def test_a_hub_base_model_and_hub_data_are_the_cards_metadata() -> None:
    meta, text = card("HuggingFaceTB/SmolLM2-135M-Instruct", ["hf:org/qa:test", "/home/me/private/notes.jsonl"],
                      ["merged", "finished-q8_0.gguf", "Modelfile"])
    assert meta == {"base_model": "HuggingFaceTB/SmolLM2-135M-Instruct", "library_name": "peft",
                    "tags": ["tuitune", "lora", "sft", "base_model:adapter:HuggingFaceTB/SmolLM2-135M-Instruct"],
                    "datasets": ["org/qa"]}
    assert "[org/qa](https://huggingface.co/datasets/org/qa), split `test`" in text
    assert "`notes.jsonl` (a local file)" in text and "/home/me" not in text  # no path of this machine
    assert "- `merged/`: " in text and "- `finished-q8_0.gguf`: " in text and "- `Modelfile`: " in text
    assert "| eval loss | " in text and "| ended | finished at step 60 of 60 |" in text


def test_an_alias_or_a_folder_is_no_base_model() -> None:
    meta, text = card("smollm2-135m-instruct")
    assert "base_model" not in meta and "datasets" not in meta and meta["library_name"] == "peft"
    assert "tuitune's demo model (SmolLM2-135M-Instruct)" in text and "`builtin:identity`" in text
