"""Reading what a model is from config.json and safetensors headers, and every refusal's message."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

from engine.models.info import ModelError, check_loadable, read_model_info
from engine.paths import DEMO_MODEL

_spec = importlib.util.spec_from_file_location("model_builders",
                                               Path(__file__).parents[1] / "fixtures/models/builders.py")
builders = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(builders)

# Hand count for TINY_LLAMA (h=8, i=16, V=32, 2 layers, 2 heads of 4, 1 key/value head):
# embed 32*8 + lm_head 32*8 + final norm 8 = 520; per layer q 8*8 + k 4*8 + v 4*8 + o 8*8
# + gate/up/down 3*16*8 + two norms 2*8 = 592; total 520 + 2*592.
TINY_PARAMS = 32 * 8 + 32 * 8 + 8 + 2 * (64 + 32 + 32 + 64 + 3 * 128 + 16)


def test_tiny_folder_details(tmp_path: Path) -> None:
    info = read_model_info(str(builders.make_model(tmp_path / "tiny")))
    assert TINY_PARAMS == 1704
    assert (info.params_total, info.params_source) == (TINY_PARAMS, "safetensors headers")
    assert (info.architecture, info.model_type, info.num_layers, info.hidden_size) == (
        "LlamaForCausalLM", "llama", 2, 8)
    assert (info.num_heads, info.num_kv_heads, info.head_dim, info.intermediate_size) == (2, 1, 4, 16)
    assert (info.vocab_size, info.context_length, info.dtype) == (32, 64, "bfloat16")
    assert info.has_chat_template and not info.needs_remote_code and info.quantization is None
    weights = (tmp_path / "tiny/model.safetensors").stat().st_size
    assert info.size_bytes > weights > TINY_PARAMS * 2


def test_sharded_and_tied_counts_embeddings_once(tmp_path: Path) -> None:
    config = dict(builders.TINY_LLAMA, tie_word_embeddings=True)
    folder = builders.make_model(tmp_path / "tied", config, shards=3)
    # A tied checkpoint that still stores lm_head must not count it twice.
    builders.write_safetensors(folder / "extra.safetensors", {"lm_head.weight": (32, 8)})
    info = read_model_info(str(folder))
    assert info.params_total == TINY_PARAMS - 32 * 8


def test_dtype_from_headers_when_config_has_none(tmp_path: Path) -> None:
    config = {k: v for k, v in builders.TINY_LLAMA.items() if k != "torch_dtype"}
    folder = builders.make_model(tmp_path / "m", config, weights=False)
    builders.write_safetensors(folder / "model.safetensors", builders.llama_tensors(config), dtype="F32")
    assert read_model_info(str(folder)).dtype == "float32"


@pytest.mark.parametrize("where", ["tokenizer_config", "jinja", None])
def test_chat_template_found_in_either_place(tmp_path: Path, where: str | None) -> None:
    info = read_model_info(str(builders.make_model(tmp_path / "m", chat_template=where)))
    assert info.has_chat_template is (where is not None)


def test_params_from_config_without_weights_and_when_quantized(tmp_path: Path) -> None:
    info = read_model_info(str(builders.make_model(tmp_path / "noweights", weights=False)))
    assert (info.params_total, info.params_source) == (TINY_PARAMS, "config.json")
    config = dict(builders.TINY_LLAMA, quantization_config={"quant_method": "bitsandbytes", "load_in_4bit": True})
    quant = read_model_info(str(builders.make_model(tmp_path / "q", config)))
    assert quant.quantization == "bitsandbytes 4bit"
    assert (quant.params_total, quant.params_source) == (TINY_PARAMS, "config.json")


def test_remote_code_refused_unless_opted_in(tmp_path: Path) -> None:
    config = dict(builders.TINY_LLAMA, auto_map={"AutoModelForCausalLM": "modeling_x.XForCausalLM"})
    info = read_model_info(str(builders.make_model(tmp_path / "remote", config)))
    assert info.needs_remote_code
    with pytest.raises(ModelError, match="trust_remote_code: true"):
        check_loadable(info, trust_remote_code=False)
    check_loadable(info, trust_remote_code=True)


def _error(name_or_path: str) -> str:
    with pytest.raises(ModelError) as caught:
        read_model_info(name_or_path)
    return str(caught.value)


def test_error_not_a_folder(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("x")
    assert "not a folder" in _error(str(tmp_path / "notes.txt"))
    message = _error(str(tmp_path / "missing"))
    assert "not a folder" in message and "config.json" in message


def test_error_missing_config(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    message = _error(str(tmp_path / "empty"))
    assert "no config.json" in message and "Choose the folder that holds config.json" in message


def test_error_missing_tokenizer(tmp_path: Path) -> None:
    message = _error(str(builders.make_model(tmp_path / "m", tokenizer=False, chat_template=None)))
    assert "no tokenizer" in message and "Copy the tokenizer files" in message


def test_error_not_a_causal_lm(tmp_path: Path) -> None:
    config = dict(builders.TINY_LLAMA, architectures=["BertForMaskedLM"], model_type="bert")
    message = _error(str(builders.make_model(tmp_path / "bert", config)))
    assert "BertForMaskedLM is not a causal language model" in message and "Pick a chat or base LLM" in message


def test_error_gguf_only(tmp_path: Path) -> None:
    folder = tmp_path / "gguf"
    folder.mkdir()
    (folder / "model.Q4_K_M.gguf").write_bytes(b"GGUF")
    message = _error(str(folder))
    assert "only GGUF files (model.Q4_K_M.gguf)" in message and "original model from the hub" in message
    assert "GGUF file" in _error(str(folder / "model.Q4_K_M.gguf"))


def test_error_adapter_folder_names_its_base(tmp_path: Path) -> None:
    folder = tmp_path / "adapter"
    folder.mkdir()
    (folder / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": "org/base"}))
    message = _error(str(folder))
    assert "LoRA adapter, not a base model" in message and "org/base" in message


def test_error_corrupt_safetensors(tmp_path: Path) -> None:
    folder = builders.make_model(tmp_path / "m")
    (folder / "model.safetensors").write_bytes(b"\xff" * 8 + b"{}")
    message = _error(str(folder))
    assert "not a readable safetensors file" in message and "download the model again" in message


def test_error_neither_path_nor_hub_id() -> None:
    assert "not a hub id" in _error("just-a-word")


def test_hub_id_not_downloaded_and_cached(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_CACHE",
                       str(builders.make_hf_cache(tmp_path / "hub", {"org/cached": True, "gpt2": True})))
    remote = read_model_info("org/elsewhere")
    assert remote.source == "hub" and not remote.known and "downloads it" in remote.notes[0]
    cached = read_model_info("org/cached")
    assert (cached.source, cached.params_total) == ("hf-cache", TINY_PARAMS)
    assert read_model_info("gpt2").source == "hf-cache"  # a legacy id without organisation, downloaded


def test_demo_before_conversion_gives_known_facts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "empty-cache"))
    info = read_model_info(DEMO_MODEL)
    assert not info.prepared and "python -m engine prepare" in info.notes[0]
    assert (info.params_total, info.num_layers, info.vocab_size) == (134_515_008, 30, 49152)


def test_demo_after_conversion_matches_known_facts(demo_model_dir: Path) -> None:
    info = read_model_info(DEMO_MODEL)
    assert info.prepared and info.source == "demo" and info.params_source == "safetensors headers"
    assert info.params_total == 134_515_008 and info.has_chat_template


def test_module_stays_free_of_the_ml_stack() -> None:
    import subprocess

    code = ("import engine.models.info, engine.estimate.memory, engine.estimate.advice, engine.estimate.trainable, "
            "engine.models.hf_cache, engine.machine.gpus, sys; print(sorted(m for m in "
            "('torch','transformers','peft','textual','pydantic') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
