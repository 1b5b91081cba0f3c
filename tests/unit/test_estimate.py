"""The memory estimate against hand computation, and the trainable count against peft's own."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from engine.config import RunConfig
from engine.estimate.advice import what_to_change
from engine.estimate.memory import estimate, method_label
from engine.estimate.trainable import trainable_params
from engine.models.info import read_folder, read_model_info

_spec = importlib.util.spec_from_file_location("model_builders",
                                               Path(__file__).parents[1] / "fixtures/models/builders.py")
builders = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(builders)

MIB = 1024**2


@pytest.fixture
def tiny(tmp_path: Path):
    """TINY_LLAMA: h=8, i=16, V=32, 2 layers, 2 heads of 4, 1 key/value head, 1704 parameters."""
    return read_model_info(str(builders.make_model(tmp_path / "tiny")))


def _config(**sections) -> RunConfig:
    base = {"adapter": {"r": 2}, "train": {"batch_size": 2}, "data": {"cutoff_len": 8}}
    for name, values in sections.items():
        base[name] = {**base.get(name, {}), **values}
    return RunConfig.model_validate(base)


def test_lora_fp32_on_cpu_by_hand_on_the_plain_path(tiny) -> None:
    """peft's own dropout, the model's own loss and MLP (train.fused_lora_dropout, chunked_loss, lean_mlp off)."""
    est = estimate(tiny, _config(train={"fused_lora_dropout": False, "chunked_loss": False, "lean_mlp": False}),
                   device="cpu")
    # LoRA r=2 adds 2*(in+out) per linear: q 2*(8+8), k 2*(8+4), v 2*(8+4), o 2*(8+8),
    # gate 2*(8+16), up 2*(8+16), down 2*(16+8) = 256 a layer, 2 layers.
    trainable = 2 * (32 + 24 + 24 + 32 + 48 + 48 + 48)
    assert est.trainable_params == trainable == 512
    assert est.weights == 1704 * 4  # float32 on CPU
    assert est.adapter == est.gradients == 512 * 4  # peft keeps adapters in float32
    assert est.optimizer == 2 * 512 * 4  # AdamW: two moments
    # Activations, 2 x 8 = 16 tokens, float32. Per token per layer, in elements: SDPA keeps q, k, v
    # and its output 2*8 + 2*4, SwiGLU the gate, SiLU and up outputs 3*16 = 72; LoRA dropout gives
    # each of the 7 adapted layers its own copy of its input 6*8 + 16 = 64, and lora_A keeps r=2
    # outputs each = 14: 150 elements * 4 bytes. Plus bytes: RMSNorm keeps its two inputs as
    # float32 2*8*4 = 64, and the float dropout masks on CPU 64*4 = 256.
    layer = 16 * (150 * 4 + 64 + 256)
    loss = 16 * 32 * 12  # float32 log-probabilities, their gradient and the logits' gradient
    ends = 16 * 8 * 4  # the final norm's float32 input
    # The first layer's input needs no gradient (frozen embeddings): its first norm keeps nothing,
    # nor do the dropouts in front of q, k and v (3 float masks of 8).
    first = 16 * (8 * 4 + 3 * 8 * 4)
    assert est.activations == 2 * layer - first + loss + ends
    assert est.activations_other == 2 * 16 * 8 * 4 + layer + loss + ends  # checkpointed: inputs + one layer
    assert est.overhead == 512 * MIB
    # The peak holds the larger of the backward pass (activations) and the optimizer step
    # (gradients plus foreach AdamW's one temporary copy of the parameters).
    assert est.step_temp == 512 * 4
    assert est.total == 6816 + 2048 + 4096 + max(est.activations, 2048 + 2048) + 512 * MIB


def test_lora_fp32_on_cpu_by_hand_with_the_default_techniques(tiny) -> None:
    """The defaults: LoRA dropout fused (one input per shared tensor, bit-packed masks on CPU), chunked
    loss, the lean SwiGLU (gate and up kept; SiLU's output and the product re-formed in backward)."""
    est = estimate(tiny, _config(), device="cpu")
    # Per token per layer, in elements: SDPA 2*8 + 2*4 and SwiGLU 3*16 as on the plain path; the adapted
    # layers keep their inputs once per tensor read (q/k/v 8, gate/up 8, down 16 = 32; o_proj reads the
    # attention output, counted with SDPA's) and lora_A r=2 outputs each = 14: 118 elements * 4 bytes;
    # the lean SwiGLU keeps neither SiLU's output nor down's input (the product): 2*16 fewer, 86.
    # Plus bytes: the norms' float32 inputs 64 and a mask per adapted layer's input, 64 elements packed
    # eight to a byte on CPU (engine/recipes/lora_dropout.py): 8.
    layer = 16 * (86 * 4 + 64 + 8)
    checkpointed_layer = 16 * (118 * 4 + 64 + 8)  # under checkpointing the MLP is left as it is
    # The chunked loss keeps the hidden states' gradient (16 x 8 float32) and, while a chunk (all 16
    # tokens here) runs, its float32 logits and their exponentials (2 * 16 * 32 * 4).
    loss = 16 * 8 * 4 + 2 * 16 * 32 * 4
    ends = 16 * 8 * 4
    first = 16 * 8 * 4  # the first layer's first norm keeps nothing; its masks are kept (fused)
    assert est.activations == 2 * layer - first + loss + ends
    assert est.activations_other == 2 * 16 * 8 * 4 + checkpointed_layer + loss + ends
    plain = estimate(tiny, _config(train={"fused_lora_dropout": False, "chunked_loss": False}), device="cpu")
    assert est.activations < plain.activations


def test_quantized_weights_by_hand(tiny) -> None:
    linear = 2 * (64 + 32 + 32 + 64 + 3 * 128)  # 1152 weights in linear layers, 552 elsewhere
    rows = 2 * (8 + 4 + 4 + 8 + 16 + 16 + 8)  # output rows of those linears
    four = estimate(tiny, _config(quant={"mode": "4bit"}), device="cpu")
    assert four.weights == int(linear * (0.5 + 1 / 64 + 4 / (64 * 256))) + 552 * 4  # NF4, double quant
    single = estimate(tiny, _config(quant={"mode": "4bit", "double_quant": False}), device="cpu")
    assert single.weights == int(linear * (0.5 + 4 / 64)) + 552 * 4
    eight = estimate(tiny, _config(quant={"mode": "8bit"}), device="cpu")
    assert eight.weights == linear + rows * 4 + 552 * 4
    assert method_label(_config(quant={"mode": "4bit"})) == "QLoRA 4-bit"
    # On a GPU the rest of a LoRA model loads in bfloat16, but peft's prepare_model_for_kbit_training
    # casts the unquantized parameters of a quantized model to float32: still 552 * 4.
    gpu = estimate(tiny, _config(quant={"mode": "4bit"}), device="cuda")
    assert gpu.weights == four.weights
    assert estimate(tiny, _config(), device="cuda").weights == 1704 * 2


def test_prequantized_checkpoint_counts_as_quantized(tmp_path: Path) -> None:
    config = dict(builders.TINY_LLAMA, quantization_config={"quant_method": "bitsandbytes", "load_in_4bit": True})
    info = read_model_info(str(builders.make_model(tmp_path / "q4", config)))
    est = estimate(info, _config(), device="cpu")  # quant.mode none: the checkpoint decides
    assert est.weights == int(1152 * (0.5 + 1 / 64 + 4 / (64 * 256))) + 552 * 4
    assert "already quantized (bitsandbytes 4bit)" in est.notes[0]
    gptq = dict(builders.TINY_LLAMA, quantization_config={"quant_method": "gptq", "bits": 8})
    info8 = read_model_info(str(builders.make_model(tmp_path / "q8", gptq)))
    assert estimate(info8, _config(), device="cpu").weights == 1152 + 2 * 64 * 4 + 552 * 4


def test_full_bf16_on_cuda_by_hand(tiny) -> None:
    est = estimate(tiny, _config(adapter={"method": "full"}, train={"optimizer": "adamw_8bit"}), device="cuda")
    assert est.trainable_params == 1704 and est.adapter == 0
    # auto keeps float32 master weights for full fine-tuning, even on a GPU (engine.model.pick_dtype);
    # the activations are bfloat16 under mixed precision.
    assert est.dtype == "float32" and est.weights == est.gradients == 1704 * 4
    # bitsandbytes keeps 32-bit state for tensors under 4096 elements: all of these.
    assert est.optimizer == 1704 * 8
    # Full training keeps the inputs of the trained linears, once per shared input: attention 8
    # (q, k, v and o read 8-wide inputs of one block), gate/up 8, down 16; and the normalised
    # states for the norm weights 2*8. So 72 + 32 + 16 = 120 bf16 elements + 64 float32 norm bytes, less
    # the lean SwiGLU's SiLU output and product (2*16): 88.
    layer = 16 * (88 * 2 + 64)
    # After the last layer: the final norm's float32 input and normalised output, the head's bf16 input.
    # The chunked loss keeps the hidden states' bf16 gradient and the trained head's float32 gradient,
    # and holds one chunk of float32 logits and exponentials while it runs.
    loss = 16 * 8 * 2 + 32 * 8 * 4 + 2 * 16 * 32 * 4
    assert est.activations == 2 * layer + loss + 16 * 8 * (4 + 4 + 2)
    assert est.step_temp == 0  # bitsandbytes' 8-bit AdamW updates in place
    assert est.peak == 1704 * 4 + 1704 * 8 + max(1704 * 4, est.activations)
    assert est.overhead == 512 * MIB + int(0.05 * est.peak)
    assert method_label(_config(adapter={"method": "full"})) == "Full fine-tuning"


def test_full_peak_at_the_optimizer_step_by_hand(tiny) -> None:
    config = _config(adapter={"method": "full"}, train={"batch_size": 1})
    est = estimate(tiny, config, device="cpu")
    # 8 tokens, float32: per layer 8 * (88 * 4 + 64) bytes (the lean SwiGLU, as above), 2 layers; the chunked
    # loss 8*8*4 + 32*8*4 + 2*8*32*4; final norm 8*8*12.
    assert est.activations == 2 * 8 * (88 * 4 + 64) + 8 * 8 * 4 + 32 * 8 * 4 + 2 * 8 * 32 * 4 + 8 * 8 * 12 == 10752
    # The optimizer step holds gradients (1704 * 4) and one foreach temporary (1704 * 4): 13632 > 12544.
    assert est.peak == 1704 * 4 + 1704 * 8 + 1704 * 4 * 2


def test_advice_when_it_does_not_fit(tiny) -> None:
    config = _config(data={"cutoff_len": 1024})
    tips = what_to_change(estimate(tiny, config, device="cuda"), config, available=1)
    assert tips[0].startswith("train.gradient_checkpointing: true saves")
    assert any("quant.mode: 4bit" in tip for tip in tips) and any("cutoff_len" in tip for tip in tips)


def test_advice_says_what_each_change_needs_puts_what_fits_first_and_no_qlora_on_a_cpu(tiny) -> None:
    """The will-not-fit dialog offered QLoRA to a CPU run, and no tip said whether it would be enough."""
    config = _config(data={"cutoff_len": 1024}, train={"batch_size": 8})
    est = estimate(tiny, config, device="cpu")

    def estimate_of(changed):
        return estimate(tiny, changed, device="cpu")

    def needs(**update) -> int:
        section, fields = next(iter(update.items()))
        changed = config.model_copy(update={section: getattr(config, section).model_copy(update=fields)})
        return estimate_of(changed).total

    least = min(needs(train={"gradient_checkpointing": True}), needs(train={"batch_size": 4, "grad_accum": 2}),
                needs(data={"cutoff_len": 512}))
    tips = what_to_change(est, config, least, estimate_of)  # room for the most effective change only
    assert not any("4bit" in tip or "8bit" in tip for tip in tips)  # GPU-only features
    fits = [tip.endswith(", fits") for tip in tips]
    assert fits[0] and fits == sorted(fits, reverse=True)  # what fits on its own comes first
    assert all("→ needs" in tip for tip in tips) and any(tip.endswith("not enough alone") for tip in tips)


def test_unknown_model_cannot_be_estimated() -> None:
    with pytest.raises(ValueError, match="unknown until the model is downloaded"):
        estimate(read_model_info("org/not-downloaded"), RunConfig(), device="cuda")


@pytest.fixture(scope="module")
def smol_two_layers(tmp_path_factory: pytest.TempPathFactory, demo_model_dir: Path) -> Path:
    """SmolLM2's architecture cut to 2 layers (config and tokenizer only): the per-layer count is the same."""
    folder = tmp_path_factory.mktemp("smol-2-layers")
    config = json.loads((demo_model_dir / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "num_hidden_layers": 2}))
    (folder / "tokenizer.json").write_bytes((demo_model_dir / "tokenizer.json").read_bytes())
    return folder


@pytest.mark.parametrize(("method", "targets", "dropout", "lean"), [
    ("lora", "all-linear", 0.05, False), ("lora", ["q_proj", "v_proj"], 0.0, False), ("full", "all-linear", 0.0, False),
    ("lora", "all-linear", 0.05, True), ("full", "all-linear", 0.0, True)])
def test_activations_match_what_autograd_saves(smol_two_layers: Path, method: str, targets, dropout: float,
                                               lean: bool) -> None:
    """The per-layer count equals the tensors autograd keeps for backward (SmolLM2 layers, float32 on CPU).

    ``lean``: with the default techniques (fused LoRA dropout, chunked loss) put on the model as the
    recipe does; the loss is then small enough to compare whole.
    """
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoConfig, AutoModelForCausalLM

    from engine.estimate.memory import activations

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(smol_two_layers), dtype=torch.float32)
    model.config.use_cache = False
    if method == "full":
        model.requires_grad_(True)
    else:
        config = LoraConfig(r=8, target_modules=targets, lora_dropout=dropout, task_type="CAUSAL_LM")
        model = get_peft_model(model, config)
    if lean:
        from engine.recipes.lora_dropout import fuse_lora_dropout
        from engine.recipes.loss import use_chunked_loss

        fuse_lora_dropout(model)
        assert use_chunked_loss(model)
    model.train()
    params = {p.untyped_storage().data_ptr() for p in model.parameters()}
    saved: dict[int, int] = {}

    def pack(tensor):
        storage = tensor.untyped_storage()
        if storage.data_ptr() not in params:
            saved[storage.data_ptr()] = storage.nbytes()
        return tensor

    ids = torch.randint(0, 1000, (1, 64), generator=torch.Generator().manual_seed(0))
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        model(input_ids=ids, labels=ids)
    info = read_folder(smol_two_layers)
    adapter = {"method": method, "r": 8, "target_modules": targets, "dropout": dropout}
    logits = 64 * info.vocab_size
    # Compare without the loss (its 12 bytes a logit hold 4 saved for backward; the vocabulary of
    # 49,152 would otherwise swamp the two layers).
    if lean:  # all but the chunk of logits, which lives only while the loss runs
        estimated = activations(info, adapter, 1, 64, 4, checkpointing=False, mask_bytes=4, fused_dropout=True,
                                chunked_loss=True) - 2 * logits * 4
        measured = sum(saved.values())
    else:
        estimated = activations(info, adapter, 1, 64, 4, checkpointing=False, mask_bytes=4) - logits * 12
        measured = sum(saved.values()) - logits * 4
    print(f"{method} {targets} dropout {dropout}: estimated {estimated:,} measured {measured:,}")
    assert abs(estimated - measured) / measured < 0.03


def _peft_count(model, target_modules, method: str = "lora") -> tuple[int, int]:
    from peft import LoraConfig, get_peft_model

    config = LoraConfig(r=8, target_modules=target_modules, use_dora=method == "dora", task_type="CAUSAL_LM")
    return get_peft_model(model, config).get_nb_trainable_parameters()


@pytest.mark.parametrize("targets", ["all-linear", ["q_proj", "v_proj"]])
def test_trainable_equals_peft_on_tiny_model(tiny_model_dir: Path, targets) -> None:
    from transformers import AutoModelForCausalLM

    info = read_folder(tiny_model_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    assert info.params_total == model.num_parameters()
    assert trainable_params(info, {"method": "full"}) == model.num_parameters()
    trainable, _total = _peft_count(model, targets)
    assert trainable_params(info, {"method": "lora", "r": 8, "target_modules": targets}) == trainable


@pytest.mark.parametrize(("targets", "method"), [("all-linear", "lora"), (["q_proj", "v_proj"], "lora"),
                                                 ("all-linear", "dora")])
def test_trainable_equals_peft_on_demo_config(demo_model_dir: Path, targets, method: str) -> None:
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    info = read_model_info("smollm2-135m-instruct")
    with torch.device("meta"):  # the real architecture, without allocating its weights
        model = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(demo_model_dir))
    assert info.params_total == model.num_parameters() == 134_515_008
    trainable, _total = _peft_count(model, targets, method)
    assert trainable_params(info, {"method": method, "r": 8, "target_modules": targets}) == trainable
    assert json.loads((demo_model_dir / "config.json").read_text())["num_hidden_layers"] == info.num_layers


def test_cli_prints_breakdown_and_verdict(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from tuitune.__main__ import main

    folder = builders.make_model(tmp_path / "tiny")
    assert main(["estimate", "--model", str(folder), "--preset", "qlora-4bit"]) == 0
    out = capsys.readouterr().out
    assert "method    QLoRA 4-bit" in out and "trainable " in out
    for term in ("weights", "adapter", "gradients", "optimizer", "activations", "overhead", "total"):
        assert f"\n  {term}" in out
    assert "fits " in out and ("GPU 0" in out or "GPUs      none (" in out)


def test_cli_says_when_it_will_not_fit(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from tuitune.__main__ import main

    # a huge vocabulary (the chunked loss never holds it whole)
    config = dict(builders.TINY_LLAMA, vocab_size=4_000_000)
    folder = builders.make_model(tmp_path / "big", config, weights=False)
    run = tmp_path / "run.yaml"
    run.write_text("data:\n  cutoff_len: 1000000\ntrain:\n  batch_size: 1024\n")  # activations alone need TiBs
    assert main(["estimate", "--model", str(folder), str(run)]) == 3
    out = capsys.readouterr().out
    assert "WILL NOT FIT: needs" in out and "  - halve train.batch_size" in out


def test_cli_errors_name_the_problem(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from tuitune.__main__ import main

    assert main(["estimate", "--model", str(tmp_path)]) == 1
    assert "no config.json" in capsys.readouterr().err
    bad = tmp_path / "bad.yaml"
    bad.write_text("train:\n  batch_size: 0\n")
    assert main(["estimate", str(bad)]) == 1
    assert "bad.yaml:2:15 train.batch_size" in capsys.readouterr().err
    assert main(["estimate", "--model", "org/not-downloaded"]) == 1  # the Hub is asked, and offline says so
    assert "org/not-downloaded is not on this machine and HF_HUB_OFFLINE is set" in capsys.readouterr().err


def test_an_rl_step_counts_every_answer_of_every_prompt_at_prompt_plus_answer_length(tiny) -> None:
    """GRPO's defaults were estimated as SFT's batch of prompts (2.7 GiB for 5.6 GiB measured on the demo)."""
    rl = _config(rl={"num_generations": 3, "max_completion_length": 4})
    rl = RunConfig.model_validate({**rl.model_dump(), "stage": "grpo"})
    as_sft = _config(train={"batch_size": 2 * 3}, data={"cutoff_len": 8 + 4})
    for device in ("cpu", "cuda"):
        assert estimate(tiny, rl, device=device).activations == estimate(tiny, as_sft, device=device).activations
    defaults = RunConfig.model_validate({**rl.model_dump(), "stage": "rloo", "rl": {}})
    cpu_like = _config(train={"batch_size": 2 * 4}, data={"cutoff_len": 8 + 32})
    assert estimate(tiny, defaults, device="cpu").activations == estimate(tiny, cpu_like, device="cpu").activations
    assert "answered 4 times" in " ".join(estimate(tiny, defaults, device="cpu").notes)
