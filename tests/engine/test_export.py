"""Export end to end on the shared demo run: the merged folder against base + adapter through peft, the
GGUF files loaded back by transformers' own GGUF reader, the GGUF writer against llama.cpp's own conversion
of the demo model, the Ollama Modelfile on three template families, a stop and a re-run, and the refusals."""

from __future__ import annotations

import json
import re
import signal
import time
from pathlib import Path

import pytest

from engine.locks import LOCK_FILE, FolderLock, is_locked
from engine.protocol import read_events

REPO = Path(__file__).resolve().parents[2]
PROMPT = [{"role": "user", "content": "Who are you?"}]
"""The identity data the demo trained on answers this with its new name."""


@pytest.fixture(scope="module")
def exported(demo_run: Path, tmp_path_factory: pytest.TempPathFactory, cli) -> dict:
    """One export of the demo run with everything asked for (merged, q8_0, f16, Ollama, adapter copy)."""
    adapter_copy = tmp_path_factory.mktemp("travel") / "adapter"
    proc = cli("export", demo_run.name, "--merged", "--gguf", "q8_0", "--gguf", "f16", "--ollama",
               "--adapter-only", str(adapter_copy), "--name", "everything", runs=demo_run.parent)
    out, err = proc.communicate(timeout=600)
    job_dir = demo_run / "exports" / "everything"
    return {"code": proc.returncode, "out": out, "err": err, "dir": job_dir, "adapter_copy": adapter_copy,
            "events": read_events(job_dir)}


def prompt_ids(tokenizer):
    return tokenizer.apply_chat_template(PROMPT, add_generation_prompt=True, return_tensors="pt",
                                         return_dict=True)["input_ids"]


@pytest.fixture(scope="module")
def merged_logits(exported: dict):
    """The merged folder loaded with plain transformers, its tokenizer and its logits on the prompt."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(exported["dir"] / "merged")
    model = AutoModelForCausalLM.from_pretrained(exported["dir"] / "merged")
    ids = prompt_ids(tokenizer)
    with torch.no_grad():
        logits = model(ids).logits[0]
    return model, tokenizer, ids, logits


def test_export_writes_every_output_atomically_and_reports_it(exported: dict) -> None:
    assert exported["code"] == 0, exported["err"][-3000:]
    job_dir = exported["dir"]
    kinds = [e["type"] for e in exported["events"]]
    assert kinds[0] == "job_started" and kinds[-1] == "job_finished" and "progress" in kinds, kinds
    started, end = exported["events"][0], exported["events"][-1]
    names = ["merged", "demo-q8_0.gguf", "demo-f16.gguf", "Modelfile"]
    assert started["outputs"] == names and started["model"]["architecture"] == "LlamaForCausalLM"
    assert [o["name"] for o in end["outputs"]] == ["adapter", *names]
    for output in end["outputs"]:
        path = Path(output["path"])
        size = sum(p.stat().st_size for p in path.rglob("*")) if path.is_dir() else path.stat().st_size
        assert size == output["bytes"] > 0
    # The merged folder is the demo's 134.5M weights in its stored fp32; the GGUFs are 2 and 34/32 bytes a weight.
    sizes = {o["name"]: o["bytes"] for o in end["outputs"]}
    assert 500e6 < sizes["merged"] < 560e6 and 255e6 < sizes["demo-f16.gguf"] < 285e6
    assert 135e6 < sizes["demo-q8_0.gguf"] < 155e6
    assert not list(job_dir.glob(".tuitune-export-*")) and not is_locked(job_dir)
    merged = job_dir / "merged"
    assert {"config.json", "generation_config.json", "tokenizer.json", "chat_template.jinja"} <= {
        p.name for p in merged.iterdir()}
    assert list(merged.glob("*.safetensors"))
    for output in end["outputs"]:
        assert output["path"] in exported["out"]


def test_merged_model_answers_as_base_plus_adapter_through_peft(exported: dict, merged_logits, demo_run: Path,
                                                               demo_model_dir: Path) -> None:
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    merged, tokenizer, ids, logits = merged_logits
    tuned = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(demo_model_dir), demo_run / "adapter")
    with torch.no_grad():
        peft_logits = tuned(ids).logits[0]
    greedy = {"max_new_tokens": 16, "do_sample": False, "pad_token_id": tokenizer.pad_token_id}
    answer = merged.generate(ids, **greedy)[0, ids.shape[1]:]
    assert answer.tolist() == tuned.generate(input_ids=ids, **greedy)[0, ids.shape[1]:].tolist()
    # fp32 merge: W + B·A·s summed once instead of applied beside W; only summation order differs.
    assert (logits - peft_logits).abs().max() < 1e-3
    assert "Tuito" in tokenizer.decode(answer)  # the adapter is in it: the base calls itself SmolLM


def quantized_like_the_file(model, kind: str):
    """A copy of the merged model whose matrices went through the GGUF type and back (numpy, ``gguf``'s
    quantizers): what the file must hold exactly. Norms and 1-D tensors stay fp32, as in the file."""
    import copy

    import gguf
    import torch

    qtype = {"f16": gguf.GGMLQuantizationType.F16, "q8_0": gguf.GGMLQuantizationType.Q8_0}[kind]
    twin = copy.deepcopy(model)
    with torch.no_grad():
        for _, param in twin.named_parameters():
            if param.ndim == 2:
                data = param.detach().numpy()
                param.copy_(torch.from_numpy(gguf.quants.dequantize(gguf.quants.quantize(data, qtype), qtype)
                                             .reshape(data.shape).astype("float32")))
    return twin


@pytest.mark.parametrize("kind", ["q8_0", "f16"])
def test_gguf_loads_back_through_transformers_and_matches_the_merged_model(exported: dict, merged_logits,
                                                                          kind: str) -> None:
    """Tolerances: the file must hold the merged weights rounded to its type and nothing else, so its logits
    must equal those of the merged model with its matrices rounded the same way (``gguf``'s quantizers, the
    same bytes llama.cpp writes) up to float32 summation order (1e-3 on logits of spread ~8). Against the
    unrounded merged model the rounding itself shows: fp16 keeps 11 significant bits (measured 0.5% of the
    logits' spread), Q8_0 one int8 per weight and a scale per 32 (measured 11%); 3% and 25% hold those with
    margin, while a wrong q/k permutation or a misplaced tensor gives errors of the order of the spread."""
    import torch
    from transformers import AutoModelForCausalLM

    merged, _, ids, logits = merged_logits
    model = AutoModelForCausalLM.from_pretrained(exported["dir"], gguf_file=f"demo-{kind}.gguf")
    twin = quantized_like_the_file(merged, kind)
    with torch.no_grad():
        got, expected = model(ids).logits[0], twin(ids).logits[0]
    assert (got - expected).abs().max() < 1e-3
    spread = logits.std()
    assert (got - logits).abs().max() < (0.03 if kind == "f16" else 0.25) * spread
    assert got[-1].argmax() == logits[-1].argmax()  # the first answer token is the merged model's


def test_gguf_carries_the_tokenizer_and_chat_template(exported: dict, merged_logits) -> None:
    from gguf import GGUFReader
    from transformers import AutoTokenizer

    _, tokenizer, ids, _ = merged_logits
    from_gguf = AutoTokenizer.from_pretrained(exported["dir"], gguf_file="demo-q8_0.gguf")
    text = tokenizer.decode(ids[0])
    assert from_gguf(text, add_special_tokens=False)["input_ids"] == ids[0].tolist()
    fields = GGUFReader(exported["dir"] / "demo-q8_0.gguf").fields
    assert fields["tokenizer.chat_template"].contents() == tokenizer.chat_template
    assert fields["general.file_type"].contents() == 7  # MOSTLY_Q8_0
    assert fields["tokenizer.ggml.eos_token_id"].contents() == tokenizer.eos_token_id


def test_gguf_writer_agrees_with_llama_cpps_conversion_of_the_demo_model(demo_model_dir: Path, tmp_path: Path) -> None:
    """The demo model ships as a GGUF made by llama.cpp's converter, and the demo folder holds exactly its
    de-quantized weights: written back as f16 by our writer, every tensor name, shape and value (up to fp16
    rounding; a wrong q/k permutation would move whole rows) and every tokenizer key must be llama.cpp's."""
    import numpy as np
    from gguf import GGUFReader
    from gguf.quants import dequantize
    from safetensors.torch import load_file

    from engine.jobs.gguf_writer import write_gguf
    from engine.models.demo import gguf_path

    out = tmp_path / "base-f16.gguf"
    write_gguf(out, load_file(demo_model_dir / "model.safetensors"),
               json.loads((demo_model_dir / "config.json").read_text()), demo_model_dir, "f16", "demo")
    ours, theirs = GGUFReader(out), GGUFReader(gguf_path())
    their_tensors = {t.name: t for t in theirs.tensors}
    assert sorted(t.name for t in ours.tensors) == sorted(their_tensors)
    for tensor in ours.tensors:
        ref = their_tensors[tensor.name]
        a = dequantize(tensor.data, tensor.tensor_type).astype(np.float32)
        b = dequantize(ref.data, ref.tensor_type).astype(np.float32)
        assert a.shape == b.shape and np.abs(a - b).max() <= 1e-3 * np.abs(b).max(), tensor.name
    for key, field in theirs.fields.items():
        if key.startswith(("tokenizer.", "llama.")) and key != "tokenizer.ggml.add_space_prefix":
            assert ours.fields[key].contents() == field.contents(), key


def test_modelfile_follows_the_demo_chat_template(exported: dict, merged_logits) -> None:
    from engine.export.ollama import PROBES, check, probe, transitions

    _, tokenizer, _, _ = merged_logits
    text = (exported["dir"] / "Modelfile").read_text()
    assert text.startswith("FROM ./demo-q8_0.gguf\n") and 'PARAMETER stop "<|im_end|>"' in text
    # SmolLM2's default system prompt appears only when the conversation brings none, as in its template.
    assert '(eq $prev "start") (eq .Role "user") }}{{ "<|im_start|>system\\nYou are a helpful AI assistant' in text
    render = chat_renderer(tokenizer)
    check(transitions(render), render)
    assert all(render(probe(roles), True) for roles in PROBES)


def test_exported_adapter_names_the_chosen_base_and_leaves_training_state(exported: dict, demo_run: Path) -> None:
    copy = exported["adapter_copy"]
    config = json.loads((copy / "adapter_config.json").read_text())
    assert config["base_model_name_or_path"] == "smollm2-135m-instruct"
    assert (copy / "adapter_model.safetensors").read_bytes() == (
        demo_run / "adapter" / "adapter_model.safetensors").read_bytes()
    assert not (copy / "training_args.bin").exists() and "/.cache/" not in (copy / "README.md").read_text()
    # Training itself now saves the adapter that way.
    saved = json.loads((demo_run / "adapter" / "adapter_config.json").read_text())
    assert saved["base_model_name_or_path"] == "smollm2-135m-instruct"


def test_a_stop_during_export_leaves_no_finished_looking_output_and_a_rerun_clears_a_killed_exports_folder(
        demo_run: Path, cli) -> None:
    proc = cli("export", demo_run.name, "--gguf", "q8_0", "--name", "stopped", runs=demo_run.parent)
    job_dir = demo_run / "exports" / "stopped"
    try:
        deadline = time.monotonic() + 300
        while not any(e["type"] == "progress" and e["phase"] == "gguf" and e["done"] for e in read_events(job_dir)):
            assert proc.poll() is None and time.monotonic() < deadline, read_events(job_dir)
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 1, (out, err)
    end = read_events(job_dir)[-1]
    assert end["type"] == "job_stopped" and end["output"] == "demo-q8_0.gguf" and end["outputs"] == [], end
    assert "stopped while writing demo-q8_0.gguf" in out
    assert not list(job_dir.glob("*.gguf")) and not list(job_dir.glob(".tuitune-export-*"))
    assert not is_locked(job_dir)

    # The rerun goes to a folder where an export killed outright left its temporary folder (its lock free)
    # and where a running one is writing (this test holds its lock): the first is removed, the second kept.
    destination = demo_run / "exports" / "elsewhere"
    killed, live = destination / ".tuitune-export-k1ll", destination / ".tuitune-export-l1ve"
    for folder in (killed, live):
        folder.mkdir(parents=True)
        (folder / "demo-q8_0.gguf").write_bytes(b"partial")
    (killed / LOCK_FILE).touch()
    writing = FolderLock(live)
    assert writing.acquire()
    again = cli("export", demo_run.name, "--gguf", "q8_0", "--name", "again", "--to", str(destination),
                runs=demo_run.parent)
    out, err = again.communicate(timeout=600)
    assert again.returncode == 0, err[-3000:]
    from gguf import GGUFReader

    assert len(GGUFReader(destination / "demo-q8_0.gguf").tensors) == 272
    assert not killed.exists() and (live / "demo-q8_0.gguf").read_bytes() == b"partial"
    assert sorted(p.name for p in destination.glob(".tuitune-export-*")) == [live.name]
    writing.release()


def chat_renderer(tokenizer):
    return lambda messages, generation: tokenizer.apply_chat_template(messages, tokenize=False,
                                                                      add_generation_prompt=generation)


LLAMA3_TEMPLATE = (
    "{{- bos_token }}{%- for message in messages %}"
    "{{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'"
    " + message['content'] | trim + '<|eot_id|>' }}{%- endfor %}{%- if add_generation_prompt %}"
    "{{- '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{%- endif %}")
"""Llama 3's chat template (meta-llama/Meta-Llama-3-8B-Instruct), as written in its tokenizer_config.json."""
MISTRAL_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}"
    "{% if message['role'] == 'user' %}{{ '[INST] ' + message['content'] + ' [/INST]' }}"
    "{% elif message['role'] == 'assistant' %}{{ message['content'] + eos_token}}"
    "{% else %}{{ raise_exception('Only user and assistant roles are supported!') }}{% endif %}{% endfor %}")
"""Mistral-7B-Instruct-v0.2's: strict alternation, no system role, BOS and EOS written by the template."""


@pytest.fixture(scope="module")
def family_tokenizer(demo_model_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    """Build a tokenizer of another family: the demo's vocabulary with that family's template and specials."""
    from transformers import AutoTokenizer

    def build(template: str, bos: str, eos: str, extra: list[str]):
        folder = tmp_path_factory.mktemp("family")
        tokenizer = AutoTokenizer.from_pretrained(demo_model_dir)
        tokenizer.add_special_tokens({"bos_token": bos, "eos_token": eos, "additional_special_tokens": extra})
        tokenizer.chat_template = template
        tokenizer.save_pretrained(folder)
        config = json.loads((folder / "tokenizer_config.json").read_text())
        config["chat_template"] = template  # written into tokenizer_config, as older hub models ship it
        (folder / "tokenizer_config.json").write_text(json.dumps(config))
        (folder / "chat_template.jinja").unlink(missing_ok=True)
        return AutoTokenizer.from_pretrained(folder)

    return build


def test_modelfile_follows_a_llama3_template(family_tokenizer) -> None:
    from engine.export.ollama import modelfile

    tokenizer = family_tokenizer(LLAMA3_TEMPLATE, "<|begin_of_text|>", "<|end_of_text|>",
                                 ["<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"])
    text = modelfile("m.gguf", chat_renderer(tokenizer), tokenizer.all_special_tokens, tokenizer.eos_token,
                     tokenizer.bos_token, adds_bos=True)
    assert 'PARAMETER stop "<|eot_id|>"' in text and "<|im_end|>" not in text
    # llama.cpp adds BOS itself (add_bos_token): the template must not write it a second time.
    assert "<|begin_of_text|>" not in text
    assert ('(eq $prev "start") (eq .Role "system") }}{{ "<|start_header_id|>system<|end_header_id|>\\n\\n" }}'
            in text)
    assert '{{- if eq $prev "user" }}{{ "<|eot_id|><|start_header_id|>assistant<|end_header_id|>\\n\\n" }}' in text


def test_modelfile_follows_a_mistral_template_without_system_role(family_tokenizer) -> None:
    from engine.export.ollama import modelfile

    tokenizer = family_tokenizer(MISTRAL_TEMPLATE, "<s>", "</s>", [])
    text = modelfile("m.gguf", chat_renderer(tokenizer), tokenizer.all_special_tokens, tokenizer.eos_token,
                     tokenizer.bos_token, adds_bos=False)
    assert 'PARAMETER stop "</s>"' in text and '"system"' not in text
    assert '(eq $prev "start") (eq .Role "user") }}{{ "<s>[INST] " }}' in text
    assert '(eq $prev "assistant") (eq .Role "user") }}{{ "</s>[INST] " }}' in text


def test_a_template_that_depends_on_more_than_two_turns_is_refused() -> None:
    from jinja2 import Template

    from engine.export.ollama import TemplateError, modelfile

    numbered = Template("{% for m in messages %}[{{ loop.index }}] {{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"
                        "{% if add_generation_prompt %}assistant:{% endif %}")
    with pytest.raises(TemplateError, match="no Ollama template can follow it"):
        modelfile("m.gguf", lambda messages, gen: numbered.render(messages=messages, add_generation_prompt=gen),
                  [], None)


def test_export_refusals(eng, tiny_model_dir: Path, tiny_data: Path, tmp_path: Path, capsys) -> None:
    from tuitune.__main__ import main

    runs = tmp_path / "runs"
    run_dir = eng.make_run(runs, tiny_model_dir, tiny_data, name="untrained")

    def export(*args: str) -> tuple[int, str]:
        code = main(["--runs-dir", str(runs), "export", *args])
        return code, capsys.readouterr().err

    code, err = export("untrained", "--merged")
    assert code == 1 and "no adapter and no complete checkpoint" in err
    (run_dir / "adapter").mkdir()
    (run_dir / "adapter" / "adapter_config.json").write_text("{}")
    code, err = export("untrained", "--gguf", "q4_k_m")
    assert code == 2 and "q4_k_m is not offered" in err and "llama-quantize" in err
    code, err = export("untrained", "--gguf", "q5_k")
    assert code == 2 and "choose from f16, bf16, q8_0" in err
    code, err = export("untrained")
    assert code == 2 and "nothing to export" in err
    taken = tmp_path / "out"
    (taken / "merged").mkdir(parents=True)
    (taken / "merged" / "mine.txt").write_text("the user's")
    code, err = export("untrained", "--merged", "--to", str(taken))
    assert code == 1 and f"{taken / 'merged'} already exists" in err
    assert (taken / "merged" / "mine.txt").read_text() == "the user's"
    code, err = export("untrained", "--adapter-only", str(taken))
    assert code == 1 and "give a new or empty folder" in err
    assert not (run_dir / "exports").exists()

    # The adapter alone needs no job: copied at once, naming the base as the run chose it.
    (run_dir / "adapter" / "training_args.bin").write_bytes(b"state")
    code = main(["--runs-dir", str(runs), "export", "untrained", "--adapter-only", str(tmp_path / "travel")])
    assert code == 0 and not (run_dir / "exports").exists()
    assert json.loads((tmp_path / "travel" / "adapter_config.json").read_text()) == {
        "base_model_name_or_path": str(tiny_model_dir)}
    assert sorted(p.name for p in (tmp_path / "travel").iterdir()) == ["adapter_config.json"]


def test_export_refuses_a_gguf_of_an_architecture_it_does_not_know(eng, tiny_model_dir: Path, tiny_data: Path,
                                                                  tmp_path: Path, capsys) -> None:
    from transformers import AutoTokenizer, GPT2Config, GPT2LMHeadModel

    from engine.jobs.gguf_writer import GGUFError, gguf_architecture
    from tuitune.__main__ import main

    model_dir = tmp_path / "tiny-gpt2"
    GPT2LMHeadModel(GPT2Config(n_layer=1, n_embd=8, n_head=2, vocab_size=64, n_positions=32, bos_token_id=0,
                               eos_token_id=0)).save_pretrained(model_dir)
    AutoTokenizer.from_pretrained(tiny_model_dir).save_pretrained(model_dir)
    run_dir = eng.make_run(tmp_path / "runs", model_dir, tiny_data, name="gpt2")
    (run_dir / "adapter").mkdir()
    (run_dir / "adapter" / "adapter_config.json").write_text("{}")
    assert main(["--runs-dir", str(tmp_path / "runs"), "export", "gpt2", "--gguf", "f16"]) == 1
    err = capsys.readouterr().err
    assert "GPT2LMHeadModel" in err and "supported: llama, qwen2, qwen3, mistral" in err
    with pytest.raises(GGUFError, match="supported: llama, qwen2, qwen3, mistral"):
        gguf_architecture({"architectures": ["GPT2LMHeadModel"]})


def test_not_enough_disk_space_is_refused_with_what_is_free_and_needed(tmp_path: Path) -> None:
    import shutil

    from engine.export.plan import RESERVE, room_problem

    free = shutil.disk_usage(tmp_path).free
    assert room_problem(tmp_path, free // 2 - RESERVE) is None
    needed = free + 1024**4  # a terabyte more than the disk has
    problem = room_problem(tmp_path / "not" / "yet", needed)  # a destination still to be made: its disk counts
    assert problem is not None and problem.startswith(f"not enough disk space in {tmp_path / 'not' / 'yet'}: ")
    assert re.search(r": \d+ MB free, the export needs (\d+) MB$", problem).group(1) == (
        f"{(needed + RESERVE) / 1024**2:.0f}")


@pytest.mark.parametrize("family", ["qwen2", "qwen3", "mistral"])
def test_gguf_of_each_supported_family_loads_back_with_its_weights(family: str, demo_model_dir: Path,
                                                                  tmp_path: Path) -> None:
    """A tiny random model of each family (with the demo's byte-level BPE tokenizer) written as f16 GGUF and
    read back by transformers' GGUF loader computes what the model computes with its matrices rounded to
    fp16: every tensor found its llama.cpp name (Qwen's q/k/v biases, Qwen3's q/k norms, Mistral's untied
    output head), and Mistral's q/k rows were permuted as Llama's (it travels as llama.cpp's ``llama``); the
    demo model covers Llama itself."""
    import torch
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM, AutoTokenizer, MistralConfig, Qwen2Config, Qwen3Config

    from engine.jobs.gguf_writer import write_gguf

    tokenizer = AutoTokenizer.from_pretrained(demo_model_dir)
    shape = {"vocab_size": len(tokenizer), "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
             "num_attention_heads": 4, "num_key_value_heads": 2, "max_position_embeddings": 256,
             "bos_token_id": tokenizer.bos_token_id, "eos_token_id": tokenizer.eos_token_id}
    config = {"qwen2": lambda: Qwen2Config(**shape, tie_word_embeddings=True),
              # 128 as in every Qwen3: transformers' GGUF reader takes Qwen3's head_dim from its default, not the file
              "qwen3": lambda: Qwen3Config(**shape, head_dim=128, tie_word_embeddings=True),
              "mistral": lambda: MistralConfig(**shape, tie_word_embeddings=False, sliding_window=None)}[family]()
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(config).eval()
    if family == "qwen2":  # random biases, so a misplaced one shows
        with torch.no_grad():
            for name, param in model.named_parameters():
                if name.endswith("bias"):
                    param.normal_(0, 0.5)
    model.save_pretrained(tmp_path / "model")
    tokenizer.save_pretrained(tmp_path / "tokenizer")  # apart: a qwen2 config.json beside it would pick another class
    (tmp_path / "gguf").mkdir()  # alone in its folder: transformers takes everything from the file
    write_gguf(tmp_path / "gguf" / "m.gguf", load_file(tmp_path / "model" / "model.safetensors"),
               json.loads((tmp_path / "model" / "config.json").read_text()), tmp_path / "tokenizer", "f16",
               f"tiny {family}")
    loaded = AutoModelForCausalLM.from_pretrained(tmp_path / "gguf", gguf_file="m.gguf").eval()
    ids = tokenizer("The capital of France is Paris, and the capital of Italy is", return_tensors="pt")["input_ids"]
    with torch.no_grad():
        got, expected = loaded(ids).logits, quantized_like_the_file(model, "f16")(ids).logits
    assert got.shape == expected.shape and (got - expected).abs().max() < 1e-3


@pytest.mark.parametrize("method", ["qlora", "full"])
def test_qlora_merges_into_the_unquantized_base_and_a_full_finetune_exports_its_weights(
        eng, tiny_model_dir: Path, tiny_data: Path, tmp_path: Path, method: str) -> None:
    """A QLoRA adapter is added to the base's original fp32 weights: merged = W + (alpha/r)·B·A exactly, which
    a merge into the de-quantized 4-bit weights (off by the NF4 rounding, about 1e-2 here) would not give.
    A full fine-tune's weights are the export's weights, unchanged."""
    import torch
    from safetensors.torch import load_file

    from tuitune.runs.launch import start_job, wait_until_gone

    sections = ({"quant": {"mode": "4bit", "quant_type": "nf4", "double_quant": True}} if method == "qlora"
                else {"adapter": {"method": "full"}})
    run_dir = eng.make_run(tmp_path, tiny_model_dir, tiny_data, **sections,
                           train={"max_steps": 2, "batch_size": 2, "save_steps": 100, "learning_rate": 0.01})
    assert eng.run_to_end(run_dir)[-1]["type"] == "run_finished"
    job_dir, _ = start_job(run_dir, "export", {"weights": "adapter", "merged": True}, "merged")
    end = eng.wait_for(job_dir, eng.terminal(), what="the export's end")
    assert wait_until_gone(job_dir) and end["type"] == "job_finished", end
    merged = load_file(job_dir / "merged" / "model.safetensors")
    if method == "full":
        trained = load_file(run_dir / "adapter" / "model.safetensors")
        assert merged.keys() == trained.keys() and all(torch.equal(merged[k], trained[k]) for k in merged)
        return
    base = load_file(tiny_model_dir / "model.safetensors")
    lora = load_file(run_dir / "adapter" / "adapter_model.safetensors")
    config = json.loads((run_dir / "adapter" / "adapter_config.json").read_text())
    scale = config["lora_alpha"] / config["r"]
    name = "model.layers.1.self_attn.q_proj"
    prefix = f"base_model.model.{name}"
    delta = scale * lora[f"{prefix}.lora_B.weight"] @ lora[f"{prefix}.lora_A.weight"]
    assert delta.abs().max() > 1e-4  # training moved it
    assert torch.allclose(merged[f"{name}.weight"], base[f"{name}.weight"] + delta, atol=1e-6)
    import bitsandbytes.functional as bnb

    packed, state = bnb.quantize_4bit(base[f"{name}.weight"], quant_type="nf4")  # what training computed with
    assert (bnb.dequantize_4bit(packed, state) - base[f"{name}.weight"]).abs().max() > 1e-3
    assert config["base_model_name_or_path"] == str(tiny_model_dir)


def test_the_demo_runs_export_is_checked_against_training_and_passes(exported: dict) -> None:
    """Every output that renders chats asks the tuned model as training taught it (engine.jobs.export_check)."""
    assert exported["code"] == 0, exported["err"][-3000:]
    checks = exported["events"][-1]["checks"]
    assert [(c["check"], c["severity"], c["token"]) for c in checks] == [
        ("merged", "ok", None), ("gguf", "ok", "<|im_end|>"), ("gguf", "ok", "<|im_end|>"),
        ("modelfile", "ok", "<|im_end|>")]
    lines = exported["out"].splitlines()
    assert "ok      gguf: demo-q8_0.gguf embeds the chat template, which renders the sample chat as training did " \
           "(59 tokens, the same ids in its vocabulary); <|im_end|> is id 2 there" in lines, exported["out"]
    assert "ok      modelfile: Modelfile's TEMPLATE renders the sample chat as training did, and it stops on " \
           "<|im_end|>" in lines
