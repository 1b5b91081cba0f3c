"""Each speed technique gives the plain computation's losses and adapter gradients (tiny model, in process).

The plain computation is what a transformers Trainer does by default: padded batches with an
attention mask, peft's LoRA dropout, the model's own loss over the whole logits.
"""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch

from engine.data.encode import IGNORE_INDEX, Encoded
from engine.recipes.attention import use_record_attention
from engine.recipes.datasets import FlatCollator, PadCollator, pack_records
from engine.recipes.lora_dropout import DropoutLinear, fuse_lora_dropout, keep_mask
from engine.recipes.loss import LinearCrossEntropy, use_chunked_loss

LENGTHS = [(11, 4), (23, 9), (6, 3), (17, 10)]
"""(tokens, trained tokens at the end) of the four records of a batch: uneven, so padding matters."""


def _records() -> list[Encoded]:
    generator = torch.Generator().manual_seed(1)
    records = []
    for length, trained in LENGTHS:
        ids = torch.randint(3, 400, (length,), generator=generator).tolist()
        labels = [IGNORE_INDEX] * (length - trained) + ids[length - trained:]
        records.append(Encoded(ids, labels, truncated=False, full_length=length))
    return records


def _features(records: list[Encoded]) -> list[dict]:
    return [{"input_ids": r.input_ids, "labels": r.labels} for r in records]


def _lora(tiny_model_dir: Path, dropout: float = 0.0, method: str = "lora", attention: str = "sdpa",
          dtype: torch.dtype = torch.float32):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=dtype)
    model.config.use_cache = False
    if attention == "records":
        assert use_record_attention(model)
    if method == "full":
        return model.requires_grad_(True).train()
    torch.manual_seed(0)
    config = LoraConfig(task_type="CAUSAL_LM", r=4, lora_alpha=8, lora_dropout=dropout, target_modules="all-linear",
                        init_lora_weights=False,  # random B too, so every adapter weight has a gradient
                        use_dora=method == "dora")
    return get_peft_model(model, config).train()


def _step(model, batch: dict, seed: int = 0,
          autocast: torch.dtype | None = None) -> tuple[float, dict[str, torch.Tensor]]:
    """Loss and trainable gradients of one forward/backward, normalised as the Trainer does (its forward under
    ``autocast`` when given, as the Trainer runs mixed precision)."""
    model.zero_grad()
    torch.manual_seed(seed)
    count = (batch["labels"][..., 1:] != IGNORE_INDEX).sum()
    with torch.autocast("cpu", dtype=autocast or torch.bfloat16, enabled=autocast is not None):
        loss = model(**batch, num_items_in_batch=count).loss
    loss.backward()
    return loss.item(), {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad}


def _assert_same(plain, other, rtol: float = 1e-5, atol: float = 1e-6) -> None:
    (loss_a, grads_a), (loss_b, grads_b) = plain, other
    assert loss_b == pytest.approx(loss_a, rel=1e-6, abs=1e-6)
    assert grads_a.keys() == grads_b.keys() and grads_a
    for name, grad in grads_a.items():
        torch.testing.assert_close(grads_b[name], grad, rtol=rtol, atol=atol, msg=name)


@pytest.mark.parametrize("attention", ["sdpa", "records"])
def test_padding_free_batch_equals_padded_batch(tiny_model_dir: Path, attention: str) -> None:
    """With transformers' sdpa (block-diagonal mask from the position ids) and with attention per record."""
    model = _lora(tiny_model_dir, attention=attention)
    padded = PadCollator(pad_token_id=0)(_features(_records()))
    flat = FlatCollator()(_features(_records()))
    assert flat["input_ids"].shape == (1, sum(n for n, _ in LENGTHS)) and "attention_mask" not in flat
    assert flat["position_ids"][0, :12].tolist() == list(range(11)) + [0]
    assert int((flat["labels"][..., 1:] != IGNORE_INDEX).sum()) == int(
        (padded["labels"][..., 1:] != IGNORE_INDEX).sum())
    _assert_same(_step(model, padded), _step(model, flat))


@pytest.mark.parametrize("attention", ["sdpa", "records"])
def test_packed_record_cannot_see_another(tiny_model_dir: Path, attention: str) -> None:
    """Perturbing record A's tokens leaves the logits of record B, packed after it, unchanged."""
    model = _lora(tiny_model_dir, attention=attention).eval()
    first, second = _records()[:2]
    rows = pack_records([first, second], cutoff_len=64)
    assert len(rows["input_ids"]) == 1 and rows["position_ids"][0] == list(range(11)) + list(range(23))
    changed = Encoded([(t * 7 + 1) % 400 + 3 for t in first.input_ids], first.labels, False, 11)
    batches = [FlatCollator()([{k: v[0] for k, v in pack_records([a, second], 64).items()}]) for a in (first, changed)]
    with torch.no_grad():
        logits = [model(input_ids=b["input_ids"], position_ids=b["position_ids"]).logits[0] for b in batches]
        alone = model(input_ids=torch.tensor([second.input_ids])).logits[0]
    assert not torch.allclose(logits[0][:11], logits[1][:11])  # the perturbation did change record A
    torch.testing.assert_close(logits[0][11:], logits[1][11:], rtol=0, atol=0)
    torch.testing.assert_close(logits[0][11:], alone, rtol=1e-5, atol=1e-5)  # as if B were trained alone


def test_packed_training_equals_records_trained_alone(tiny_model_dir: Path) -> None:
    model = _lora(tiny_model_dir, attention="records")
    packed = pack_records(_records(), cutoff_len=40)
    assert [len(ids) for ids in packed["input_ids"]] == [40, 17]  # 11+23+6 | 17
    rows = [{k: v[i] for k, v in packed.items()} for i in range(2)]
    _assert_same(_step(model, PadCollator(0)(_features(_records()))), _step(model, FlatCollator()(rows)))


@pytest.mark.parametrize("method", ["lora", "full"])
def test_chunked_loss_equals_the_models_own(tiny_model_dir: Path, method: str, monkeypatch) -> None:
    """Same loss and gradients, also for a trained (tied) output head, over several chunks."""
    monkeypatch.setattr("engine.recipes.loss.chunk_rows_for", lambda vocab: 5)
    plain = _lora(tiny_model_dir, method=method)
    chunked = copy.deepcopy(plain)
    assert use_chunked_loss(chunked)
    batch = PadCollator(0)(_features(_records()))
    result = _step(chunked, batch)
    _assert_same(_step(plain, batch), result)
    if method == "full":
        assert "model.embed_tokens.weight" in result[1]  # the tied head's gradient reached the embeddings
    assert chunked(input_ids=batch["input_ids"]).logits.shape[-1] == plain.config.vocab_size  # no labels: plain


def test_linear_cross_entropy_function_against_autograd() -> None:
    generator = torch.Generator().manual_seed(0)
    hidden = torch.randn(13, 8, generator=generator, requires_grad=True)
    weight = torch.randn(50, 8, generator=generator, requires_grad=True)
    bias = torch.randn(50, generator=generator, requires_grad=True)
    targets = torch.randint(0, 50, (13,), generator=generator)
    ours = LinearCrossEntropy.apply(hidden, weight, bias, targets, 4) * 0.5
    ours.backward()
    mine = [t.grad.clone() for t in (hidden, weight, bias)]
    for t in (hidden, weight, bias):
        t.grad = None
    reference = torch.nn.functional.cross_entropy(hidden @ weight.T + bias, targets, reduction="sum") * 0.5
    reference.backward()
    torch.testing.assert_close(ours, reference)
    for got, want in zip(mine, (hidden.grad, weight.grad, bias.grad)):
        torch.testing.assert_close(got, want)


class _KeepMaskDropout(torch.nn.Module):
    """peft's dropout as F.dropout computes it, with its mask drawn as the fused layer draws it on CPU."""

    def __init__(self, p: float) -> None:
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * keep_mask(x.shape, self.p).to(x.dtype) / (1 - self.p)


def test_fused_lora_dropout_equals_peft_dropout_with_the_same_masks(tiny_model_dir: Path) -> None:
    plain = _lora(tiny_model_dir, dropout=0.3)
    fused = copy.deepcopy(plain)
    for module in plain.modules():  # peft's own path, its masks drawn in the same order from the same seed
        if isinstance(getattr(module, "lora_dropout", None), torch.nn.ModuleDict):
            for name, dropout in module.lora_dropout.items():
                module.lora_dropout[name] = _KeepMaskDropout(dropout.p)
    assert fuse_lora_dropout(fused) == 2 * 7
    assert fused.state_dict().keys() == plain.state_dict().keys()
    batch = FlatCollator()(_features(_records()))
    # The 1/(1-p) scale is applied to the rank-wide output instead of the input: float32 rounds in
    # another order (one thread: 2.3e-6 on a gradient whose largest element is 0.29).
    _assert_same(_step(plain, batch, seed=3), _step(fused, batch, seed=3), atol=1e-5)
    # another seed, other masks: the check above can tell masks apart
    assert _step(fused, batch, seed=4)[0] != pytest.approx(_step(plain, batch, seed=3)[0], rel=1e-6)
    fused.eval()  # no dropout outside training
    layer = next(m for m in fused.modules() if isinstance(m, DropoutLinear))
    x = torch.randn(3, layer.in_features)
    torch.testing.assert_close(layer(x), x @ layer.weight.T)


def test_under_bf16_autocast_fused_layers_take_the_bf16_input_not_a_float32_copy(tiny_model_dir: Path) -> None:
    """peft casts each adapted layer's input to the adapter's float32 (a full-width copy that lora_A keeps for
    backward), for autocast to cast it back to bf16; fused layers take it as it comes, to the same bits."""
    fused = _lora(tiny_model_dir, dropout=0.3, dtype=torch.bfloat16)
    assert {p.dtype for p in fused.parameters() if p.requires_grad} == {torch.float32}  # peft's float32 adapters
    assert fuse_lora_dropout(fused) == 2 * 7
    cast = copy.deepcopy(fused)  # the fused layers with peft's cast left on, as they ran before
    for module in cast.modules():
        if hasattr(module, "cast_input_dtype_enabled"):
            module.cast_input_dtype_enabled = True
    taken: dict[str, list[torch.dtype]] = {"fused": [], "cast": []}
    for name, model in (("fused", fused), ("cast", cast)):
        for layer in (m for m in model.modules() if isinstance(m, DropoutLinear)):
            layer.register_forward_pre_hook(lambda _, args, seen=taken[name]: seen.append(args[0].dtype))
    batch = FlatCollator()(_features(_records()))
    mixed = torch.bfloat16
    _assert_same(_step(cast, batch, seed=3, autocast=mixed), _step(fused, batch, seed=3, autocast=mixed))
    assert taken == {"fused": [torch.bfloat16] * 14, "cast": [torch.float32] * 14}
    # without autocast a fused layer casts its input to float32 itself, as peft did
    _assert_same(_step(cast, batch, seed=3), _step(fused, batch, seed=3))


def test_the_keep_mask_keeps_1_minus_p_independently_and_follows_torchs_seed() -> None:
    shape = torch.Size([512, 2048])
    torch.manual_seed(0)
    first, second = keep_mask(shape, 0.05), keep_mask(shape, 0.05)
    sigma = (0.95 * 0.05 / shape.numel()) ** 0.5
    assert abs(first.double().mean().item() - 0.95) < 5 * sigma
    assert abs((first & second).double().mean().item() - 0.95**2) < 5 * sigma  # two masks, independent
    assert abs(first[:, 1:].eq(first[:, :-1]).double().mean().item() - (0.95**2 + 0.05**2)) < 5 * sigma
    torch.manual_seed(0)  # what a resume restores: the same masks again
    assert torch.equal(keep_mask(shape, 0.05), first) and torch.equal(keep_mask(shape, 0.05), second)
    assert keep_mask(torch.Size([4, 4]), 0.5).dtype == torch.bool


def test_dora_keeps_its_own_dropout(tiny_model_dir: Path) -> None:
    assert fuse_lora_dropout(_lora(tiny_model_dir, dropout=0.1, method="dora")) == 0


def test_models_not_known_to_keep_records_apart_get_padded_batches() -> None:
    from types import SimpleNamespace

    from engine.config import RunConfig
    from engine.recipes.techniques import collator

    config = RunConfig()
    known = SimpleNamespace(config=SimpleNamespace(model_type="qwen2", _attn_implementation="sdpa"))
    remote = SimpleNamespace(config=SimpleNamespace(model_type="my_remote_arch", _attn_implementation="sdpa"))
    flash = SimpleNamespace(config=SimpleNamespace(model_type="my_remote_arch",
                                                   _attn_implementation="flash_attention_2"))
    assert isinstance(collator(known, config, 0, cuda=False), FlatCollator)
    assert isinstance(collator(flash, config, 0, cuda=False), FlatCollator)
    assert isinstance(collator(remote, config, 0, cuda=False), PadCollator)
    off = RunConfig.model_validate({"data": {"padding_free": False}})
    assert isinstance(collator(known, off, 0, cuda=False), PadCollator)


@pytest.mark.parametrize("dropout", [0.0, 0.3])
def test_lean_mlp_equals_the_plain_mlp(tiny_model_dir: Path, dropout: float, monkeypatch) -> None:
    """Same loss and gradients, bit for bit, with peft's dropout and with the fused one; the product is not kept."""
    from engine.recipes import mlp

    plain = _lora(tiny_model_dir, dropout=dropout)
    fuse_lora_dropout(plain)
    lean = copy.deepcopy(plain)
    assert mlp.use_lean_mlp(lean) == 2
    given_up = []
    monkeypatch.setattr(mlp._Product, "tensor", lambda self, f=mlp._Product.tensor: given_up.append(1) or f(self))
    batch = FlatCollator()(_features(_records()))
    _assert_same(_step(plain, batch, seed=3), _step(lean, batch, seed=3), rtol=0)
    assert len(given_up) == 2  # down_proj's lora_A kept a note instead of the product, in each layer
    with torch.no_grad():  # generation and evaluation: the plain forward
        torch.testing.assert_close(lean.eval()(**batch).logits, plain.eval()(**batch).logits, rtol=0, atol=0)


def test_swiglu_function_against_autograd() -> None:
    from engine.recipes.mlp import SwiGLU

    generator = torch.Generator().manual_seed(0)
    gate, up = (torch.randn(5, 7, generator=generator, requires_grad=True) for _ in range(2))
    grad = torch.randn(5, 7, generator=generator)
    (SwiGLU.apply(gate, up) * grad).sum().backward()
    mine = gate.grad.clone(), up.grad.clone()
    gate.grad = up.grad = None
    (torch.nn.functional.silu(gate) * up * grad).sum().backward()
    torch.testing.assert_close(mine, (gate.grad, up.grad), rtol=0, atol=0)


def test_techniques_leave_the_mlp_alone_under_gradient_checkpointing() -> None:
    from engine.config import RunConfig
    from engine.recipes.techniques import lean_mlp

    assert lean_mlp(RunConfig())
    assert not lean_mlp(RunConfig.model_validate({"train": {"gradient_checkpointing": True}}))


def test_freed_memory_goes_back_to_the_system() -> None:
    """glibc accepts the fixed mmap threshold (this project runs on Linux with glibc)."""
    from engine.machine.allocator import return_freed_memory

    assert return_freed_memory()


def test_dropout_mask_packed_to_bits_comes_back_whole() -> None:
    """Eight mask elements a byte on CPU, in logical order, also from a transposed (non-contiguous) mask."""
    from engine.recipes.lora_dropout import pack_mask, unpack_mask

    generator = torch.Generator().manual_seed(0)
    for mask in (torch.rand(3, 7, 13, generator=generator) < 0.9, (torch.rand(13, 7, generator=generator) < 0.5).t()):
        packed = pack_mask(mask)
        assert packed.dtype == torch.uint8 and packed.numel() == -(-mask.numel() // 8)
        assert torch.equal(unpack_mask(packed, mask.shape), mask)


def test_a_quantized_model_lets_go_of_its_weights_file(tiny_model_dir: Path) -> None:
    """The embeddings and norms no longer point into the mapped safetensors file, so the file's pages
    (the full-precision weights bitsandbytes has packed) leave the process; their values are unchanged."""
    from safetensors.torch import load_file

    from engine.config import RunConfig
    from engine.models.loading import load_model

    weights = next(tiny_model_dir.glob("*.safetensors")).resolve()
    config = RunConfig.model_validate({"model": {"name_or_path": str(tiny_model_dir)}, "quant": {"mode": "4bit"}})
    model = load_model(config, str(tiny_model_dir))
    assert any(type(p).__name__ == "Params4bit" for p in model.parameters())
    assert str(weights) not in Path("/proc/self/maps").read_text()
    stored = load_file(weights)
    assert torch.equal(model.get_input_embeddings().weight, stored["model.embed_tokens.weight"])
    assert torch.equal(model.model.norm.weight, stored["model.norm.weight"])
