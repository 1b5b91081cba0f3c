"""An evaluation job of a run: ``python -m engine eval --job-dir RUN/evals/NAME``, top to bottom.

job.yaml → the run's config.yaml → data check → tokenizer → base model (as the run trained it:
model, quant, dtype) + the run's adapter (peft) → encode exactly as training does → loss of
base and tuned per record → a greedy prediction per record from base and tuned →
``metrics.json``. The supervisor (``python -m engine launch --job eval --job-dir DIR``) runs it
in the job's folder with the folder's lock; everything the outside learns goes through the
folder's own ``events.jsonl``, so the run's stream stays the training's.

**job.yaml** (written by ``tuitune.runs.launch.start_job``; keys not listed are refused)::

    data: [/abs/path.jsonl, ...]  # held-out data, any layout the data check accepts
    format: auto                  # or alpaca, sharegpt, openai
    adapter: adapter              # the adapter folder, relative to the run (or checkpoints/checkpoint-N)
    max_new_tokens: 128           # longest prediction
    limit: null                   # evaluate only the first N usable records

**The base and the tuned model are one model**: the base is loaded once and the adapter put on
it; the base's figures are taken with the adapter switched off (``disable_adapter``) around each
whole forward pass or generation, never with a second copy in memory.

**The loss** is masked exactly as in training (the records are encoded by :mod:`engine.data.prepare`,
as the trainer encodes them, with the run's ``cutoff_len`` and ``system_prompt``: only assistant tokens
count, cut at the cutoff) and shifted as a causal LM's loss is. ``loss`` is **per token over the whole set**: the
summed negative log-likelihood of every labelled token divided by their number, which is what the
Trainer's ``evaluate()`` reports when the whole set is one batch (its ``eval_loss`` is the mean
of per-batch token means, weighted by batch size). ``perplexity`` is ``exp(loss)``.
``loss_per_record`` is the mean of each record's own token mean: the Trainer's ``eval_loss``
with batch size 1. Records left with no labelled token after the cutoff are left out of both, as
training leaves them out (a ``warning`` event says so).

**Predictions**: for each record the prompt is every turn before its last assistant turn (the
system prompt added as in training), rendered with the model's chat template and its generation
prompt; the answer is greedy, at most ``max_new_tokens`` long, and ends at eos or the template's
end-of-turn token. ``predictions.jsonl`` gets one line per record as soon as both answers are in:
``index``, ``file``, ``line`` (where the record is), ``prompt`` (the turns before the answer, as
messages), ``reference``, ``base``, ``tuned`` (the answers), ``base_tokens``/``tuned_tokens``
(generated token counts), ``base_loss``/``tuned_loss`` (the record's token-mean loss) and
``scores`` (``{"base": {bleu_4, rouge_1, rouge_2, rouge_l}, "tuned": {...}}``, see
:mod:`engine.jobs.similarity`).

**metrics.json** (written atomically at the end, and on a stop with what was done): ``v``,
``complete``, ``run``, ``adapter``, ``data``, ``records`` (evaluated), ``tokens`` (labelled
tokens, the loss's denominator), ``left_out``, ``truncated``, ``predicted``, ``max_new_tokens``,
``loss_mean`` (``"per_token"``), and ``base`` / ``tuned`` each with ``loss``, ``perplexity``,
``loss_per_record``, ``bleu_4``, ``rouge_1``, ``rouge_2``, ``rouge_l`` (null when not computed).

**Events** (``RUN/evals/NAME/events.jsonl``):

- ``job_started``: ``kind`` ("eval"), ``run_name``, ``adapter`` (relative to the run), ``model``
  {``name_or_path``, ``quant``, ``dtype``}, ``data`` {``paths``, ``format``, ``records`` (usable
  in the files), ``evaluated`` (after ``limit``)}, ``max_new_tokens``, ``limit``, ``device``, ``pid``;
- ``phase`` (``loading_model``, ``loading_data``) and ``warning`` (``code: data``) as in training;
- ``progress``: ``phase`` (``loss`` or ``predict``), ``done``, ``total``; at most about two a second,
  and always the last of each phase;
- one terminal event: ``job_finished`` with ``metrics`` {``base``, ``tuned``: the figures of
  metrics.json}, ``records``, ``tokens``, ``metrics_path``, ``predictions_path``, ``elapsed_s``;
  ``job_stopped`` (SIGTERM/SIGINT, answered between records and within a token of a generation;
  the predictions written so far are kept) with ``phase``, ``done``, ``total``, ``killed`` (false),
  ``metrics_path``, ``predictions_path``; or ``job_failed`` with ``cause``, ``hint``, ``errors``,
  ``exit_code``, ``signal``, ``log_tail`` (as ``run_failed``).
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field

from engine.config import RunConfig
from engine.data.checks import CheckedRecord, check_paths
from engine.data.encode import IGNORE_INDEX, Encoded
from engine.data.formats import with_system
from engine.data.prepare import Item, cut, cut_warnings, encode_or_refuse
from engine.data.problems import DataError, Problem
from engine.files import write_text_atomic
from engine.jobs import similarity
from engine.jobs.runner import JobError, StopFlag, Stopped, read_job_settings, read_run_config, run_job
from engine.models.demo import resolve_model
from engine.models.generation import ChatModel, Settings, answer, load_chat_model
from engine.models.loading import check_model, cuda_bf16, device_name
from engine.protocol import JOB_FINISHED, JOB_STARTED, PHASE, PROGRESS, WARNING, EventWriter

log = logging.getLogger("engine.jobs.eval")

METRICS_FILE = "metrics.json"
PREDICTIONS_FILE = "predictions.jsonl"
PROGRESS_EVERY_S = 0.5
"""Least seconds between two progress events of a phase (its last one is always written)."""


class EvalSettings(BaseModel):
    """What ``job.yaml`` asks for (see the module docstring)."""

    model_config = ConfigDict(extra="forbid", strict=True, use_attribute_docstrings=True)

    data: list[str] = Field(min_length=1)
    """Held-out data files or datasets folders."""
    format: Literal["auto", "alpaca", "sharegpt", "openai"] = "auto"
    """Their layout; auto recognises it from the first records."""
    adapter: str = "adapter"
    """The adapter folder, relative to the run folder."""
    max_new_tokens: int = Field(128, ge=1)
    """Longest prediction in tokens."""
    limit: int | None = Field(None, ge=1)
    """Evaluate only the first N usable records."""


@dataclass
class Scored(Item):
    """One evaluated record: the record as training encodes it, and its loss."""

    loss: dict[str, float] = field(default_factory=dict)
    """Token-mean loss of the record, by side (base, tuned)."""


@dataclass
class Tally:
    """Where the job is and what it has measured; read by ``main`` to report a stop."""

    phase: str = "starting"
    done: int = 0
    total: int = 0
    nll: dict[str, float] = field(default_factory=lambda: {"base": 0.0, "tuned": 0.0})
    """Summed negative log-likelihood of every labelled token, by side."""
    tokens: int = 0
    """Labelled tokens counted so far (the same for both sides)."""
    record_means: dict[str, float] = field(default_factory=lambda: {"base": 0.0, "tuned": 0.0})
    """Sum over records of each record's token-mean loss, by side."""
    losses_done: bool = False
    scores: dict[str, list[dict[str, float]]] = field(default_factory=lambda: {"base": [], "tuned": []})
    """Per-record similarity scores of the predictions written so far, by side."""
    summary: dict[str, Any] = field(default_factory=dict)
    """What metrics.json says besides the figures (run, adapter, data, counts)."""


def main(argv: list[str]) -> int:
    """``python -m engine eval --job-dir RUN/evals/NAME``."""
    tally = Tally()
    return run_job(argv, "eval", "Evaluate a run's adapter.",
                   work=lambda job_dir, events, flag: evaluate(job_dir, events, flag, tally),
                   stopped=lambda job_dir: stop_report(job_dir, tally))


def stop_report(job_dir: Path, tally: Tally) -> dict[str, Any]:
    """What ``job_stopped`` says: where the job was, and metrics.json of what was done (written now)."""
    written = write_metrics(job_dir, tally, complete=False)
    return {"phase": tally.phase, "done": tally.done, "total": tally.total,
            "metrics_path": METRICS_FILE if written else None,
            "predictions_path": PREDICTIONS_FILE if (job_dir / PREDICTIONS_FILE).exists() else None}


def evaluate(job_dir: Path, events: EventWriter, flag: StopFlag, tally: Tally) -> None:
    """Run the whole evaluation in ``job_dir`` (``RUN/evals/NAME``), writing events as it goes."""
    started = time.monotonic()
    settings = read_job_settings(job_dir, EvalSettings)
    run_dir, config = read_run_config(job_dir)
    adapter_dir = find_adapter(run_dir, settings.adapter, config)

    # ---- data: the same checks as training, before anything slow ------------------------
    checked, fmt = checked_records(settings)
    chosen = checked[:settings.limit] if settings.limit else checked
    name = config.model.name_or_path
    events.emit(JOB_STARTED, kind="eval", run_name=run_dir.name, adapter=settings.adapter,
                model={"name_or_path": name, "quant": config.quant.mode, "dtype": config.model.dtype},
                data={"paths": settings.data, "format": fmt, "records": len(checked), "evaluated": len(chosen)},
                max_new_tokens=settings.max_new_tokens, limit=settings.limit, device=device_name(), pid=os.getpid())
    flag.check()

    # ---- model: the base as the run trained it, the adapter on top ---------------------
    events.emit(PHASE, name="loading_model", message=f"loading {name} with {settings.adapter}")
    check_model(config, resolve_model(name))
    # The same loading as the chat's: quantized when the run was, on the GPU when there is one.
    chat = load_chat_model(run_dir, adapter_dir)
    model, tokenizer = chat.model, chat.tokenizer
    flag.check()

    # ---- encode: exactly as training does (labels, cutoff, system prompt) --------------
    events.emit(PHASE, name="loading_data", message=f"tokenising {len(chosen)} records")
    encoded: list[Scored] = [Scored(record) for record in chosen]
    encode_or_refuse(encoded, "sft", tokenizer, config.data.cutoff_len, config.data.system_prompt)
    result = cut(encoded)
    for message in cut_warnings(result, config.data.cutoff_len):
        events.emit(WARNING, message=message, code="data")
    items: list[Scored] = result.kept  # type: ignore[assignment]
    if not items:
        raise JobError("no record keeps a labelled token after truncation at cutoff_len "
                       f"{config.data.cutoff_len}", hint="evaluate records whose answers start within the cutoff")
    tally.summary = {"run": run_dir.name, "adapter": settings.adapter, "data": settings.data,
                     "records": len(items), "left_out": len(chosen) - len(items),
                     "truncated": sum(1 for it in items if it.encoded.truncated),
                     "max_new_tokens": settings.max_new_tokens}
    precision = autocast(config)

    # ---- loss of base and tuned ---------------------------------------------------------
    report = Reporter(events, tally, "loss", len(items))
    for item in items:
        flag.check()
        for side in ("base", "tuned"):
            with side_of(model, side), precision:
                nll, count = summed_loss(model, item.encoded)
            tally.nll[side] += nll
            item.loss[side] = nll / count
            tally.record_means[side] += nll / count
        tally.tokens += count
        report.advance()
    tally.losses_done = True

    # ---- predictions ---------------------------------------------------------------------
    report = Reporter(events, tally, "predict", len(items))
    with open(job_dir / PREDICTIONS_FILE, "w", encoding="utf-8") as out:
        for item in items:
            flag.check()
            messages = with_system(item.record.messages, config.data.system_prompt)
            prompt = messages[:-1]
            answers = {side: predict(chat, prompt, side, settings.max_new_tokens, flag) for side in ("base", "tuned")}
            reference = messages[-1]["content"]
            scores = {side: similarity.scores(answers[side][0], reference) for side in answers}
            out.write(json.dumps({
                "index": item.record.index, "file": item.record.file, "line": item.record.line, "prompt": prompt,
                "reference": reference, "base": answers["base"][0], "tuned": answers["tuned"][0],
                "base_tokens": answers["base"][1], "tuned_tokens": answers["tuned"][1],
                "base_loss": round(item.loss["base"], 6), "tuned_loss": round(item.loss["tuned"], 6),
                "scores": scores,
            }, ensure_ascii=False) + "\n")
            out.flush()
            for side in scores:
                tally.scores[side].append(scores[side])
            report.advance()

    # ---- the summary ---------------------------------------------------------------------
    tally.phase = "done"
    metrics = write_metrics(job_dir, tally, complete=True)
    events.emit(JOB_FINISHED, metrics={side: metrics[side] for side in ("base", "tuned")},
                records=metrics["records"], tokens=metrics["tokens"], metrics_path=METRICS_FILE,
                predictions_path=PREDICTIONS_FILE, elapsed_s=round(time.monotonic() - started, 3))


def find_adapter(run_dir: Path, adapter: str, config: RunConfig) -> Path:
    """The adapter folder inside the run, checked to hold a PEFT adapter."""
    if config.adapter.method == "full":
        raise JobError("evaluating a full fine-tune is not supported yet: it needs the base and the tuned "
                       "model loaded side by side")
    folder = (run_dir / adapter).resolve()
    if not folder.is_relative_to(run_dir.resolve()):
        raise JobError(f"the adapter {adapter!r} is outside the run folder {run_dir}")
    if not (folder / "adapter_config.json").is_file():
        raise JobError(f"no adapter in {folder} (no adapter_config.json)",
                       hint="evaluate a run that finished or stopped with a saved adapter, or one of its checkpoints")
    return folder


def checked_records(settings: EvalSettings) -> tuple[list[CheckedRecord], str]:
    """Every usable record of the data, in file order, and the layouts found.

    Raises:
        DataError: any record has an error (as ``tuitune data check`` would list it).
    """
    records: list[CheckedRecord] = []

    def keep(record: CheckedRecord) -> None:
        if record.messages is not None:
            record.raw = None
            records.append(record)

    summary = check_paths(settings.data, settings.format, on_record=keep)
    errors = [p for p in summary.problems if p.severity == "error"]
    if errors:
        raise DataError(errors, omitted=summary.errors - len(errors))
    if not records:
        raise DataError([Problem(", ".join(settings.data), None, None, None, "no usable records")])
    return records, "+".join(sorted({f for f in summary.formats.values() if f}))


def autocast(config: RunConfig) -> Any:
    """The mixed precision the run trained in (bf16/fp16 autocast on CUDA), else nothing."""
    precision = config.train.precision
    if not torch.cuda.is_available() or precision == "fp32":
        return nullcontext()
    if precision == "fp16":
        return torch.autocast("cuda", dtype=torch.float16)
    if precision == "bf16" or cuda_bf16():
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return nullcontext()


def side_of(model: Any, side: str) -> Any:
    """A context in which ``model`` is the base (adapter off) or the tuned model (adapter on)."""
    return model.disable_adapter() if side == "base" else nullcontext()


@torch.inference_mode()
def summed_loss(model: Any, encoded: Encoded) -> tuple[float, int]:
    """The summed negative log-likelihood of a record's labelled tokens and their number.

    The same computation as a causal LM's training loss: the logits at position t predict the
    label at t+1, positions labelled -100 are ignored, and the logits are upcast to fp32 first.
    One record at a time, so no padding ever enters it.
    """
    device = next(model.parameters()).device
    input_ids = torch.tensor([encoded.input_ids], device=device)
    logits = model(input_ids=input_ids).logits[0, :-1].float()
    targets = torch.tensor(encoded.labels[1:], device=device)
    nll = F.cross_entropy(logits, targets, ignore_index=IGNORE_INDEX, reduction="sum")
    return float(nll), int((targets != IGNORE_INDEX).sum())


def predict(chat: ChatModel, prompt: list[dict[str, str]], side: str, max_new_tokens: int,
            flag: StopFlag) -> tuple[str, int]:
    """The greedy answer of ``side`` to ``prompt`` and its length in tokens.

    The chat's own answering (:func:`engine.models.generation.answer`): the prompt rendered with
    the chat template and its generation prompt, the adapter switched off around the whole
    generation for ``base``, an end at eos or the template's end-of-turn token, and an end within
    a token of a stop request, which leaves this record out.
    """
    pieces: list[str] = []
    reason, tokens, _ = answer(chat, prompt, side, Settings(max_new_tokens=max_new_tokens), flag.event,
                               pieces.append)
    if reason == "stopped":
        raise Stopped
    return "".join(pieces).strip(), tokens - (reason == "eos")


class Reporter:
    """Counts a phase's records and writes ``progress`` events, at most every PROGRESS_EVERY_S."""

    def __init__(self, events: EventWriter, tally: Tally, phase: str, total: int) -> None:
        self.events, self.tally = events, tally
        tally.phase, tally.done, tally.total = phase, 0, total
        self.last = 0.0
        self.emit()

    def advance(self) -> None:
        """One more record done."""
        self.tally.done += 1
        if self.tally.done == self.tally.total or time.monotonic() - self.last >= PROGRESS_EVERY_S:
            self.emit()

    def emit(self) -> None:
        """Write where the phase is now."""
        self.last = time.monotonic()
        self.events.emit(PROGRESS, phase=self.tally.phase, done=self.tally.done, total=self.tally.total)


def figures(tally: Tally, side: str) -> dict[str, float | None]:
    """Loss, perplexity and the similarity means of one side (None where not measured)."""
    loss = per_record = None
    if tally.losses_done and tally.tokens:
        loss = _finite(tally.nll[side] / tally.tokens)
        per_record = _finite(tally.record_means[side] / tally.summary["records"])
    out: dict[str, float | None] = {"loss": loss, "perplexity": _exp(loss), "loss_per_record": per_record}
    out.update(similarity.mean_scores(tally.scores[side]))
    return out


def write_metrics(job_dir: Path, tally: Tally, complete: bool) -> dict[str, Any] | None:
    """Write ``metrics.json`` atomically and return it; nothing (None) before the data was read."""
    if not tally.summary:
        return None
    metrics = {"v": 1, "complete": complete, **tally.summary, "tokens": tally.tokens if tally.losses_done else None,
               "predicted": len(tally.scores["tuned"]), "loss_mean": "per_token",
               "base": figures(tally, "base"), "tuned": figures(tally, "tuned")}
    write_text_atomic(job_dir / METRICS_FILE, json.dumps(metrics, indent=1, ensure_ascii=False) + "\n")
    return metrics


def _finite(value: float) -> float | None:
    """``value``, or None for NaN and infinities (a diverged adapter): JSON has no such numbers."""
    return value if math.isfinite(value) else None


def _exp(loss: float | None) -> float | None:
    if loss is None:
        return None
    try:
        return math.exp(loss)
    except OverflowError:
        return None
