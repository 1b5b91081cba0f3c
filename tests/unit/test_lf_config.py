"""LLaMA-Factory training YAML → tuitune run config (engine.lf.config), key by key."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from engine.config import ConfigError, parse_config
from engine.lf.config import compose_lf, is_lf_config, load_lf_or_none, template_family, template_verdict, to_yaml

CHATML = ("{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + "
          "'<|im_end|>' + '\\n'}}{% endfor %}")
LLAMA3 = ("{% for message in messages %}{{'<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n' + "
          "message['content'] + '<|eot_id|>'}}{% endfor %}")

SFT_LORA = """\
### model
model_name_or_path: models/qwen
trust_remote_code: true

### method
stage: sft
do_train: true
finetuning_type: lora
lora_rank: 8
lora_target: all

### dataset
dataset: identity,alpaca_en_demo
template: qwen
cutoff_len: 2048
max_samples: 1000
overwrite_cache: true
preprocessing_num_workers: 16
dataloader_num_workers: 4

### output
output_dir: saves/qwen/lora/sft
logging_steps: 10
save_steps: 500
plot_loss: true
overwrite_output_dir: true
save_only_model: false
report_to: none  # choices: [none, wandb, tensorboard, swanlab, mlflow]

### train
per_device_train_batch_size: 1
gradient_accumulation_steps: 8
learning_rate: 1.0e-4
num_train_epochs: 3.0
lr_scheduler_type: cosine
warmup_ratio: 0.1
bf16: true
ddp_timeout: 180000000
resume_from_checkpoint: null
"""
"""LLaMA-Factory's examples/train_lora/llama3_lora_sft.yaml, with a local Qwen folder and its template."""


def model_folder(root: Path, template: str = CHATML, auto_map: bool = False) -> Path:
    """A model folder as far as the importer reads it: config.json and tokenizer_config.json."""
    folder = root / "models" / "qwen"
    folder.mkdir(parents=True)
    config = {"architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2"}
    if auto_map:
        config["auto_map"] = {"AutoModelForCausalLM": "modeling_qwen.QWenLMHeadModel"}
    (folder / "config.json").write_text(json.dumps(config))
    (folder / "tokenizer_config.json").write_text(json.dumps({"chat_template": template}))
    return folder


def dataset_dir(root: Path) -> Path:
    """LLaMA-Factory's data/ folder with two alpaca datasets."""
    data = root / "data"
    data.mkdir()
    (data / "dataset_info.json").write_text(json.dumps({
        "identity": {"file_name": "identity.json"}, "alpaca_en_demo": {"file_name": "alpaca_en_demo.json"}}))
    record = [{"instruction": "Who are you?", "input": "", "output": "I am Tuito."}]
    (data / "identity.json").write_text(json.dumps(record, indent=2))
    (data / "alpaca_en_demo.json").write_text(json.dumps(record * 3, indent=2))
    return data


@pytest.fixture
def lf_root(tmp_path: Path) -> Path:
    """A folder laid out as LLaMA-Factory runs from: models/qwen, data/, and the YAML."""
    model_folder(tmp_path)
    dataset_dir(tmp_path)
    return tmp_path


def load(root: Path, text: str, name: str = "lf.yaml"):
    path = root / name
    path.write_text(text)
    return load_lf_or_none(path, cwd=root, cache=root / "cache")


def test_the_example_sft_lora_config_maps_key_by_key(lf_root: Path) -> None:
    imported = load(lf_root, SFT_LORA)
    config = imported.config()

    assert config.stage == "sft"
    assert config.model.name_or_path == str((lf_root / "models" / "qwen").resolve())
    assert config.model.trust_remote_code is False  # the model ships no code: true changes nothing
    assert (config.adapter.method, config.adapter.r, config.adapter.alpha) == ("lora", 8, 16)
    assert config.adapter.target_modules == "all-linear"
    assert config.adapter.dropout == 0.0  # LLaMA-Factory's default, not tuitune's 0.05
    assert config.data.cutoff_len == 2048 and config.data.format == "alpaca"
    assert len(config.data.train) == 2 and all(Path(p).parent == lf_root / "cache" for p in config.data.train)
    train = config.train
    assert (train.batch_size, train.grad_accum, train.learning_rate, train.epochs) == (1, 8, 1e-4, 3.0)
    assert (train.scheduler, train.warmup_ratio, train.precision) == ("cosine", 0.1, "bf16")
    assert (train.logging_steps, train.save_steps) == (10, 500)
    assert train.gradient_checkpointing is True  # LLaMA-Factory's default, kept
    assert imported.run_dir == str(lf_root / "saves" / "qwen" / "lora" / "sft")


def test_every_key_of_the_file_has_a_note_with_its_line(lf_root: Path) -> None:
    imported = load(lf_root, SFT_LORA)
    lines = {line.split(":")[0]: n for n, line in enumerate(SFT_LORA.splitlines(), 1)
             if line and not line.startswith("#")}

    noted = {(note.key, note.line) for note in imported.notes}
    assert all((key, line) in noted for key, line in lines.items()), set(lines.items()) - noted
    kinds = {note.key: note.kind for note in imported.notes if note.line}
    assert kinds["do_train"] == kinds["plot_loss"] == "ignored" and kinds["ddp_timeout"] == "mapped"
    assert kinds["lora_rank"] == kinds["learning_rate"] == "mapped"
    by_field = {note.field: note for note in imported.notes if note.kind == "default"}
    assert by_field["adapter.dropout"].key == "lora_dropout" and "0.05" in by_field["adapter.dropout"].message
    assert by_field["train.gradient_checkpointing"].key == "disable_gradient_checkpointing"


@pytest.mark.parametrize("line, reason", [
    ("deepspeed: examples/deepspeed/ds_z3_config.json",
     "DeepSpeed is not supported: tuitune trains on several GPUs with torchrun and DDP or FSDP (--nproc N"),
    ("fsdp: full_shard auto_wrap", "distributed.strategy: fsdp"),
    ("lora_rnak: 8", "not a LLaMA-Factory training key"),
    ("use_galore: true", "GaLore"),
    ("report_to: swanlab", "tuitune reports to tensorboard, wandb, mlflow"),
    ("quantization_bit: 3", "4 or 8 bits"),
    ("lora_rank: 0", "adapter.r"),
])
def test_a_refused_key_names_the_file_its_line_and_why(lf_root: Path, line: str, reason: str) -> None:
    key = line.split(":")[0]
    base = "".join(f"{kept}\n" for kept in SFT_LORA.splitlines() if not kept.startswith(f"{key}:"))
    text = base.replace("lora_target: all\n", f"lora_target: all\n{line}\n")
    path = lf_root / "lf.yaml"
    with pytest.raises(ConfigError) as caught:
        load(lf_root, text)
    expected = f"{path}:{text.splitlines().index(line) + 1} {key}: "
    assert any(p.startswith(expected) and reason in p for p in caught.value.problems), caught.value.problems


def test_ddp_timeout_is_the_process_groups_timeout(lf_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """LLaMA-Factory's examples set ddp_timeout: 180000000; tuitune's torchrun workers wait that long too."""
    from engine.recipes.distributed import trainer_arguments

    imported = load(lf_root, SFT_LORA)
    assert not [n for n in imported.notes if n.key == "ddp_timeout" and n.kind != "mapped"]
    config = compose_lf(imported, cwd=lf_root)
    assert config.distributed.timeout == 180000000
    for name, value in {"RANK": "0", "LOCAL_RANK": "0", "WORLD_SIZE": "2", "LOCAL_WORLD_SIZE": "2"}.items():
        monkeypatch.setenv(name, value)  # as torchrun starts a worker of two
    assert trainer_arguments(config)["ddp_timeout"] == 180000000
    assert parse_config("train: {max_steps: 1}\n").distributed.timeout == 1800  # transformers' default


def test_report_to_maps_the_trackers_tuitune_writes(lf_root: Path) -> None:
    text = SFT_LORA.replace("report_to: none", "report_to: tensorboard,wandb")
    assert load(lf_root, text).values["train"]["report_to"] == ["tensorboard", "wandb"]


def test_off_values_of_refused_features_are_accepted(lf_root: Path) -> None:
    imported = load(lf_root, SFT_LORA + "deepspeed: null\nuse_galore: false\n")
    assert {(n.key, n.kind) for n in imported.notes} >= {("deepspeed", "ignored"), ("use_galore", "ignored")}


@pytest.mark.parametrize("change, reason", [
    (("stage: sft", "stage: ppo"), "stage grpo or rloo"),
    (("finetuning_type: lora", "finetuning_type: freeze"), "freeze"),
    (("bf16: true", "bf16: true\nfp16: true"), "cannot both be true"),
])
def test_stages_and_methods_tuitune_lacks_are_refused(lf_root: Path, change: tuple[str, str], reason: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load(lf_root, SFT_LORA.replace(*change))
    assert any(reason in p for p in caught.value.problems), caught.value.problems


def test_left_out_keys_keep_llamafactorys_defaults(lf_root: Path) -> None:
    minimal = "model_name_or_path: models/qwen\nstage: sft\nfinetuning_type: lora\ndataset: identity\n"
    config = load(lf_root, minimal).config()

    assert (config.adapter.r, config.adapter.alpha, config.adapter.dropout) == (8, 16, 0.0)
    assert (config.data.cutoff_len, config.train.batch_size, config.train.learning_rate) == (2048, 8, 5e-5)
    assert (config.train.scheduler, config.train.warmup_ratio) == ("linear", 0.0)
    assert (config.train.logging_steps, config.train.save_steps) == (500, 500)
    assert config.train.gradient_checkpointing is True and config.train.precision == "fp32"


def test_gradient_checkpointing_can_be_turned_off_as_in_llamafactory(lf_root: Path) -> None:
    imported = load(lf_root, SFT_LORA + "disable_gradient_checkpointing: true\n")
    assert imported.config().train.gradient_checkpointing is False


def test_dora_quantization_and_warmup_steps(lf_root: Path) -> None:
    text = SFT_LORA.replace("warmup_ratio: 0.1\n", "warmup_steps: 10\nmax_steps: 200\n").replace(
        "bf16: true\n", "quantization_bit: 4\nuse_dora: true\nlora_alpha: 32\nlora_dropout: 0.1\n")
    config = load(lf_root, text).config()
    assert (config.adapter.method, config.adapter.alpha, config.adapter.dropout) == ("dora", 32, 0.1)
    assert config.quant.mode == "4bit"
    assert config.train.max_steps == 200 and config.train.warmup_ratio == pytest.approx(0.05)


def test_warmup_steps_without_max_steps_is_refused(lf_root: Path) -> None:
    with pytest.raises(ConfigError, match="warmup_steps: tuitune sets warmup as a share"):
        load(lf_root, SFT_LORA + "warmup_steps: 10\n")


def test_dpo_and_orpo(lf_root: Path) -> None:
    data = lf_root / "data"
    info = json.loads((data / "dataset_info.json").read_text())
    info["prefs"] = {"file_name": "prefs.jsonl", "ranking": True,
                     "columns": {"prompt": "instruction", "query": "input", "chosen": "chosen", "rejected": "rejected"}}
    (data / "dataset_info.json").write_text(json.dumps(info))
    (data / "prefs.jsonl").write_text(json.dumps({"instruction": "Hi", "input": "", "chosen": "Hello!",
                                                  "rejected": "Go away."}) + "\n")
    dpo = SFT_LORA.replace("stage: sft", "stage: dpo").replace("dataset: identity,alpaca_en_demo", "dataset: prefs")
    config = load(lf_root, dpo + "pref_beta: 0.2\npref_loss: ipo\n").config()
    assert (config.stage, config.preference.beta, config.preference.loss_type) == ("dpo", 0.2, "ipo")
    assert config.data.format == "alpaca_pairs"

    config = load(lf_root, "pref_loss: orpo\n" + dpo, "orpo.yaml").config()  # before stage in the file
    assert config.stage == "orpo"


def test_remote_code_is_kept_on_only_for_models_that_ship_code(tmp_path: Path) -> None:
    model_folder(tmp_path, auto_map=True)
    dataset_dir(tmp_path)
    imported = load(tmp_path, SFT_LORA)
    assert imported.config().model.trust_remote_code is True
    assert any("trust_remote_code" in w and "executes Python code" in w for w in imported.warnings())


def test_template_of_the_models_family_is_a_note_another_a_warning(tmp_path: Path) -> None:
    folder = model_folder(tmp_path)
    kind, message = template_verdict("qwen", str(folder))
    assert kind == "mapped" and "ChatML" in message
    kind, message = template_verdict("llama3", str(folder))
    assert kind == "warning" and "Llama 3" in message and "ChatML" in message
    kind, message = template_verdict("alpaca", str(folder))
    assert kind == "warning" and "plain text" in message
    kind, message = template_verdict("qwen", "some-org/not-downloaded")
    assert kind == "warning" and "cannot compare" in message


def test_template_families_from_template_text() -> None:
    assert template_family(CHATML) == "chatml"
    assert template_family(LLAMA3) == "llama3"
    assert template_family("{{ bos_token }}[INST] {{ message['content'] }} [/INST]") == "inst"
    assert template_family("<start_of_turn>user\n") == "gemma"
    assert template_family("{{ message['role'] }}: {{ message['content'] }}") is None


def test_a_mismatched_template_is_a_located_warning(tmp_path: Path) -> None:
    model_folder(tmp_path, template=LLAMA3)
    dataset_dir(tmp_path)
    imported = load(tmp_path, SFT_LORA)
    line = SFT_LORA.splitlines().index("template: qwen") + 1
    assert any(w.startswith(f"{tmp_path / 'lf.yaml'}:{line} template: qwen is ChatML") and "Llama 3" in w
               for w in imported.warnings()), imported.warnings()


def test_a_tuitune_config_is_not_taken_for_a_llamafactory_one(tmp_path: Path) -> None:
    path = tmp_path / "run.yaml"
    path.write_text("model:\n  name_or_path: smollm2-135m-instruct\ntrain:\n  max_steps: 3\n")
    assert load_lf_or_none(path) is None
    assert not is_lf_config({"model_name_or_path": "x"}) and is_lf_config({"model_name_or_path": "x", "stage": "sft"})


def test_written_config_loads_back_the_same_with_a_comment_per_key(lf_root: Path) -> None:
    imported = load(lf_root, SFT_LORA)
    text = to_yaml(imported)

    assert parse_config(text) == imported.config()
    assert "  r: 8  # lora_rank (line 9)" in text
    assert "  dropout: 0.0  # lora_dropout not set: LLaMA-Factory's default 0 (tuitune's is 0.05)" in text
    assert "# note: lf.yaml:7 do_train: accepted, no effect here" in text
    assert "# output_dir: tuitune train --run-dir " in text


def test_flags_win_over_the_file_and_the_file_over_a_preset(lf_root: Path) -> None:
    imported = load(lf_root, SFT_LORA + "max_steps: 50\n")
    config = compose_lf(imported, {"train": {"max_steps": 7, "weight_decay": 0.1, "batch_size": 32}},
                        {"--max-steps": ("train.max_steps", 3)}, cwd=lf_root)
    assert config.train.max_steps == 3  # the flag over the file
    assert config.train.batch_size == 1  # the file over the preset
    assert config.train.weight_decay == 0.1  # the preset where the file says nothing


def test_dataset_dir_flag_overrides_the_file(lf_root: Path) -> None:
    other = lf_root / "elsewhere"
    other.mkdir()
    (other / "dataset_info.json").write_text(json.dumps({"identity": {"file_name": "only.jsonl"},
                                                         "alpaca_en_demo": {"file_name": "only.jsonl"}}))
    (other / "only.jsonl").write_text(json.dumps({"instruction": "a", "output": "b"}) + "\n")
    path = lf_root / "lf.yaml"
    path.write_text(SFT_LORA.replace("max_samples: 1000\n", ""))
    config = load_lf_or_none(path, cwd=lf_root, dataset_dir=str(other), cache=lf_root / "cache").config()
    assert config.data.train == [str(other / "only.jsonl")] * 2


def test_packing_generation_and_adam_keys(lf_root: Path) -> None:
    imported = load(lf_root, SFT_LORA + "neat_packing: true\nmax_new_tokens: 512\nadam_beta2: 0.999\n")
    assert imported.config().data.packing is True
    assert {n.key: n.kind for n in imported.notes if n.line}["max_new_tokens"] == "ignored"
    with pytest.raises(ConfigError, match="adam_beta2: tuitune runs AdamW with adam_beta2 0.999"):
        load(lf_root, SFT_LORA + "adam_beta2: 0.95\n")
    with pytest.raises(ConfigError, match="export_dir: an export setting"):
        load(lf_root, SFT_LORA + "export_dir: out\n")


def test_a_rule_across_fields_names_the_key_that_breaks_it(lf_root: Path) -> None:
    text = SFT_LORA.replace("finetuning_type: lora", "finetuning_type: full\nquantization_bit: 4")
    with pytest.raises(ConfigError) as caught:
        load(lf_root, text)
    line = text.splitlines().index("finetuning_type: full") + 1
    assert caught.value.problems[0].startswith(f"{lf_root / 'lf.yaml'}:{line} finetuning_type: adapter.method full "
                                               "cannot train quantized weights")


def test_output_dir_for_the_run_folder(lf_root: Path) -> None:
    from engine.lf.config import lf_output_dir

    (lf_root / "lf.yaml").write_text(SFT_LORA)
    assert lf_output_dir(lf_root / "lf.yaml", cwd=lf_root) == str(lf_root / "saves" / "qwen" / "lora" / "sft")
    (lf_root / "run.yaml").write_text("train:\n  max_steps: 3\n")
    assert lf_output_dir(lf_root / "run.yaml") is None


def test_model_flag_over_a_yaml_is_the_model_checked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                     capsys: pytest.CaptureFixture) -> None:
    """--model over a LLaMA-Factory YAML whose model is not here: remote code and the template are judged
    for the --model folder (no code, a ChatML template), not the YAML's model."""
    from tuitune.__main__ import build_parser
    from tuitune.cli.common import config_from_args

    folder = model_folder(tmp_path)  # ships no code, ChatML
    dataset_dir(tmp_path)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    text = SFT_LORA.replace("models/qwen", "Qwen/Qwen3-4B-Instruct-2507").replace("template: qwen", "template: qwen3")
    (tmp_path / "lf.yaml").write_text(text)

    config = config_from_args(build_parser().parse_args(["train", "lf.yaml", "--model", str(folder)]))

    assert config.model.name_or_path == str(folder) and config.model.trust_remote_code is False
    err = capsys.readouterr().err
    assert "executes Python code" not in err and "Qwen/Qwen3-4B" not in err and "cannot compare" not in err, err


def test_pt_always_packs_and_its_config_says_so() -> None:
    config = parse_config("stage: pt\ndata: {packing: false}\n")
    assert config.data.packing is True  # pieces of raw text are always packed: the config says what runs
    assert parse_config("stage: sft\n").data.packing is False


def test_long_prompts_are_cut_as_llamafactory_cuts_them(lf_root: Path, demo_model_dir: Path) -> None:
    """dpo_en_demo/kto_en_demo have prompts longer than cutoff_len: LLaMA-Factory shares cutoff_len between
    prompt and answers and keeps them; tuitune's own configs keep the prompt whole and leave such records out.
    Both say what they did."""
    from transformers import AutoTokenizer

    from engine.config import DataSection
    from engine.data.encode import infer_seqlen
    from engine.recipes.datasets import build_datasets

    imported = load(lf_root, SFT_LORA.replace("stage: sft", "stage: dpo").replace("dataset: identity,alpaca_en_demo",
                                                                                 "dataset: identity"))
    assert imported.config().data.truncation == "shared"
    assert parse_config("stage: dpo\n").data.truncation == "answers"

    tokenizer = AutoTokenizer.from_pretrained(demo_model_dir)
    long = "Please read this carefully. " * 40  # about 240 tokens
    pairs = write_records(lf_root / "pairs.jsonl", [
        {"instruction": long, "input": "", "chosen": "Yes, I read it.", "rejected": "No."},
        {"instruction": "Hi", "input": "", "chosen": "Hello!", "rejected": "Go away."}])
    kto = write_records(lf_root / "kto.jsonl", [
        {"instruction": long, "input": "", "output": "Yes, I read it.", "kto_tag": True},
        {"instruction": "Hi", "input": "", "output": "Go away.", "kto_tag": False}])
    for path, stage in ((pairs, "dpo"), (kto, "kto")):
        own = build_datasets(DataSection(train=[path], cutoff_len=64), tokenizer, seed=0, stage=stage)
        assert own.stats["train_records"] == 1 and any("left out" in w for w in own.warnings), own.warnings
        shared = build_datasets(DataSection(train=[path], cutoff_len=64, truncation="shared"), tokenizer, seed=0,
                                stage=stage)
        assert shared.stats["train_records"] == 2 and any("prompt" in w and "LLaMA-Factory" in w
                                                          for w in shared.warnings), shared.warnings
        row = shared.train[0]
        answers = [row[k] for k in ("chosen_ids", "rejected_ids", "completion_ids") if k in row]
        assert len(row["prompt_ids"]) + max(map(len, answers)) <= 64 and min(map(len, answers)) > 0
    assert infer_seqlen(300, 10, 64) == (54, 10) and infer_seqlen(10, 300, 64) == (10, 54)
    assert infer_seqlen(200, 100, 64) == (43, 21)


def write_records(path: Path, records: list) -> str:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return str(path)


KTO_LORA = """\
### model
model_name_or_path: Qwen/Qwen3-4B-Instruct-2507
trust_remote_code: true

### method
stage: kto
do_train: true
finetuning_type: lora
lora_rank: 8
lora_target: all
pref_beta: 0.1

### dataset
dataset: kto_en_demo
template: qwen3_nothink
cutoff_len: 2048
max_samples: 1000
preprocessing_num_workers: 16
dataloader_num_workers: 4

### output
output_dir: saves/qwen3-4b/lora/kto
logging_steps: 10
save_steps: 500
plot_loss: true
overwrite_output_dir: true
report_to: none  # choices: [none, wandb, tensorboard, swanlab, mlflow]

### train
per_device_train_batch_size: 1
gradient_accumulation_steps: 8
learning_rate: 5.0e-6
num_train_epochs: 3.0
lr_scheduler_type: cosine
warmup_ratio: 0.1
bf16: true
ddp_timeout: 180000000
"""
"""LLaMA-Factory's examples/train_lora KTO LoRA YAML (batch 1, accumulation 8)."""


def kto_demo_dir(root: Path, answers: int = 8) -> Path:
    """A data/ folder with LLaMA-Factory's kto_en_demo entry and layout (role/content turns, a label column)."""
    data = root / "data"
    data.mkdir(exist_ok=True)
    (data / "dataset_info.json").write_text(json.dumps({"kto_en_demo": {
        "file_name": "kto_en_demo.json", "formatting": "sharegpt",
        "columns": {"messages": "messages", "kto_tag": "label"},
        "tags": {"role_tag": "role", "content_tag": "content", "user_tag": "user", "assistant_tag": "assistant"}}}))
    good = [("What is the capital of France?", "The capital of France is Paris."),
            ("What is 2 plus 2?", "2 plus 2 is 4."), ("Name a primary color.", "Red is a primary color."),
            ("What do bees make?", "Bees make honey.")]
    records = [{"messages": [{"content": q, "role": "user"}, {"content": a if i % 2 == 0 else "I will not say.",
                                                               "role": "assistant"}], "label": i % 2 == 0}
               for i, (q, a) in enumerate(good * (answers // len(good)))]
    (data / "kto_en_demo.json").write_text(json.dumps(records, indent=2))
    return data


def test_the_kto_example_at_batch_1_keeps_its_answers_per_step(tmp_path: Path) -> None:
    """TRL's KTOTrainer refuses batch 1 (its KL term pairs each answer with another of the same micro-batch):
    the import doubles the batch and halves the accumulation, so 8 answers still make a step, and says so."""
    kto_demo_dir(tmp_path)
    imported = load(tmp_path, KTO_LORA)
    config = imported.config()
    assert (config.stage, config.train.batch_size, config.train.grad_accum) == ("kto", 2, 4)
    assert config.data.format == "sharegpt_kto" and config.preference.beta == 0.1
    [warning] = [w for w in imported.warnings() if "per_device_train_batch_size" in w]
    assert "TRL" in warning and "8 answers" in warning and "grad_accum: 4" in warning, warning
    odd = load(tmp_path, KTO_LORA.replace("gradient_accumulation_steps: 8", "gradient_accumulation_steps: 3"))
    assert (odd.config().train.batch_size, odd.config().train.grad_accum) == (2, 2)  # 4 answers a step, not 3
    assert any("4 answers" in w for w in odd.warnings())
    with pytest.raises(ConfigError, match="halve train.grad_accum"):  # a tuitune config is told what to change
        parse_config("stage: kto\ntrain: {batch_size: 1, grad_accum: 8}\n")
