"""The model card of a pushed export: ``README.md`` with the Hub's YAML metadata, from the run folder. Standard
library, pydantic and yaml only.

The metadata says what the Hub indexes: ``base_model`` (when the run's model is a Hub id: a local folder or the
demo alias means nothing there, and the Hub refuses a base_model that is not a model id), ``library_name``
(``peft`` for an adapter, ``transformers`` for a full fine-tune), ``tags`` (tuitune, the method, the stage,
peft's ``base_model:adapter:ID``) and ``datasets`` (the Hub datasets it trained on). The text says the same for
people, and what the run folder knows: the data (Hub datasets linked, local files by name only, never a path of
this machine), the stage and the hyperparameters from ``config.yaml``, and the final figures from
``events.jsonl`` (the last ``log`` and ``eval``, the terminal event).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from engine.config import RunConfig
from engine.data.hub import is_hub, parse, repo_id_problem
from engine.paths import DEMO_MODEL
from engine.protocol import EVAL, LOG, RUN_STARTED, TERMINAL_TYPES
from engine.stages import STAGES

CARD_FILE = "README.md"
HUB = "https://huggingface.co"
METHODS = {"lora": "LoRA", "dora": "DoRA"}
"""How the card writes an adapter method's name."""


def model_card(repo_id: str, run_dir: Path, config: RunConfig, events: list[dict[str, Any]], weights: str,
               outputs: list[str]) -> str:
    """The card of ``repo_id``: the export of ``run_dir`` (trained as ``config`` says, with ``events``) from its
    ``weights`` folder, holding the adapter at the top and ``outputs`` (names the export wrote)."""
    base = hub_model(config.model.name_or_path)
    adapter = config.adapter.method != "full"
    datasets = [parse(path).repo_id for path in config.data.train if is_hub(path)]
    meta: dict[str, Any] = {}
    if base:
        meta["base_model"] = base
    meta["library_name"] = "peft" if adapter else "transformers"
    meta["tags"] = ["tuitune", config.adapter.method, config.stage] + (
        [f"base_model:adapter:{base}"] if base and adapter else [])
    if datasets:
        meta["datasets"] = list(dict.fromkeys(datasets))
    front = yaml.safe_dump(meta, sort_keys=False, allow_unicode=True)
    sections = [f"---\n{front}---\n", f"# {repo_id}\n", _summary(config, base, adapter, run_dir.name, weights),
                _files(repo_id, config, base, adapter, outputs), _data(config, events), _settings(config),
                _results(events)]
    return "\n".join(sections)


def hub_model(name: str) -> str | None:
    """``name`` when it is a Hub model id (not a folder on this machine, not an alias), else None."""
    return name if repo_id_problem(name) is None and not Path(name).expanduser().exists() else None


def _summary(config: RunConfig, base: str | None, adapter: bool, run_name: str, weights: str) -> str:
    stage = STAGES[config.stage]
    what = f"A {METHODS.get(config.adapter.method, config.adapter.method)} adapter" if adapter else \
        "A fully fine-tuned model"
    name = config.model.name_or_path
    model = (f"[{base}]({HUB}/{base})" if base else "tuitune's demo model (SmolLM2-135M-Instruct)"
             if name == DEMO_MODEL else f"`{Path(name).name}` (a local model)")
    return (f"{what} of {model}, trained with tuitune: stage `{stage.name}` ({stage.summary}). Exported from the "
            f"run `{run_name}` ({weights}).\n")


def _files(repo_id: str, config: RunConfig, base: str | None, adapter: bool, outputs: list[str]) -> str:
    lines = ["## Files\n"]
    if adapter:
        model = f'"{base}"' if base else "BASE"
        lines.append(f"- the adapter and its tokenizer, at the top: `PeftModel.from_pretrained("
                     f"AutoModelForCausalLM.from_pretrained({model}), \"{repo_id}\")`")
    for name in outputs:
        kind = ("the adapter merged into the full-precision base (safetensors, with the tokenizer)"
                if name == "merged" else "for Ollama: `ollama create NAME -f Modelfile` beside the GGUF"
                if name == "Modelfile" else "a GGUF file for llama.cpp and Ollama")
        lines.append(f"- `{name}{'/' if name == 'merged' else ''}`: {kind}")
    return "\n".join(lines) + "\n"


def _data(config: RunConfig, events: list[dict[str, Any]]) -> str:
    lines = ["## Training data\n"]
    for path in config.data.train:
        if is_hub(path):
            dataset = parse(path)
            lines.append(f"- [{dataset.repo_id}]({HUB}/datasets/{dataset.repo_id}), split `{dataset.split}`")
        elif path.startswith("builtin:"):
            lines.append(f"- `{path}`: tuitune's built-in demo set")
        else:
            lines.append(f"- `{Path(path).name}` (a local file)")
    data = _last(events, RUN_STARTED).get("data") or {}
    counts = [f"{data[key]:,} {what}" for key, what in (("train_records", "training records"),
                                                         ("eval_records", "held out"),
                                                         ("train_tokens", "tokens")) if isinstance(data.get(key), int)]
    layout = "detected from the records" if config.data.format == "auto" else f"`{config.data.format}`"
    lines.append(f"\nLayout {layout}, cut at {config.data.cutoff_len} tokens"
                 + (f"; {', '.join(counts)}" if counts else "") + ".")
    return "\n".join(lines) + "\n"


def _settings(config: RunConfig) -> str:
    stage, train, adapter = STAGES[config.stage], config.train, config.adapter
    rows: list[tuple[str, Any]] = [("stage", config.stage), ("method", adapter.method)]
    if adapter.method != "full":
        rows += [("lora r / alpha / dropout", f"{adapter.r} / {adapter.alpha:g} / {adapter.dropout:g}"),
                 ("target modules", adapter.target_modules if isinstance(adapter.target_modules, str)
                  else ", ".join(adapter.target_modules))]
    rows += [("quantization", config.quant.mode if config.quant.mode == "none"
              else f"{config.quant.mode} {config.quant.quant_type}"),
             ("epochs" if train.max_steps is None else "max steps",
              f"{train.epochs:g}" if train.max_steps is None else train.max_steps),
             ("batch size x gradient accumulation", f"{train.batch_size} x {train.grad_accum}"),
             ("learning rate", f"{train.learning_rate:g} ({train.scheduler}, warmup {train.warmup_ratio:g})"),
             ("optimizer", train.optimizer), ("weight decay", f"{train.weight_decay:g}"),
             ("precision", train.precision), ("cutoff length", config.data.cutoff_len),
             ("packing", config.data.packing), ("seed", train.seed)]
    if stage.reference:
        rows += [("preference beta / loss", f"{config.preference.beta:g} / {config.preference.loss_type}")]
    if stage.samples:
        rows += [("answers per prompt", config.rl.num_generations), ("rewards",
                 ", ".join(reward.kind for reward in config.rl.rewards) or "exact_match")]
    return "## Training settings\n\n" + _table(rows)


def _results(events: list[dict[str, Any]]) -> str:
    end = next((event for event in reversed(events) if event.get("type") in TERMINAL_TYPES), {})
    log, evaluation, started = _last(events, LOG), _last(events, EVAL), _last(events, RUN_STARTED)
    rows: list[tuple[str, Any]] = []
    if end:
        rows.append(("ended", f"{end['type'].replace('run_', '')} at step {end.get('step')}"
                              + (f" of {started['total_steps']}" if started.get("total_steps") else "")))
    for name, value in (("final training loss (last logged step)", log.get("loss")),
                        ("mean training loss", end.get("train_loss")), ("eval loss", evaluation.get("eval_loss")),
                        ("epoch", log.get("epoch")), ("device", started.get("device"))):
        if value is not None:
            rows.append((name, f"{value:.4g}" if isinstance(value, float) else value))
    for name, value in sorted({**(log.get("metrics") or {}), **(evaluation.get("metrics") or {})}.items()):
        if isinstance(value, (int, float)) and not name.startswith("train_"):  # the trainer's own run summary
            rows.append((name, f"{value:.4g}"))
    return "## Results\n\n" + (_table(rows) if rows else "The run folder holds no training events.\n")


def _last(events: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    return next((event for event in reversed(events) if event.get("type") == kind), {})


def _table(rows: list[tuple[str, Any]]) -> str:
    cells = [(name, json.dumps(value) if isinstance(value, bool) else str(value)) for name, value in rows]
    return "| | |\n|---|---|\n" + "".join(f"| {name} | {value.replace('|', '/')} |\n" for name, value in cells)
