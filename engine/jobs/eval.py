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

**The loss** is masked exactly as in training (:func:`engine.data.encode.encode_conversations`
with the run's ``cutoff_len`` and ``system_prompt``: only assistant tokens count, cut at the
cutoff) and shifted as a causal LM's loss is. ``loss`` is **per token over the whole set**: the
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

import argparse
import errno
import json
import logging
import math
import os
import signal
import sys
import threading
import time
import traceback
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
import torch.nn.functional as F
import transformers
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from engine.config import ConfigError, RunConfig, load_config
from engine.data.checks import CheckedRecord, check_paths
from engine.data.encode import IGNORE_INDEX, Encoded, encode_conversations
from engine.data.formats import with_system
from engine.data.problems import DataError, Problem
from engine.files import write_text_atomic
from engine.jobs import similarity
from engine.models.demo import resolve_model
from engine.models.generation import ChatModel, Settings, answer, load_chat_model
from engine.models.info import ModelError
from engine.models.loading import check_model, cuda_bf16, device_name
from engine.protocol import CONFIG_FILE, JOB_FAILED, JOB_FILE, JOB_FINISHED, JOB_STARTED, JOB_STOPPED, PHASE
from engine.protocol import PROGRESS, WARNING, EventWriter, read_log_tail

log = logging.getLogger("engine.jobs.eval")

HANDLED_SIGNALS = (signal.SIGTERM, signal.SIGINT)
METRICS_FILE = "metrics.json"
PREDICTIONS_FILE = "predictions.jsonl"
PROGRESS_EVERY_S = 0.5
"""Least seconds between two progress events of a phase (its last one is always written)."""
ENCODE_BATCH = 512
MODEL_HINT = "check the run's model.name_or_path: the model it trained on must still be readable here"


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


class JobError(Exception):
    """The job cannot run as asked; ``cause`` is one line, ``errors`` locate each problem."""

    def __init__(self, cause: str, errors: list[str] | None = None, hint: str | None = None) -> None:
        super().__init__(cause)
        self.cause, self.errors, self.hint = cause, errors or [], hint


class Stopped(Exception):
    """A stop was asked for; raised between records (or out of a generation)."""


@dataclass
class StopFlag:
    """Set by SIGTERM/SIGINT, checked between records and, through ``event``, at every generated token."""

    event: threading.Event = field(default_factory=threading.Event)

    def request(self, *_: object) -> None:
        """Signal handler: remember the stop; the job answers at the next check."""
        self.event.set()

    def check(self) -> None:
        """Raise :class:`Stopped` when a stop was asked for."""
        if self.event.is_set():
            raise Stopped


@dataclass
class Item:
    """One evaluated record: where it is, its conversation, its tokens and what was measured."""

    where: CheckedRecord
    messages: list[dict[str, str]]
    """The conversation with the run's system prompt added as in training."""
    encoded: Encoded | None = None
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
    parser = argparse.ArgumentParser(prog="python -m engine eval", description="Evaluate a run's adapter.")
    parser.add_argument("--job-dir", required=True, type=Path)
    args = parser.parse_args(argv)
    job_dir = args.job_dir.resolve()
    flag = StopFlag()
    for sig in HANDLED_SIGNALS:
        signal.signal(sig, flag.request)
    # The supervisor starts its child with these blocked, so a stop sent while torch imported waited here.
    signal.pthread_sigmask(signal.SIG_UNBLOCK, HANDLED_SIGNALS)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(name)s %(message)s")
    transformers.utils.logging.disable_progress_bar()
    tally = Tally()
    with EventWriter(job_dir) as events:
        try:
            evaluate(job_dir, events, flag, tally)
            return 0
        except Stopped:
            written = write_metrics(job_dir, tally, complete=False)
            events.emit(JOB_STOPPED, phase=tally.phase, done=tally.done, total=tally.total, killed=False,
                        metrics_path=METRICS_FILE if written else None,
                        predictions_path=PREDICTIONS_FILE if (job_dir / PREDICTIONS_FILE).exists() else None)
            return 0
        except BaseException as exc:  # noqa: BLE001 - every failure must become an event
            traceback.print_exc()
            sys.stderr.flush()
            events.emit(JOB_FAILED, **describe_failure(exc), exit_code=1, signal=None,
                        log_tail=read_log_tail(job_dir, lines=30))
            return 1


def evaluate(job_dir: Path, events: EventWriter, flag: StopFlag, tally: Tally) -> None:
    """Run the whole evaluation in ``job_dir`` (``RUN/evals/NAME``), writing events as it goes."""
    started = time.monotonic()
    settings = read_settings(job_dir)
    run_dir = job_dir.parent.parent
    config = read_run_config(run_dir)
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
    items = encode_items(chosen, tokenizer, config)
    for message in data_warnings(items, config.data.cutoff_len):
        events.emit(WARNING, message=message, code="data")
    items = [it for it in items if it.encoded.trained_tokens > 0]
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
            prompt = item.messages[:-1]
            answers = {side: predict(chat, prompt, side, settings.max_new_tokens, flag) for side in ("base", "tuned")}
            reference = item.messages[-1]["content"]
            scores = {side: similarity.scores(answers[side][0], reference) for side in answers}
            out.write(json.dumps({
                "index": item.where.index, "file": item.where.file, "line": item.where.line, "prompt": prompt,
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


def read_settings(job_dir: Path) -> EvalSettings:
    """The job's ``job.yaml``, validated.

    Raises:
        JobError: the file is missing, not YAML, or asks for something unknown or out of range.
    """
    path = job_dir / JOB_FILE
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        return EvalSettings.model_validate(data)
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise JobError(f"cannot read {path}: {exc}") from exc
    except ValidationError as exc:
        errors = [f"{path} {'.'.join(str(p) for p in e['loc']) or '(top)'}: {e['msg']}" for e in exc.errors()]
        raise JobError("the job's settings are invalid", errors) from exc


def read_run_config(run_dir: Path) -> RunConfig:
    """The run's resolved ``config.yaml`` (the job folder must be ``RUN/evals/NAME``)."""
    if not (run_dir / CONFIG_FILE).is_file():
        raise JobError(f"{run_dir} is not a run folder (no {CONFIG_FILE}); an evaluation lives in RUN/evals/NAME")
    return load_config(run_dir / CONFIG_FILE)


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


def encode_items(records: list[CheckedRecord], tokenizer: Any, config: RunConfig) -> list[Item]:
    """Each record encoded with the run's system prompt and cutoff, as training encodes it.

    Raises:
        DataError: naming every record the chat template fails on.
    """
    items = [Item(r, with_system(r.messages, config.data.system_prompt)) for r in records]
    for first in range(0, len(items), ENCODE_BATCH):
        chunk = items[first:first + ENCODE_BATCH]
        try:
            encoded = encode_conversations([it.messages for it in chunk], tokenizer, config.data.cutoff_len)
        except Exception:  # a chat template that rejects some record: name each one
            raise DataError(template_problems(chunk, tokenizer, config.data.cutoff_len)) from None
        for item, one in zip(chunk, encoded):
            item.encoded = one
    return items


def template_problems(chunk: list[Item], tokenizer: Any, cutoff_len: int) -> list[Problem]:
    """A located problem for every record of ``chunk`` that the chat template fails on."""
    problems = []
    for item in chunk:
        try:
            encode_conversations([item.messages], tokenizer, cutoff_len)
        except Exception as exc:
            where = item.where
            problems.append(Problem(where.file, where.line, where.index, None, f"the chat template failed: {exc}"))
    return problems


def data_warnings(items: list[Item], cutoff_len: int) -> list[str]:
    """What the user should know about truncation, as training says it."""
    warnings = []
    truncated = sum(1 for it in items if it.encoded.truncated)
    if truncated:
        warnings.append(f"{truncated} records truncated at cutoff_len {cutoff_len}")
    empty = [it for it in items if it.encoded.trained_tokens == 0]
    if empty:
        warnings.append(f"{len(empty)} records left out: no labelled token left after truncation at cutoff_len "
                        f"{cutoff_len} (first: {empty[0].where.file} record {empty[0].where.index})")
    return warnings


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


def describe_failure(exc: BaseException) -> dict[str, Any]:
    """``cause``, ``hint`` and ``errors`` for an exception that ended the job, by its type."""
    if isinstance(exc, JobError):
        return {"cause": exc.cause, "hint": exc.hint, "errors": exc.errors}
    if isinstance(exc, ConfigError):
        return {"cause": "the run's config.yaml is invalid", "hint": None, "errors": list(exc.problems)}
    if isinstance(exc, DataError):
        return {"cause": "the evaluation data has problems", "hint": "run `tuitune data check` on it",
                "errors": [str(p) for p in exc.problems]}
    if isinstance(exc, ModelError):
        return {"cause": _first_line(exc), "hint": MODEL_HINT, "errors": []}
    if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
        return {"cause": f"no space left on the disk: {exc}", "hint": "free some space and evaluate again",
                "errors": []}
    if isinstance(exc, torch.OutOfMemoryError):
        return {"cause": "out of GPU memory", "hint": "evaluate with a lower --max-new-tokens, or on a larger GPU",
                "errors": []}
    return {"cause": f"{type(exc).__name__}: {_first_line(exc)}", "hint": None, "errors": []}


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
