"""What a model is, read without loading it: config.json and safetensors headers. Stdlib only.

The app imports this module, so it must never import torch or transformers. A safetensors
file starts with an 8-byte little-endian header length followed by a JSON header that names
every tensor with its dtype and shape; reading that header is enough to count parameters
exactly, whatever the model's size.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field, replace
from math import prod
from pathlib import Path

from engine.models import hf_cache
from engine.models.safetensors_header import ModelError, Shapes, read_safetensors_header, read_safetensors_shapes
from engine.paths import DEMO_MODEL, demo_model_dir

__all__ = ["ModelError", "ModelInfo", "read_model_info", "read_folder", "describe", "check_loadable",
           "read_safetensors_header", "read_safetensors_shapes", "shapes_from_config", "count_params",
           "context_length_of"]

# The demo model's config.json, so that its details and estimate show before it is converted.
DEMO_CONFIG = {
    "architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 576, "intermediate_size": 1536,
    "num_hidden_layers": 30, "num_attention_heads": 9, "num_key_value_heads": 3, "head_dim": 64,
    "vocab_size": 49152, "max_position_embeddings": 8192, "tie_word_embeddings": True, "dtype": "float32",
}
# Decoder families laid out like Llama (q/k/v/o, gate/up/down): their shapes follow from config.json.
LLAMA_LIKE = {"llama", "mistral", "qwen2", "qwen3", "gemma", "gemma2", "smollm3", "granite", "olmo", "olmo2"}
TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "vocab.json", "tiktoken.model", "spiece.model")


@dataclass(frozen=True)
class ModelInfo:
    """Facts about a base model, read from its files without loading weights."""

    name_or_path: str
    """What the user typed: alias, folder or hub id."""
    source: str
    """demo, folder, hf-cache or hub (not downloaded: only the id is known, until engine.models.hub asks the Hub)."""
    path: str | None = None
    """The folder read, or None for a hub id not in the cache."""
    architecture: str | None = None
    """First entry of config.json ``architectures``, e.g. LlamaForCausalLM."""
    model_type: str | None = None
    """config.json ``model_type``, e.g. llama."""
    params_total: int | None = None
    """Parameters, tied embeddings counted once."""
    params_source: str = "unknown"
    """Where params_total comes from: safetensors headers or config.json."""
    num_layers: int | None = None
    hidden_size: int | None = None
    num_heads: int | None = None
    num_kv_heads: int | None = None
    head_dim: int | None = None
    intermediate_size: int | None = None
    vocab_size: int | None = None
    context_length: int | None = None
    tie_word_embeddings: bool = False
    dtype: str | None = None
    """Dtype the weights are stored in."""
    size_bytes: int | None = None
    """Size of the folder's files on disk (for a model on the Hub: of the files a pull fetches)."""
    download_bytes: int | None = None
    """For a model on the Hub (source hub): the bytes a pull still has to fetch; None when not asked."""
    commit: str | None = None
    """For a model on the Hub: the commit its facts were read at."""
    has_chat_template: bool | None = None
    quantization: str | None = None
    """Quantization the checkpoint already has (quantization_config), e.g. bitsandbytes 4bit."""
    needs_remote_code: bool = False
    """config.json has auto_map: loading runs Python code shipped with the model."""
    prepared: bool = True
    """False for the demo model before ``python -m engine prepare`` converted it."""
    notes: tuple[str, ...] = ()
    """Things the user should know, one sentence each."""
    shapes: Shapes = field(default=(), repr=False, compare=False)
    """Every weight and its shape (from headers, or derived from config.json for Llama-like models)."""

    @property
    def known(self) -> bool:
        """Whether the architecture is known well enough to estimate memory."""
        return self.params_total is not None and self.hidden_size is not None and self.num_layers is not None


HUB_ID = re.compile(r"[\w.-]+/[\w.-]+")
"""A hub id, ORG/NAME."""


def read_model_info(name_or_path: str, revision: str | None = None) -> ModelInfo:
    """Describe the model ``name_or_path`` names: the demo alias, a local folder or a hub id, without the network.

    A hub id whose snapshot (of ``revision``, if given) is complete in the Hugging Face cache is read from there;
    one that is not comes back as ``source="hub"`` with no facts (:func:`engine.models.hub.hub_model_info` asks
    the Hub for them).

    Raises:
        ModelError: for a path that is not a usable model folder, saying what to do.
    """
    if name_or_path == DEMO_MODEL:
        return _demo_info()
    path = Path(name_or_path).expanduser()
    if path.exists() or name_or_path.startswith((".", "/", "~")) or name_or_path.count("/") > 1:
        return read_folder(path, name_or_path)
    cached = (hf_cache.find_snapshot(name_or_path, revision=revision)
              if re.fullmatch(r"[\w.-]+(/[\w.-]+)?", name_or_path) else None)
    if cached is not None:  # legacy ids without an organisation (gpt2) count when downloaded
        return read_folder(cached, name_or_path, source="hf-cache")
    if HUB_ID.fullmatch(name_or_path):
        return ModelInfo(name_or_path, "hub", notes=(
            "Not on this machine: the run downloads it from the Hugging Face Hub before it loads it.",))
    raise ModelError(f"{name_or_path}: no such folder, and not a hub id (ORG/NAME). "
                     "Give a model folder, a hub id such as HuggingFaceTB/SmolLM2-135M-Instruct, "
                     f"or the demo model {DEMO_MODEL}.")


def read_folder(path: Path, name_or_path: str | None = None, source: str = "folder") -> ModelInfo:
    """Describe the model folder ``path`` (config.json, tokenizer and safetensors headers)."""
    name = name_or_path or str(path)
    _check_folder(path)
    config = _read_json(path / "config.json")
    tokenizer_config = _read_json(path / "tokenizer_config.json") if (path / "tokenizer_config.json").is_file() else {}
    header_shapes, header_dtype = read_safetensors_shapes(path)
    bin_only = not any(path.glob("*.safetensors")) and any(path.glob("*.bin"))
    return describe(config, name, source, str(path), path=path, header_shapes=header_shapes,
                    header_dtype=header_dtype, size=folder_size(path), bin_only=bin_only,
                    chat=_has_chat_template(path, tokenizer_config))


def describe(config: dict, name: str, source: str, where: str, *, path: Path | None, header_shapes: Shapes,
             header_dtype: str | None, size: int | None, bin_only: bool, chat: bool | None,
             notes: tuple[str, ...] = ()) -> ModelInfo:
    """A ModelInfo from a model's files as read (a folder's, or the Hub's before any weights are fetched).

    Args:
        where: names the model in a refusal (its folder, or its hub id).
        header_shapes: the tensors its safetensors headers name (empty when unknown): the parameter count,
            else derived from config.json for Llama-like families.

    Raises:
        ModelError: its architecture is not a causal language model.
    """
    arch = _check_architecture(where, config)
    quant = _quantization(config)
    found: list[str] = list(notes)
    shapes, params_source = header_shapes, "safetensors headers"
    if quant or not header_shapes:
        derived = shapes_from_config(config)
        if derived:
            shapes, params_source = derived, "config.json"
        elif quant and header_shapes:
            found.append("Already quantized and not Llama-like: the parameter count from packed weights is "
                         "approximate.")
        if not header_shapes and not derived:
            found.append("No safetensors weights and an unfamiliar layout: parameter count unknown.")
    if bin_only:
        found.append("Weights are in PyTorch .bin files only: loading them runs pickle; prefer safetensors.")
    if "auto_map" in config:
        found.append("Needs remote code (auto_map): set model.trust_remote_code for the run if you trust its author.")
    return _from_config(config, name, source, path, arch, shapes, params_source, found,
                        dtype=header_dtype if header_shapes and not quant else None, size=size, chat=chat,
                        quant=quant)


def check_loadable(info: ModelInfo, trust_remote_code: bool) -> None:
    """Refuse a model that needs remote code unless the run opted in.

    Raises:
        ModelError: when ``info.needs_remote_code`` and not ``trust_remote_code``.
    """
    if info.needs_remote_code and not trust_remote_code:
        raise ModelError(f"{info.name_or_path} needs remote code (config.json has auto_map): loading it runs Python "
                         "files shipped with the model. If you trust its author, set model.trust_remote_code: true "
                         "for this run; otherwise pick a model transformers supports natively.")


def shapes_from_config(config: dict) -> Shapes:
    """Weight shapes of a Llama-like model derived from config.json; empty for other layouts."""
    if config.get("model_type") not in LLAMA_LIKE:
        return ()
    h, inter, layers = config["hidden_size"], config["intermediate_size"], config["num_hidden_layers"]
    heads = config["num_attention_heads"]
    kv = config.get("num_key_value_heads") or heads
    hd = config.get("head_dim") or h // heads
    bias = config.get("attention_bias", config.get("model_type") == "qwen2")
    shapes: list[tuple[str, tuple[int, ...]]] = [("model.embed_tokens", (config["vocab_size"], h))]
    for i in range(layers):
        p = f"model.layers.{i}."
        for name, out in (("q_proj", heads * hd), ("k_proj", kv * hd), ("v_proj", kv * hd)):
            shapes.append((f"{p}self_attn.{name}", (out, h)))
            if bias and name != "o_proj":
                shapes.append((f"{p}self_attn.{name}.bias", (out,)))
        shapes += [(f"{p}self_attn.o_proj", (h, heads * hd)), (f"{p}mlp.gate_proj", (inter, h)),
                   (f"{p}mlp.up_proj", (inter, h)), (f"{p}mlp.down_proj", (h, inter)),
                   (f"{p}input_layernorm.weight", (h,)), (f"{p}post_attention_layernorm.weight", (h,))]
    shapes.append(("model.norm.weight", (h,)))
    if not config.get("tie_word_embeddings", False):
        shapes.append(("lm_head", (config["vocab_size"], h)))
    return tuple(shapes)


def count_params(shapes: Shapes, tied: bool) -> int:
    """Total parameters; a tied output head stored beside the embeddings is counted once."""
    total = sum(prod(shape) for _, shape in shapes)
    if tied:
        total -= sum(prod(shape) for name, shape in shapes if name.split(".")[-1] == "lm_head")
    return total


def folder_size(path: Path) -> int:
    """Bytes of every file under ``path``, following the HF cache's symlinks to blobs."""
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            try:
                total += os.stat(os.path.join(root, name)).st_size
            except OSError:
                pass
    return total


def _check_folder(path: Path) -> None:
    if path.is_file() and path.suffix == ".gguf":
        raise ModelError(f"{path} is a GGUF file (llama.cpp format); tuitune trains transformers model folders "
                         "(config.json + safetensors). Use the original model from the hub instead.")
    if not path.is_dir():
        raise ModelError(f"{path}: not a folder. Give a model folder holding config.json and weights, "
                         "a hub id (ORG/NAME) or the demo model.")
    if not (path / "config.json").is_file():
        ggufs = sorted(p.name for p in path.glob("*.gguf"))
        if ggufs:
            raise ModelError(f"{path} holds only GGUF files ({', '.join(ggufs[:3])}); tuitune trains transformers "
                             "folders (config.json + safetensors). Use the original model from the hub instead.")
        if (path / "adapter_config.json").is_file():
            base = _read_json(path / "adapter_config.json").get("base_model_name_or_path")
            raise ModelError(f"{path} is a LoRA adapter, not a base model. Choose its base model ({base}) "
                             "and, to continue training, resume the run that made the adapter.")
        raise ModelError(f"{path}: no config.json, so this is not a transformers model folder. "
                         "Choose the folder that holds config.json and the *.safetensors weights.")
    if not any((path / name).is_file() for name in TOKENIZER_FILES):
        raise ModelError(f"{path}: no tokenizer (none of {', '.join(TOKENIZER_FILES[:3])}). Copy the tokenizer "
                         "files from the base model into this folder (tokenizer.save_pretrained does it).")


def _check_architecture(where: str, config: dict) -> str | None:
    archs = config.get("architectures") or []
    causal = [a for a in archs if a.endswith(("ForCausalLM", "LMHeadModel"))]
    if archs and not causal:
        raise ModelError(f"{where}: {archs[0]} is not a causal language model; tuitune fine-tunes decoder-only "
                         "text models (…ForCausalLM). Pick a chat or base LLM such as a Llama, Qwen or SmolLM.")
    return causal[0] if causal else None


def _read_json(file: Path) -> dict:
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelError(f"{file}: cannot read it as JSON ({exc}). Download the model again.") from None
    if not isinstance(data, dict):
        raise ModelError(f"{file}: expected a JSON object. Download the model again.")
    return data


def _has_chat_template(path: Path, tokenizer_config: dict) -> bool:
    return bool(tokenizer_config.get("chat_template")) or (path / "chat_template.jinja").is_file() or (
        path / "chat_template.json").is_file()


def _quantization(config: dict) -> str | None:
    quant = config.get("quantization_config")
    if not isinstance(quant, dict):
        return None
    method = quant.get("quant_method", "unknown")
    bits = "4bit" if quant.get("load_in_4bit") else "8bit" if quant.get("load_in_8bit") else quant.get("bits")
    return f"{method} {bits}" if bits else str(method)


CONTEXT_KEYS = ("max_position_embeddings", "n_positions", "max_sequence_length", "seq_length")
"""The names model families give their context length in config.json."""


def context_length_of(config: dict) -> int | None:
    """The context length a model's config.json (as a dict) gives, in tokens, whatever its family calls it."""
    return _pick(config, *CONTEXT_KEYS)


def _pick(config: dict, *keys: str) -> int | None:
    return next((config[k] for k in keys if isinstance(config.get(k), int)), None)


def _from_config(config: dict, name: str, source: str, path: Path | None, arch: str | None, shapes: Shapes,
                 params_source: str, notes: list[str], **found) -> ModelInfo:
    """Build a ModelInfo from config.json, whatever names this family gives its fields."""
    tied = bool(config.get("tie_word_embeddings", config.get("model_type") in {"gpt2", "gemma", "gemma2"}))
    heads = _pick(config, "num_attention_heads", "n_head", "num_heads")
    hidden = _pick(config, "hidden_size", "n_embd", "d_model")
    kv = _pick(config, "num_key_value_heads", "num_kv_heads") or (1 if config.get("multi_query") else heads)
    dtype = config.get("dtype") or config.get("torch_dtype") or found["dtype"]
    return ModelInfo(
        name_or_path=name, source=source, path=str(path) if path else None, architecture=arch,
        model_type=config.get("model_type"), params_total=count_params(shapes, tied) if shapes else None,
        params_source=params_source if shapes else "unknown",
        num_layers=_pick(config, "num_hidden_layers", "n_layer", "num_layers"), hidden_size=hidden,
        num_heads=heads, num_kv_heads=kv,
        head_dim=_pick(config, "head_dim") or (hidden // heads if hidden and heads else None),
        intermediate_size=_pick(config, "intermediate_size", "n_inner", "ffn_dim") or (4 * hidden if hidden else None),
        vocab_size=_pick(config, "vocab_size"),
        context_length=context_length_of(config),
        tie_word_embeddings=tied, dtype=dtype, size_bytes=found["size"], has_chat_template=found["chat"],
        quantization=found["quant"], needs_remote_code="auto_map" in config, notes=tuple(notes), shapes=shapes)


def _demo_info() -> ModelInfo:
    """The demo model: read from its converted folder, or described from known facts before that."""
    folder = demo_model_dir()
    if (folder / "config.json").is_file() and (folder / "model.safetensors").is_file():
        return read_folder(folder, DEMO_MODEL, source="demo")
    note = "Not converted yet: run `python -m engine prepare` (about 30 s), or the first run will do it."
    info = _from_config(DEMO_CONFIG, DEMO_MODEL, "demo", None, "LlamaForCausalLM", shapes_from_config(DEMO_CONFIG),
                        "config.json", [note], dtype="float32", size=None, chat=True, quant=None)
    return replace(info, prepared=False)
