"""The run configuration: one typed schema, loaded from and saved to YAML. No torch here.

Every field carries an attribute docstring, which the app's preset editor shows as help, so
the schema is the only list of knobs. Unknown keys are errors, and errors point at the YAML
file, line and field.

Values are taken as written, never guessed: booleans only from ``true``/``false`` (YAML 1.1's
``yes``/``on`` stay strings and are refused), no boolean where a number goes, no duplicate keys,
no NaN or infinity. Config files must be regular files of at most MAX_CONFIG_BYTES.
"""

from __future__ import annotations

import os
import re
import types
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from engine.files import FileTooLarge, NotARegularFile, read_regular, write_text_atomic
from engine.paths import DEMO_MODEL
from engine.protocol import ALERT_KINDS
from engine.stages import DEFAULT_STAGE, DEMO_DATA, STAGES

MAX_CONFIG_BYTES = 1 << 20
"""Largest config or preset file read (1 MiB; real ones are under 4 KiB). A YAML file of tens
of megabytes takes minutes and gigabytes to load."""
MAX_YAML_DEPTH = 50
"""Deepest nesting of YAML collections; configs use 3 levels. Deeper input would exhaust the
Python stack of PyYAML's composer."""

Dtype = Literal["auto", "float32", "bfloat16", "float16"]


class Section(BaseModel):
    """Base of every config section: attribute docstrings become field descriptions."""

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True, validate_assignment=True,
                              allow_inf_nan=False)

    @field_validator("*", mode="before")
    @classmethod
    def _no_guessed_booleans(cls, value: Any, info: ValidationInfo) -> Any:
        # pydantic would read "yes", 1 or "on" as true and true as 1: a typo must not turn
        # trust_remote_code on, nor batch_size: true become 1.
        kinds = _members(cls.model_fields[info.field_name].annotation)
        if bool in kinds and not isinstance(value, bool):
            raise ValueError("must be true or false")
        if isinstance(value, bool) and bool not in kinds and (int in kinds or float in kinds):
            raise ValueError("must be a number, not true or false")
        return value


def _members(annotation: Any) -> list[Any]:
    """The members of a union annotation (or the annotation itself)."""
    if get_origin(annotation) in (Union, types.UnionType):
        return list(get_args(annotation))
    return [annotation]


class ModelSection(Section):
    """Which base model to fine-tune and how to load it."""

    name_or_path: str = DEMO_MODEL
    """Built-in alias (smollm2-135m-instruct), a local model folder or a Hugging Face hub id."""
    revision: str | None = None
    """Hub branch, tag or commit; ignored for local folders."""
    trust_remote_code: bool = False
    """Run Python code shipped with the model. Off unless you trust the model's author."""
    dtype: Dtype = "auto"
    """Dtype of unquantized weights. auto: bfloat16 on GPUs that support it, else float32."""


class QuantSection(Section):
    """Quantization of the frozen base weights through bitsandbytes (QLoRA)."""

    mode: Literal["none", "4bit", "8bit"] = "none"
    """none: full-precision base; 4bit: QLoRA (least memory); 8bit: LLM.int8 base."""
    quant_type: Literal["nf4", "fp4"] = "nf4"
    """4-bit data type. nf4 suits normally distributed weights and is the QLoRA default."""
    double_quant: bool = True
    """Quantize the quantization constants too: saves about 0.4 bit a parameter."""
    compute_dtype: Dtype = "auto"
    """Dtype of matmuls on 4-bit weights. auto: bfloat16 on capable GPUs, else float32."""


class AdapterSection(Section):
    """What is trained: a LoRA-family adapter or every weight."""

    method: Literal["lora", "dora", "full"] = "lora"
    """lora: low-rank adapters; dora: weight-decomposed LoRA (better at low rank, slower); full: all weights."""
    r: int = Field(16, ge=1, le=1024)
    """LoRA rank: higher = more capacity and memory."""
    alpha: float = Field(32, gt=0)
    """LoRA scaling numerator; the update is scaled by alpha/r (alpha/sqrt(r) with rslora)."""
    dropout: float = Field(0.05, ge=0, lt=1)
    """Dropout on the adapter input; regularises small datasets."""
    rslora: bool = False
    """Rank-stabilised scaling alpha/sqrt(r): keeps high ranks learning."""
    target_modules: list[str] | Literal["all-linear"] = "all-linear"
    """Modules to adapt: all-linear, or names such as [q_proj, v_proj]."""

    @field_validator("target_modules", mode="before")
    @classmethod
    def _one_clear_target_error(cls, value: Any) -> Any:
        # Checked here so that a bad value gets one message instead of one per union member.
        if value == "all-linear" or (isinstance(value, list) and value and all(isinstance(v, str) for v in value)):
            return value
        raise ValueError("must be all-linear or a non-empty list of module names such as [q_proj, v_proj]")


class DataSection(Section):
    """Instruction data and how it is turned into training sequences."""

    train: list[str] = Field(default_factory=lambda: [DEMO_DATA], min_length=1)
    """JSON, JSON Lines, .txt or datasets folders, or Hub datasets hf:ORG/NAME[:SPLIT]; builtin:identity is the shipped demo set (in the stage's layout)."""
    format: Literal["auto", "alpaca", "sharegpt", "openai", "alpaca_pairs", "sharegpt_pairs", "trl_pairs",
                    "alpaca_kto", "sharegpt_kto", "trl_kto", "text"] = "auto"
    """Record layout, auto detected from the first records; sft: alpaca/sharegpt/openai, dpo/orpo/rm: *_pairs, kto: *_kto or pairs, pt: text."""
    cutoff_len: int = Field(512, ge=8, le=1_048_576)
    """Longest sequence in tokens; longer records are truncated (and counted)."""
    val_size: float = Field(0.0, ge=0)
    """Held-out share for evaluation: below 1 a fraction, 1 or more a record count, 0 none."""
    packing: bool = False
    """Lay records end to end in sequences of up to cutoff_len tokens; each still sees only itself. Stage pt always
    packs (its config says true)."""
    padding_free: bool = True
    """Batch records end to end without padding, attention kept inside each record: faster, less memory."""
    system_prompt: str | None = None
    """System message put in front of records that have none."""
    truncation: Literal["answers", "shared"] = "answers"
    """Preference and kto records longer than cutoff_len. answers: the prompt is kept whole and the answers cut to
    fit; a prompt that fills cutoff_len leaves nothing to compare, so its record is left out (a warning names it).
    shared: cutoff_len is shared between prompt and answers as LLaMA-Factory shares it (the longer side gives up
    tokens; a long prompt loses its end), so every record trains (what a LLaMA-Factory YAML imports)."""


class TrainSection(Section):
    """The optimisation loop (transformers Trainer)."""

    epochs: float = Field(3.0, gt=0)
    """Passes over the data; ignored when max_steps is set."""
    max_steps: int | None = Field(None, ge=1)
    """Stop after this many optimizer steps, whatever the epochs."""
    batch_size: int = Field(4, ge=1)
    """Sequences per device per forward pass: the main memory knob."""
    grad_accum: int = Field(1, ge=1)
    """Forward passes per optimizer step; effective batch = batch_size x grad_accum x GPUs."""
    learning_rate: float = Field(2e-4, gt=0, le=1)
    """Peak learning rate: about 1e-4 to 3e-4 for LoRA, 1e-5 to 5e-5 for full fine-tuning."""
    scheduler: Literal["linear", "cosine", "constant", "constant_with_warmup", "polynomial"] = "cosine"
    """How the learning rate decays after warmup."""
    warmup_ratio: float = Field(0.03, ge=0, lt=1)
    """Share of total steps spent ramping the learning rate up from 0."""
    weight_decay: float = Field(0.0, ge=0)
    """Decoupled weight decay of AdamW."""
    max_grad_norm: float = Field(1.0, ge=0)
    """Gradient clipping threshold; 0 disables clipping."""
    optimizer: Literal["adamw_torch", "adamw_8bit", "paged_adamw_8bit", "adafactor", "sgd"] = "adamw_torch"
    """Optimizer; the 8-bit ones (bitsandbytes, GPU) cut optimizer memory by about 75%."""
    precision: Literal["auto", "fp32", "bf16", "fp16"] = "auto"
    """Mixed precision. auto: bf16 on capable GPUs, fp32 elsewhere (bf16 on some CPUs crashes)."""
    gradient_checkpointing: bool = False
    """Recompute activations in the backward pass: much less memory, about 30% slower."""
    chunked_loss: bool = True
    """Compute the loss a chunk of tokens at a time, never the whole logits: same loss, far less memory."""
    fused_lora_dropout: bool = True
    """Keep a one-byte dropout mask per adapted layer for backward instead of two float copies: same result."""
    lean_mlp: bool = True
    """Keep only the SwiGLU's gate and up for backward, re-forming two products (same result; off under checkpointing)."""
    seed: int = 42
    """Seed for data order, adapter init and dropout."""
    logging_steps: int = Field(5, ge=1)
    """Optimizer steps between log events (loss, learning rate, throughput)."""
    eval_steps: int | None = Field(None, ge=1)
    """Steps between evaluations when val_size > 0; default: same as save_steps."""
    save_steps: int = Field(100, ge=1)
    """Steps between checkpoints; a checkpoint is what a resume starts from."""
    save_total_limit: int = Field(3, ge=1)
    """Checkpoints kept; older ones are deleted."""
    stop_on: list[Literal[ALERT_KINDS]] = Field(default_factory=list)  # type: ignore[valid-type]
    """Watchdog alerts that stop the run, saving a checkpoint and the adapter first (e.g. nan)."""
    stall_after_s: float = Field(120.0, gt=0)
    """Seconds without a step (and at least ten usual steps) before the watchdog calls it a stall."""
    report_to: list[Literal["tensorboard", "wandb", "mlflow"]] = Field(default_factory=list)
    """Experiment trackers, written into RUN/trackers/: tensorboard, wandb (offline), mlflow (local store)."""
    gpus: Literal["all"] | list[int] | int = "all"
    """GPUs the run trains on: all, a list of indices ([0, 1]) or a count (the first N). More than one runs under torchrun."""


StageName = Literal[tuple(STAGES)]  # type: ignore[valid-type]
"""The name of a training stage (the rows of engine.stages.STAGES)."""


class PreferenceSection(Section):
    """Preference training (stages dpo, kto, orpo, rm): how strongly and against what."""

    beta: float = Field(0.1, gt=0)
    """How strongly dpo and kto keep to the reference (higher = closer), or the odds-ratio weight of orpo."""
    loss_type: Literal["sigmoid", "ipo", "hinge", "robust"] = "sigmoid"
    """DPO loss: sigmoid (the paper's), ipo (overfits less), hinge (SLiC), robust (noisy labels, with label_smoothing)."""
    label_smoothing: float = Field(0.0, ge=0, lt=0.5)
    """DPO robust loss only: the share of preference labels assumed flipped (about 0.1 for noisy data)."""
    reference: Literal["base", "precomputed"] = "base"
    """dpo/kto reference: base = the base with the adapter off (no second copy); precomputed = its scores computed once first."""
    desirable_weight: float = Field(1.0, gt=0)
    """KTO: loss weight of desirable examples; raise it when they are fewer than undesirable ones."""
    undesirable_weight: float = Field(1.0, gt=0)
    """KTO: loss weight of undesirable examples; raise it when they are fewer than desirable ones."""


class RewardSection(Section):
    """One reward of an RL run; the run's reward is the weighted sum of its rewards."""

    kind: Literal["exact_match", "contains", "regex", "length", "reward_model", "python"]
    """exact_match: 1 when the answer equals the prompt's reference (case, spaces, punctuation ignored); contains: 1 when
    it contains text (or the reference); regex: 1 when pattern matches; length: 0 up to max_words, down to -1 at twice;
    reward_model: a tuitune rm run (or sequence-classification model folder) scores it; python: your function."""
    weight: float = 1.0
    """Weight of this reward in the sum (negative to penalise)."""
    text: str | None = None
    """contains: the text looked for (normalised like exact_match); default: the prompt's reference answer."""
    pattern: str | None = None
    """regex: a Python regular expression searched in the answer (use ^...$ to match it whole)."""
    max_words: int | None = Field(None, ge=1)
    """length: answers up to this many words are not penalised."""
    path: str | None = None
    """reward_model: a tuitune rm run folder (or its adapter folder), or a sequence-classification model folder."""
    function: str | None = None
    """python: FILE.py:FUNCTION, called as f(prompts, completions, references, **kw) -> list of floats (needs rl.allow_code)."""

    @model_validator(mode="after")
    def _needs_its_fields(self) -> RewardSection:
        needed = {"regex": "pattern", "length": "max_words", "reward_model": "path",
                  "python": "function"}.get(self.kind)
        if needed and getattr(self, needed) in (None, ""):
            raise ValueError(f"a {self.kind} reward needs {needed}")
        if self.kind == "regex":
            try:
                re.compile(self.pattern or "")
            except re.error as exc:
                raise ValueError(f"pattern is not a valid regular expression: {exc}") from None
        if self.kind == "python" and not re.fullmatch(r".+\.py:[A-Za-z_][A-Za-z0-9_]*", self.function or ""):
            raise ValueError(f"function must be FILE.py:FUNCTION, got {self.function!r}")
        return self

    def label(self) -> str:
        """A short name for this reward, which TRL logs it under (``rewards/<label>/mean``)."""
        if self.kind == "python":
            return "python_" + (self.function or "").rsplit(":", 1)[-1]
        return self.kind


RL_DEFAULTS = {"cpu": (4, 32), "cuda": (8, 256)}
"""(answers per prompt, longest answer in tokens) when rl leaves them unset: a CPU samples few and short answers,
so a few steps of the demo model take about a minute; a GPU takes TRL's own defaults."""


class RLSection(Section):
    """Reinforcement learning from rewards (the stages that sample answers): sampling and the rewards."""

    num_generations: int | None = Field(None, ge=2, le=256)
    """Answers sampled per prompt and compared with each other (train.batch_size counts prompts); default: 4 on CPU, 8 on a GPU."""
    max_completion_length: int | None = Field(None, ge=1, le=65536)
    """Longest sampled answer in tokens; default: 32 on CPU, 256 on a GPU."""
    temperature: float = Field(1.0, gt=0, le=10)
    """Sampling temperature: higher = more varied answers, which is what the group comparison learns from."""
    beta: float = Field(0.0, ge=0)
    """KL weight keeping the model near the base (0: no reference pass, TRL's default; about 0.04 to hold it closer)."""
    rewards: list[RewardSection] = Field(default_factory=list)
    """The rewards, summed with their weights; none: exact_match against the prompts' reference answers."""
    reward_time_limit_s: float = Field(60.0, gt=0)
    """Seconds a reward may take over one batch of answers; longer (a hung python reward, a runaway regex) fails the run."""
    allow_code: bool = False
    """Run the Python file a python reward names. Off unless you trust that file; never set by a preset."""
    generation: Literal["auto", "trainer", "vllm"] = "auto"
    """How answers are sampled: trainer (model.generate), vllm (needs vllm and a GPU); auto: vllm when both are there."""

    def generations(self, cuda: bool) -> int:
        """Answers per prompt: num_generations, else RL_DEFAULTS for the device."""
        return self.num_generations or RL_DEFAULTS["cuda" if cuda else "cpu"][0]

    def completion_tokens(self, cuda: bool) -> int:
        """Longest answer in tokens: max_completion_length, else RL_DEFAULTS for the device."""
        return self.max_completion_length or RL_DEFAULTS["cuda" if cuda else "cpu"][1]

    @model_validator(mode="after")
    def _code_only_when_allowed(self) -> RLSection:
        for n, reward in enumerate(self.rewards):
            if reward.kind == "python" and not self.allow_code:
                raise ValueError(f"rewards[{n}] runs your Python code ({reward.function}): set rl.allow_code: true "
                                 "in the run's own config to allow it")
        return self


class DistributedSection(Section):
    """Several processes, GPUs or machines (torchrun): how many and where they meet."""

    nproc: int | None = Field(None, ge=1)
    """Processes on this machine; default: one per GPU of train.gpus (on a CPU-only machine, 1; gloo for more)."""
    strategy: Literal["auto", "ddp", "fsdp"] = "auto"
    """auto: DDP for adapters (each GPU holds the whole base), FSDP for full fine-tuning (the base sharded)."""
    nnodes: int = Field(1, ge=1)
    """Machines taking part; each runs tuitune train with the same config and its own node_rank."""
    node_rank: int = Field(0, ge=0)
    """This machine's place among nnodes; rank 0 writes events, checkpoints and the adapter."""
    master: str | None = None
    """ADDR:PORT of node 0, reachable from every node (torchrun's rendezvous); needed when nnodes > 1."""
    timeout: int = Field(1800, ge=1)
    """Seconds a process waits for the others at a collective (gradient sync, a checkpoint) before the run fails:
    the process group's timeout (transformers' ddp_timeout; LLaMA-Factory's examples set 180000000)."""


class RunConfig(Section):
    """A whole run, or a preset (a partial run merged over the defaults)."""

    description: str = ""
    """One line saying what this preset is for."""
    stage: StageName = DEFAULT_STAGE
    """What is trained: sft (instruction answers), pt (raw text), rm (reward model), dpo, kto or orpo (preferences),
    grpo or rloo (rewards of sampled answers)."""
    model: ModelSection = Field(default_factory=ModelSection)
    quant: QuantSection = Field(default_factory=QuantSection)
    adapter: AdapterSection = Field(default_factory=AdapterSection)
    data: DataSection = Field(default_factory=DataSection)
    train: TrainSection = Field(default_factory=TrainSection)
    preference: PreferenceSection = Field(default_factory=PreferenceSection)
    rl: RLSection = Field(default_factory=RLSection)
    distributed: DistributedSection = Field(default_factory=DistributedSection)

    @model_validator(mode="after")
    def _check_combinations(self) -> RunConfig:
        row = STAGES[self.stage]
        if self.data.train == [DEMO_DATA]:
            self.data.train = [row.demo_data]
        if row.packs:  # the written config says what the run does
            self.data.packing = True
        if self.adapter.method == "full" and self.quant.mode != "none":
            raise ValueError("adapter.method full cannot train quantized weights: set quant.mode to none")
        if self.train.batch_size < row.least_batch:
            raise ValueError(f"stage {self.stage} needs train.batch_size of at least {row.least_batch}: "
                             f"{row.least_batch_why} (set batch_size {row.least_batch} and halve train.grad_accum "
                             "to keep the records per optimizer step)")
        if self.preference.label_smoothing and self.preference.loss_type != "robust":
            raise ValueError("preference.label_smoothing is used only by loss_type robust: set it to 0 or use robust")
        if self.distributed.node_rank >= self.distributed.nnodes:
            raise ValueError(f"distributed.node_rank {self.distributed.node_rank} is not below nnodes "
                             f"{self.distributed.nnodes}: ranks count from 0")
        if self.distributed.nnodes > 1 and not self.distributed.master:
            raise ValueError("distributed.nnodes above 1 needs distributed.master (ADDR:PORT of node 0)")
        return self


class ConfigError(ValueError):
    """A config that cannot be used; ``problems`` are ``file:line:col field: message`` lines."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


def load_config(path: str | os.PathLike[str], base: dict[str, Any] | None = None) -> RunConfig:
    """Load a YAML run config or preset, merged over ``base`` (a plain dict) if given.

    A file with no settings (empty, or only comments) is refused: it is almost always the wrong
    file, and running the defaults is what leaving the file out does.

    Raises:
        ConfigError: with file, line and field for malformed YAML, unknown keys, wrong types
            and values out of range; for files that are not regular, too large or empty.
    """
    source = str(path)
    node, data = load_yaml(read_config_text(path), source)
    if node is None:
        raise ConfigError([f"{source}: the config file has no settings (it is empty or only comments); "
                           "leave the config file out to run the defaults"])
    return validate_config(node, data, source, base)


def read_config_text(path: str | os.PathLike[str]) -> str:
    """The text of a config or preset file, refusing anything but a regular file of at most MAX_CONFIG_BYTES.

    Raises:
        ConfigError: naming the file and why it cannot be read.
    """
    try:
        raw = read_regular(path, MAX_CONFIG_BYTES)
    except NotARegularFile as exc:
        raise ConfigError([f"{exc}; give a YAML file"]) from None
    except FileTooLarge as exc:
        raise ConfigError([f"{path}: too large ({exc.size / (1 << 20):.1f} MiB); a config or preset may be at most "
                           f"{MAX_CONFIG_BYTES >> 20} MiB"]) from None
    except OSError as exc:
        raise ConfigError([f"{path}: cannot read: {exc}"]) from None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError([f"{path}: cannot read: {exc}"]) from None


def parse_config(text: str, source: str = "<config>", base: dict[str, Any] | None = None) -> RunConfig:
    """Validate YAML ``text`` as a RunConfig; ``source`` names it in error messages. Empty text is the defaults."""
    node, data = load_yaml(text, source)
    return validate_config(node, data, source, base)


def load_yaml(text: str, source: str) -> tuple[yaml.Node | None, Any]:
    """The composed node tree (for error locations) and the value of YAML ``text``.

    Raises:
        ConfigError: located, for malformed YAML, duplicate keys and nesting deeper than MAX_YAML_DEPTH.
    """
    loader = ConfigLoader(text)
    try:
        node = loader.get_single_node()
        duplicates = _duplicate_keys(node, source)
        if duplicates:
            raise ConfigError(duplicates)
        data = loader.construct_document(node) if node is not None else None
    except yaml.YAMLError as exc:
        mark, start = getattr(exc, "problem_mark", None), getattr(exc, "context_mark", None)
        where = f"{source}:{mark.line + 1}:{mark.column + 1}" if mark else source
        opened = ""
        if start is not None and getattr(exc, "context", None) and (mark is None or start.line != mark.line):
            # The parser stops where the file ends; the bracket or quote left open is where to look.
            opened = f" ({exc.context} that starts at {source}:{start.line + 1}:{start.column + 1})"
        raise ConfigError([f"{where}: malformed YAML: {getattr(exc, 'problem', None) or exc}{opened}"]) from None
    finally:
        loader.dispose()
    return node, data


def validate_config(node: yaml.Node | None, data: Any, source: str,
                    base: dict[str, Any] | None = None) -> RunConfig:
    """``data`` (loaded from ``node``) over ``base``, validated into a RunConfig with located errors."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError([f"{source}:1:1: expected a mapping of sections (stage, model, quant, adapter, data, train, "
                           "preference, rl, distributed)"])
    merged = deep_merge(base or {}, data)
    try:
        return RunConfig.model_validate(merged)
    except ValidationError as exc:
        problems = [_describe(err, node, source) for err in exc.errors()]
        raise ConfigError(sorted(problems, key=_line_order)) from None


class ConfigLoader(yaml.SafeLoader):
    """PyYAML's safe loader, with booleans only from true/false and a nesting limit.

    YAML 1.1 also reads yes/no/on/off as booleans; here they stay strings, so the schema
    refuses them where a boolean goes (``trust_remote_code: yes`` is not a guess we make).
    """

    yaml_implicit_resolvers = {
        first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:bool"]
        for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
    }
    _depth = 0

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node:
        """Compose one node, refusing collections nested deeper than MAX_YAML_DEPTH."""
        self._depth += 1
        try:
            if self._depth > MAX_YAML_DEPTH:
                raise yaml.composer.ComposerError(
                    None, None, f"nested too deeply (more than {MAX_YAML_DEPTH} levels)", self.peek_event().start_mark)
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


ConfigLoader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF"))


def _duplicate_keys(root: yaml.Node | None, source: str) -> list[str]:
    """``file:line:col field: duplicate key …`` for every key given twice in one mapping."""
    problems: list[str] = []
    stack: list[tuple[yaml.Node, list[str]]] = [(root, [])] if root is not None else []
    seen_nodes: set[int] = set()  # aliases share nodes; visit each once
    while stack:
        node, path = stack.pop()
        if id(node) in seen_nodes:
            continue
        seen_nodes.add(id(node))
        if isinstance(node, yaml.SequenceNode):
            stack.extend((child, [*path, str(i)]) for i, child in enumerate(node.value))
        elif isinstance(node, yaml.MappingNode):
            first: dict[tuple[str, str], yaml.Node] = {}
            for key, value in node.value:
                name = [*path, str(key.value) if isinstance(key, yaml.ScalarNode) else "?"]
                if isinstance(key, yaml.ScalarNode) and key.tag != "tag:yaml.org,2002:merge":
                    earlier = first.setdefault((key.tag, key.value), key)
                    if earlier is not key:
                        mark = key.start_mark
                        problems.append(f"{source}:{mark.line + 1}:{mark.column + 1} {'.'.join(name)}: duplicate "
                                        f"key; first given on line {earlier.start_mark.line + 1} (only one may stay)")
                stack.append((value, name))
    return sorted(problems, key=_line_order)


def _describe(err: Any, root: yaml.Node | None, source: str) -> str:
    """One pydantic error as ``file:line:col dotted.field: message``."""
    loc = [part for part in err["loc"] if not (isinstance(part, str) and part.startswith("function-"))]
    where = locate(root, loc, source, key=err["type"] == "extra_forbidden")
    field = ".".join(str(part) for part in loc) or "(top level)"
    message = err["msg"]
    if err["type"] == "extra_forbidden":
        message = f"unknown key; allowed here: {', '.join(_allowed_keys(loc[:-1]))}"
    elif err["type"] == "literal_error":
        message = message.replace("Input should be", "must be one of")
    else:
        message = message.replace("Input should be", "must be").removeprefix("Value error, ")
    return f"{where} {field}: {message}"


def locate(root: yaml.Node | None, loc: list[Any], source: str, key: bool = False) -> str:
    """``file:line:col`` of the value at ``loc`` (with ``key``, of its key), or of its nearest ancestor."""
    node = _node_at(root, loc, key=key)
    return f"{source}:{node.start_mark.line + 1}:{node.start_mark.column + 1}" if node is not None else source


def _line_order(problem: str) -> tuple[int, int]:
    """Sort key putting problems in file order."""
    parts = problem.split(" ", 1)[0].split(":")
    return (int(parts[-2]), int(parts[-1])) if len(parts) >= 3 and parts[-1].isdigit() else (0, 0)


def _node_at(root: yaml.Node | None, loc: list[Any], key: bool = False) -> yaml.Node | None:
    """The YAML node at ``loc``, or its nearest ancestor that exists; with ``key``, the last key's node."""
    node = root
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            match = next(((k, v) for k, v in node.value if k.value == part), None)
            if match is None:
                return node
            node = match[0] if key and part is loc[-1] else match[1]
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            node = node.value[part]
        else:
            return node
    return node


def _allowed_keys(loc: list[Any]) -> list[str]:
    """Field names accepted at a section path such as ``['lora']`` or ``[]``."""
    model: type[BaseModel] = RunConfig
    for part in loc:
        annotation = model.model_fields[part].annotation if part in model.model_fields else None
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            break
        model = annotation
    return list(model.model_fields)


def deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """A new dict: ``override`` laid over ``base``, merging nested dicts key by key."""
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def config_to_yaml(config: RunConfig) -> str:
    """The config as YAML, sections in schema order."""
    return yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False, allow_unicode=True)


def write_config(config: RunConfig, path: str | os.PathLike[str]) -> None:
    """Write ``config`` as YAML atomically (temp file in the same folder, then rename)."""
    write_text_atomic(Path(path), config_to_yaml(config))
