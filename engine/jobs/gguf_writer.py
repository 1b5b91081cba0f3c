"""A merged model as one GGUF file, on the ``gguf`` library's writer and tensor-name map.

``gguf`` (0.19) ships llama.cpp's file writer (``GGUFWriter``), its tensor-name map
(``get_tensor_name_map``), its vocabulary readers (``SpecialVocab``, ``LlamaHfVocab``) and numpy
quantizers whose F16, BF16 and Q8_0 bytes are identical to llama.cpp's own kernels; it ships no
converter. What a converter adds on top is small and is done here the way llama.cpp's
``convert_hf_to_gguf.py`` does it (``LlamaModel``, ``Qwen2Model``, ``Qwen3Model``,
``TextModel.set_gguf_parameters``, ``get_vocab_base``, ``prepare_tensors``):

* **names**: every transformers tensor goes through the tensor-name map of its architecture
  (``model.layers.3.self_attn.q_proj.weight`` → ``blk.3.attn_q.weight``); a tensor the map
  does not know stops the export (it would be silently missing in llama.cpp);
* **Llama q/k permutation**: llama.cpp's rope pairs dimensions (i, i+1) where transformers pairs
  (i, i + d/2), so Llama and Mistral ``q_proj``/``k_proj`` rows are permuted per head (Qwen's
  are not);
* **types**: 1-D tensors and norms stay F32; every other weight takes the file's type; a Q8_0
  tensor whose rows are not a multiple of 32 falls back to F16, as llama.cpp's converter does;
* **hyper-parameters** under ``ARCH.*`` and ``general.file_type``;
* **tokenizer**: a byte-level BPE (``tokenizer.ggml.model = gpt2``) with the pre-tokenizer
  llama.cpp must use, recognised by the same hash of the same test text as llama.cpp's
  converter (an unknown one is refused: the GGUF would tokenize differently), or a
  SentencePiece-style byte-fallback BPE (``llama``, Mistral and Llama 2); merges, special
  token ids, add_bos/add_eos and the chat template (``tokenizer.chat_template``) from the
  tokenizer's own files through ``SpecialVocab``.

Supported: ``LlamaForCausalLM`` and ``MistralForCausalLM`` (written as llama.cpp's ``llama``,
as its converter does), ``Qwen2ForCausalLM`` (``qwen2``) and ``Qwen3ForCausalLM`` (``qwen3``).
K-quants (Q4_K_M …) are not offered: ``gguf`` can only read them, and a writer of the real
format could not be checked against llama.cpp here.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from hashlib import sha256
from pathlib import Path
from typing import Any

import gguf
import numpy as np

from engine.export.plan import GGUF_ARCHITECTURES, SUPPORTED

FAMILIES = {"llama": gguf.MODEL_ARCH.LLAMA, "mistral": gguf.MODEL_ARCH.LLAMA, "qwen2": gguf.MODEL_ARCH.QWEN2,
            "qwen3": gguf.MODEL_ARCH.QWEN3}
"""Each supported family's llama.cpp architecture (Mistral is llama.cpp's ``llama``, as its converter writes it)."""
ARCHITECTURES = {name: FAMILIES[family] for name, family in GGUF_ARCHITECTURES.items()}
"""transformers architecture → llama.cpp architecture."""
PERMUTED = {gguf.MODEL_ARCH.LLAMA}
"""Architectures whose q/k rows are permuted for llama.cpp's rope."""
FILE_TYPES = {
    "f16": (gguf.GGMLQuantizationType.F16, gguf.LlamaFileType.MOSTLY_F16),
    "bf16": (gguf.GGMLQuantizationType.BF16, gguf.LlamaFileType.MOSTLY_BF16),
    "q8_0": (gguf.GGMLQuantizationType.Q8_0, gguf.LlamaFileType.MOSTLY_Q8_0),
}
"""The GGUF types written, each by ``gguf``'s numpy quantizer (byte-identical to llama.cpp)."""

CHKTXT = ('\n \n\n \n\n\n \t \t\t \t\n  \n   \n    \n     \n🚀 (normal) 😶\u200d🌫️ (multiple emojis concatenated) ✅ '
          '🦙🦙 3 33 333 3333 33333 333333 3333333 33333333 3.3 3..3 3...3 កាន់តែពិសេសអាច😁 ?我想在apple工作1314151天～ '
          '------======= нещо на Български \'\'\'\'\'\'```````""""......!!!!!!?????? I\'ve been \'told he\'s there, '
          '\'RE you sure? \'M not sure I\'ll make it, \'D you like some tea? We\'Ve a\'lL')
"""llama.cpp's test text: the sha256 of its token ids names the BPE pre-tokenizer."""
PRE_TOKENIZERS = {
    "855059429035d75a914d1eda9f10a876752e281a054a7a3d421ef0533e5b6249": "smollm",  # HuggingFaceTB/SmolLM-135M
    "0ef9807a4087ebef797fc749390439009c3b9eda9ad1a097abbe738f486c01e5": "llama-bpe",  # meta-llama/Meta-Llama-3-8B
    "e636dc30a262dcc0d8c323492e32ae2b70728f4df7dfe9737d9f920a282b8aea": "qwen2",  # Qwen/Qwen1.5-7B (Qwen2, 2.5, 3)
    "d4540891389ea895b53b399da6ac824becc30f2fba0e9ddbb98f92e55ca0e97c": "qwen2",  # Qwen/Qwen3-Embedding-0.6B
    "63b97e4253352e6f357cc59ea5b583e3a680eaeaf2632188c2b952de2588485e": "tekken",  # mistralai/Mistral-Nemo-Base-2407
}
"""The pre-tokenizers of the supported families, as llama.cpp's ``get_vocab_base_pre`` names them."""
SKIPPED = (".rotary_emb.inv_freq", ".attention.masked_bias", ".attention.bias")


class GGUFError(ValueError):
    """The model cannot be written as GGUF; the message says why and what is supported."""


def gguf_architecture(config: dict[str, Any]) -> gguf.MODEL_ARCH:
    """The llama.cpp architecture of a model's ``config.json``.

    Raises:
        GGUFError: naming the architecture and the supported ones.
    """
    names = config.get("architectures") or [config.get("model_type")]
    arch = ARCHITECTURES.get(str(names[0]))
    if arch is None:
        raise GGUFError(f"GGUF export does not know the architecture {names[0]}; supported: {SUPPORTED}")
    return arch


@dataclass
class Progress:
    """What the writer reports: tensors done out of the total."""

    report: Callable[[int, int], None] = lambda done, total: None
    check_stop: Callable[[], None] = lambda: None


def write_gguf(out: Path, state: dict[str, Any], config: dict[str, Any], tokenizer_dir: Path, kind: str,
               name: str, progress: Progress | None = None) -> None:
    """Write the model ``state`` (transformers names → torch tensors) as GGUF of ``kind`` to ``out``.

    ``config`` is the model's config.json and ``tokenizer_dir`` a folder holding its tokenizer
    files (tokenizer.json, tokenizer_config.json, chat template). ``progress.check_stop`` is
    called between tensors; whatever it raises leaves ``out`` half written (callers write into
    a temporary folder).
    """
    progress = progress or Progress()
    arch = gguf_architecture(config)
    qtype, file_type = FILE_TYPES[kind]
    blocks = int(config["num_hidden_layers"])
    writer = gguf.GGUFWriter(str(out), gguf.MODEL_ARCH_NAMES[arch])
    try:
        writer.add_name(name)
        write_parameters(writer, config, arch, file_type)
        write_vocab(writer, tokenizer_dir, config)
        tensors = list(gguf_tensors(state, config, arch, blocks))
        for done, (gguf_name, data) in enumerate(tensors, 1):
            progress.check_stop()
            array, dtype = encode(gguf_name, data, qtype)
            writer.add_tensor(gguf_name, array, raw_dtype=dtype)
            progress.report(done, len(tensors))
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
    finally:
        writer.close()


def write_parameters(writer: gguf.GGUFWriter, config: dict[str, Any], arch: gguf.MODEL_ARCH,
                     file_type: gguf.LlamaFileType) -> None:
    """The hyper-parameters llama.cpp reads for ``arch`` (``TextModel.set_gguf_parameters``)."""
    heads = int(config["num_attention_heads"])
    writer.add_block_count(int(config["num_hidden_layers"]))
    writer.add_context_length(int(config.get("max_position_embeddings") or 4096))
    writer.add_embedding_length(int(config["hidden_size"]))
    writer.add_feed_forward_length(int(config["intermediate_size"]))
    writer.add_head_count(heads)
    writer.add_head_count_kv(int(config.get("num_key_value_heads") or heads))
    writer.add_layer_norm_rms_eps(float(config.get("rms_norm_eps", 1e-6)))
    rope = rope_parameters(config)
    writer.add_rope_freq_base(float(rope.get("rope_theta", 10000.0)))
    scaling = rope.get("rope_type") or "default"
    if scaling == "linear":
        writer.add_rope_scaling_type(gguf.RopeScalingType.LINEAR)
        writer.add_rope_scaling_factor(float(rope["factor"]))
    elif scaling == "yarn":
        writer.add_rope_scaling_type(gguf.RopeScalingType.YARN)
        writer.add_rope_scaling_factor(float(rope["factor"]))
        writer.add_rope_scaling_orig_ctx_len(int(rope["original_max_position_embeddings"]))
    elif scaling not in ("default", "llama3"):  # llama3 travels as the rope_freqs tensor
        raise GGUFError(f"GGUF export does not know the rope scaling {scaling!r} of this model")
    if config.get("head_dim") is not None:
        writer.add_key_length(int(config["head_dim"]))
        writer.add_value_length(int(config["head_dim"]))
    if arch == gguf.MODEL_ARCH.LLAMA:
        writer.add_vocab_size(int(config["vocab_size"]))
        writer.add_rope_dimension_count(int(config.get("head_dim") or int(config["hidden_size"]) // heads))
    writer.add_file_type(file_type)
    if file_type == gguf.LlamaFileType.MOSTLY_Q8_0:
        writer.add_quantization_version(gguf.GGML_QUANT_VERSION)


def rope_parameters(config: dict[str, Any]) -> dict[str, Any]:
    """``rope_theta`` and the scaling of a config.json, old layout (rope_theta, rope_scaling) or new."""
    rope = dict(config.get("rope_parameters") or {})
    if config.get("rope_theta") is not None:
        rope.setdefault("rope_theta", config["rope_theta"])
    scaling = config.get("rope_scaling") or {}
    if scaling:
        rope.update(scaling)
        rope["rope_type"] = scaling.get("rope_type") or scaling.get("type")
    return rope


def gguf_tensors(state: dict[str, Any], config: dict[str, Any], arch: gguf.MODEL_ARCH,
                 blocks: int) -> Iterable[tuple[str, np.ndarray]]:
    """Every tensor under its GGUF name as float32 numpy, q/k permuted where llama.cpp wants it.

    Raises:
        GGUFError: a tensor the architecture's name map does not know.
    """
    names = gguf.get_tensor_name_map(arch, blocks)
    heads = int(config["num_attention_heads"])
    kv_heads = int(config.get("num_key_value_heads") or heads)
    tied = bool(config.get("tie_word_embeddings"))
    if (rope := rope_parameters(config)).get("rope_type") == "llama3":
        yield gguf.TENSOR_NAMES[gguf.MODEL_TENSOR.ROPE_FREQS] + ".weight", llama3_rope_factors(config, rope)
    for hf_name, tensor in state.items():
        if hf_name.endswith(SKIPPED) or (tied and hf_name == "lm_head.weight"):
            continue
        new_name = names.get_name(hf_name, try_suffixes=(".weight", ".bias"))
        if new_name is None:
            raise GGUFError(f"GGUF export cannot place the tensor {hf_name} (not in llama.cpp's map for "
                            f"{gguf.MODEL_ARCH_NAMES[arch]})")
        data = tensor.detach().float().cpu().numpy()
        if arch in PERMUTED and hf_name.endswith(("q_proj.weight", "q_proj.bias")):
            data = permute(data, heads)
        elif arch in PERMUTED and hf_name.endswith(("k_proj.weight", "k_proj.bias")):
            data = permute(data, kv_heads)
        yield new_name, data


def permute(weights: np.ndarray, heads: int) -> np.ndarray:
    """Rows of a q or k projection from transformers' rope layout to llama.cpp's, head by head."""
    return (weights.reshape(heads, 2, weights.shape[0] // heads // 2, *weights.shape[1:])
            .swapaxes(1, 2).reshape(weights.shape))


def llama3_rope_factors(config: dict[str, Any], rope: dict[str, Any]) -> np.ndarray:
    """Llama 3.1's frequency factors (``rope_type: llama3``), as llama.cpp's converter computes them."""
    base = float(rope.get("rope_theta", 10000.0))
    dim = int(config.get("head_dim") or int(config["hidden_size"]) // int(config["num_attention_heads"]))
    factor = float(rope.get("factor", 8.0))
    low, high = float(rope.get("low_freq_factor", 1.0)), float(rope.get("high_freq_factor", 4.0))
    old = float(rope.get("original_max_position_embeddings", 8192))
    factors = []
    for freq in 1.0 / (base ** (np.arange(0, dim, 2, dtype=np.float32) / dim)):
        wavelen = 2 * math.pi / freq
        if wavelen < old / high:
            factors.append(1.0)
        elif wavelen > old / low:
            factors.append(factor)
        else:
            smooth = (old / wavelen - low) / (high - low)
            factors.append(1 / ((1 - smooth) / factor + smooth))
    return np.array(factors, dtype=np.float32)


def encode(name: str, data: np.ndarray, qtype: gguf.GGMLQuantizationType) -> tuple[np.ndarray, Any]:
    """The tensor's bytes in the file's type: F32 for 1-D tensors and norms, else ``qtype``
    (Q8_0 rows that are not whole blocks fall back to F16, as in llama.cpp's converter)."""
    if data.ndim <= 1 or name.endswith("_norm.weight") or not name.endswith(".weight"):
        return data.astype(np.float32), gguf.GGMLQuantizationType.F32
    try:
        return gguf.quants.quantize(data, qtype), qtype
    except gguf.QuantError:
        return gguf.quants.quantize(data, gguf.GGMLQuantizationType.F16), gguf.GGMLQuantizationType.F16


def write_vocab(writer: gguf.GGUFWriter, tokenizer_dir: Path, config: dict[str, Any]) -> None:
    """The tokenizer: byte-level BPE (``gpt2``) or byte-fallback BPE (``llama``), then the special
    tokens, merges and chat template through ``SpecialVocab``.

    Raises:
        GGUFError: a tokenizer kind or pre-tokenizer llama.cpp would not reproduce.
    """
    model = json.loads((tokenizer_dir / "tokenizer.json").read_text(encoding="utf-8")).get("model") or {}
    if model.get("type") != "BPE":
        raise GGUFError(f"GGUF export knows BPE tokenizers only, not {model.get('type')}")
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    if model.get("byte_fallback"):
        vocab = gguf.LlamaHfVocab(tokenizer_dir)
        tokens, scores, types = zip(*vocab.all_tokens())
        writer.add_tokenizer_model("llama")
        writer.add_tokenizer_pre("default")
        writer.add_token_list(list(tokens))
        writer.add_token_scores(list(scores))
        writer.add_token_types(list(types))
        special = gguf.SpecialVocab(tokenizer_dir, n_vocab=len(tokens))
    else:
        tokens, types, pre = bpe_vocab(tokenizer, int(config["vocab_size"]))
        writer.add_tokenizer_model("gpt2")
        writer.add_tokenizer_pre(pre)
        writer.add_token_list(tokens)
        writer.add_token_types(types)
        special = gguf.SpecialVocab(tokenizer_dir, load_merges=True)
    # Whether llama.cpp adds BOS/EOS when it tokenizes: what the tokenizer itself does, written
    # always (llama.cpp's default for a missing key differs by tokenizer kind).
    ids = tokenizer("a", add_special_tokens=True)["input_ids"]
    special.add_special_token["bos"] = tokenizer.bos_token_id is not None and ids[:1] == [tokenizer.bos_token_id]
    special.add_special_token["eos"] = tokenizer.eos_token_id is not None and ids[-1:] == [tokenizer.eos_token_id]
    special.add_to_gguf(writer, quiet=True)
    config_path = tokenizer_dir / "tokenizer_config.json"
    tokenizer_config = json.loads(config_path.read_text(encoding="utf-8")) if config_path.is_file() else {}
    if isinstance(tokenizer_config.get("add_prefix_space"), bool):  # as llama.cpp's LlamaModel.set_vocab
        writer.add_add_space_prefix(tokenizer_config["add_prefix_space"])


def bpe_vocab(tokenizer: Any, vocab_size: int) -> tuple[list[str], list[int], str]:
    """Tokens, their types and the pre-tokenizer name of a byte-level BPE (``get_vocab_base``)."""
    digest = sha256(str(tokenizer.encode(CHKTXT)).encode()).hexdigest()
    pre = PRE_TOKENIZERS.get(digest)
    if pre is None:
        raise GGUFError(f"GGUF export does not recognise this tokenizer's pre-tokenizer (hash {digest[:12]}…): "
                        f"llama.cpp would split text differently; supported families: {SUPPORTED}")
    reverse = {i: token for token, i in tokenizer.get_vocab().items()}
    added = tokenizer.get_added_vocab()
    decoder = tokenizer.added_tokens_decoder
    tokens: list[str] = []
    types: list[int] = []
    for i in range(vocab_size):
        token = reverse.get(i)
        if token is None:
            tokens.append(f"[PAD{i}]")
            types.append(gguf.TokenType.UNUSED)
            continue
        if token in added:
            if not decoder[i].normalized:  # llama.cpp assumes added tokens pre-normalised
                token = tokenizer.decode(tokenizer.encode(token, add_special_tokens=False))
            special = decoder[i].special or (token.startswith("<|") and token.endswith("|>"))
            types.append(gguf.TokenType.CONTROL if special else gguf.TokenType.USER_DEFINED)
        else:
            types.append(gguf.TokenType.NORMAL)
        tokens.append(token)
    return tokens, types, pre

