"""An export job of a run: ``python -m engine export --job-dir RUN/exports/NAME``, top to bottom.

job.yaml (:class:`engine.export.plan.ExportSettings`) → the run's config.yaml → the weights
(adapter, checkpoint or full weights) → refusals before anything slow (damaged weights, a destination
that is a file, inside the run or read-only, outputs that exist, an architecture the GGUF writer does not
know, not enough disk) → ``job_started`` → the adapter
copy (``adapter_only``) → tokenizer → an Ollama template derived from the chat template (checked
now, so a template Ollama cannot follow fails before minutes of work) → the base loaded
unquantized with the adapter merged in (:mod:`engine.jobs.merge`) → ``merged/`` → one GGUF per
type (:mod:`engine.jobs.gguf_writer`) → ``Modelfile`` → the outputs checked against training
(:mod:`engine.jobs.export_check`; a disagreement fails the job, its files kept, nothing pushed) → with ``push``, the
upload (:mod:`engine.jobs.hub_push`) → ``job_finished``.

**Pushing** (``push: ORG/NAME``): right after ``job_started`` the Hub is asked whether the token may write there
and the repo is created (``private`` when asked) or found; after the outputs, one commit uploads the adapter (a
clean PEFT copy naming the base model, with its tokenizer) at the repo's top, each output the export wrote
(``merged/`` as a folder, the GGUF files and the Modelfile at the top) and ``README.md``, the model card
(:mod:`engine.export.card`). The adapter copy and the card are first written to ``hub/`` in the job's folder,
which is kept: what went to the top of the repo.

**Atomic outputs**: everything is written inside a temporary folder ``.tuitune-export-XXXX`` in the
destination and renamed into place when complete (``merged/`` whole, each GGUF whole), then the
temporary folder is removed, on a stop or a failure too. So an output name that exists is a
finished output; a SIGKILL leaves at most the hidden temporary folder, which the next export to that
destination removes (its lock is free). Existing outputs are
never overwritten: the job refuses before it starts. The destination itself is locked for the job's life
(by its supervisor, ``JOBS`` in :mod:`engine.supervisor.launch`): a second export to it is refused.

**Events** (``RUN/exports/NAME/events.jsonl``):

- ``job_started``: ``kind`` ("export"), ``run_name``, ``weights`` (relative to the run), ``model``
  {``name_or_path``, ``architecture``, ``dtype``, ``quant``, ``method``}, ``destination``,
  ``outputs`` (names it will write), ``needed_bytes``, ``free_bytes``, ``pid``;
  ``push`` (the repo id, when pushing);
- ``phase``: ``name`` (``loading_model``, ``merging``, ``saving``, ``pushing``), ``message``;
- ``progress``: ``phase`` (``merged``, ``gguf`` or ``push``), ``output`` (the file or folder being written; the
  repo id for ``push``), ``done``, ``total`` (tensors; for ``merged`` 0 of 1 then 1 of 1; bytes uploaded for
  ``push``, after each file); at most about twice a second and always the last of each output;
- one terminal event: ``job_finished`` with ``destination``, ``outputs`` [{``name``, ``path``,
  ``bytes``}], ``elapsed_s``, ``checks`` (one verdict per output that renders chats: the fields of
  :class:`engine.data.verdicts.Verdict`), and when pushed ``pushed`` {``repo_id``, ``url`` (the commit's), ``commit``,
  ``files`` (paths in the repo), ``bytes``}; ``job_stopped`` (SIGTERM/SIGINT, answered between tensors and
  between outputs) with ``phase``, ``output``, ``done``, ``total``, ``killed`` (false), ``outputs``
  (those finished before the stop, kept); or ``job_failed`` with ``cause``, ``hint``, ``errors``,
  ``exit_code``, ``signal``, ``log_tail`` (as ``run_failed``).
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.config import RunConfig
from engine.export import plan
from engine.export.adapter import copy_adapter
from engine.export.card import CARD_FILE, model_card
from engine.export.ollama import TemplateError, modelfile
from engine.files import write_text_atomic
from engine.jobs import hub_push
from engine.jobs.export_check import check_export
from engine.jobs.gguf_writer import GGUFError, Progress, write_gguf
from engine.jobs.merge import load_merged, save_merged
from engine.jobs.runner import JobError, StopFlag, job_failure, read_job_settings, read_run_config, run_job
from engine.locks import FolderLock
from engine.models.demo import resolve_model
from engine.models.info import ModelInfo, read_model_info
from engine.models.loading import hub_kwargs
from engine.models.tokenizer import load_tokenizer
from engine.protocol import JOB_FINISHED, JOB_STARTED, PHASE, PROGRESS, EventWriter, read_events
from engine.stages import STAGES

log = logging.getLogger("engine.jobs.export")
PROGRESS_EVERY_S = 0.5
PUSH_DIR = "hub"
"""The folder of the job's own folder holding what a push puts at the top of the repo: the adapter and the card."""


@dataclass
class Tally:
    """Where the export is and what it has finished; read by ``main`` to report a stop."""

    phase: str = "starting"
    output: str | None = None
    done: int = 0
    total: int = 0
    finished: list[dict[str, Any]] = field(default_factory=list)
    """Outputs renamed into place: ``name``, ``path``, ``bytes``."""
    pushed: dict[str, Any] | None = None
    """The commit a push made (job_finished's ``pushed``)."""


def main(argv: list[str]) -> int:
    """``python -m engine export --job-dir RUN/exports/NAME``."""
    tally = Tally()
    return run_job(argv, "export", "Export a run's model.",
                   work=lambda job_dir, events, flag: export(job_dir, events, flag, tally),
                   stopped=lambda _: {"phase": tally.phase, "output": tally.output, "done": tally.done,
                                      "total": tally.total, "outputs": tally.finished},
                   failure=failure)


def export(job_dir: Path, events: EventWriter, flag: StopFlag, tally: Tally) -> None:
    """Run the whole export of ``job_dir`` (``RUN/exports/NAME``), writing events as it goes."""
    started = time.monotonic()
    settings = read_job_settings(job_dir, plan.ExportSettings)
    run_dir, config = read_run_config(job_dir)
    full = config.adapter.method == "full"
    weights = find_weights(run_dir, settings.weights, full)
    if full and settings.adapter_only:
        raise JobError("a full fine-tune has no adapter to copy (adapter_only)")
    if full and settings.push and not (settings.merged or settings.gguf):
        raise JobError("a full fine-tune has no adapter to push alone: push it with merged or a gguf type")
    if STAGES[config.stage].score_head and (settings.gguf or settings.ollama):
        raise JobError(f"{run_dir.name} trained a reward model (stage {config.stage}): it scores answers and does not "
                       "generate, so it has no GGUF or Ollama form; export it --merged or --adapter-only")
    if problem := plan.request_problem(run_dir, weights, settings, holding=True):
        raise JobError(problem)
    destination = Path(settings.to).resolve() if settings.to else job_dir
    names = plan.outputs(settings, run_dir.name)
    if existing := plan.taken(destination, names):
        raise JobError(f"{existing[0]} already exists; an export never overwrites: choose another destination")
    name = config.model.name_or_path
    base_path = resolve_model(name)
    info = read_model_info(base_path)
    if settings.gguf and info.architecture and (problem := plan.architecture_problem(info.architecture)):
        raise JobError(problem)  # (a model not on this machine yet is checked once loaded, by the writer)
    needed = sum(plan.needed_bytes(settings.merged, settings.gguf, info.params_total or 0, info.dtype).values())
    destination.mkdir(parents=True, exist_ok=True)
    for folder in plan.remove_stale_staging(destination):  # a killed export's partial files count against the room
        log.info("removed %s, left by an export that was killed", folder)
    if problem := plan.room_problem(destination, needed):
        raise JobError(problem, hint="free some space, or export to another disk with --to DIR")
    events.emit(JOB_STARTED, kind="export", run_name=run_dir.name, weights=settings.weights,
                model={"name_or_path": name, "architecture": info.architecture, "dtype": info.dtype,
                       "quant": config.quant.mode, "method": config.adapter.method},
                destination=str(destination), outputs=names, needed_bytes=needed,
                free_bytes=plan.free_bytes(destination), pid=os.getpid(), **({"push": settings.push} if settings.push
                                                                              else {}))
    if settings.push:
        hub_push.open_repo(settings.push, settings.private)
    flag.check()

    if settings.adapter_only:
        target = copy_adapter(weights, Path(settings.adapter_only), name)
        tally.finished.append(describe_output(target))
    checks: list[dict[str, Any]] = []
    if settings.merged or settings.gguf:
        checks = write_outputs(run_dir, config, base_path, info, weights, destination, settings, events, flag, tally)
    if settings.push:
        push(job_dir, run_dir, config, weights, destination, settings, events, flag, tally)
    finish(events, tally, destination, started, checks)


def write_outputs(run_dir: Path, config: RunConfig, base_path: str, info: ModelInfo, weights: Path,
                  destination: Path, settings: plan.ExportSettings, events: EventWriter, flag: StopFlag,
                  tally: Tally) -> list[dict[str, Any]]:
    """``merged/``, the GGUF files and the Modelfile, each renamed into ``destination`` when whole; returns the
    chat-template checks of what was written against training (a disagreement raises :class:`JobError`)."""
    name, full = config.model.name_or_path, config.adapter.method == "full"

    # ---- tokenizer and the Ollama template, before anything slow -----------------------
    events.emit(PHASE, name="loading_model", message=f"loading {name} with {settings.weights}")
    hub = hub_kwargs(config)
    tokenizer = load_tokenizer(base_path, config.model.revision, config.model.trust_remote_code)
    ollama = ollama_modelfile(tokenizer, plan.gguf_name(run_dir.name, settings.gguf[0])) if settings.ollama else None
    flag.check()

    # ---- the merged model, unquantized -------------------------------------------------
    if not full:
        events.emit(PHASE, name="merging", message="merging the adapter into the full-precision base")
    model = load_merged(config, base_path, weights, tokenizer.pad_token_id)
    if not info.params_total:  # the model was not on this machine before: its size is known now
        params = sum(p.numel() for p in model.parameters())
        dtype = str(next(model.parameters()).dtype).removeprefix("torch.")
        if problem := plan.room_problem(destination, sum(plan.needed_bytes(settings.merged, settings.gguf, params,
                                                                           dtype).values())):
            raise JobError(problem, hint="free some space, or export to another disk with --to DIR")
    flag.check()
    staging = Path(tempfile.mkdtemp(dir=destination, prefix=plan.STAGING_PREFIX))
    staging_lock = FolderLock(staging)  # held while writing: a later export leaves this folder alone
    staging_lock.acquire()
    try:
        tokenizer_dir = write_merged(model, tokenizer, base_path, hub, staging, destination, settings, events, tally)
        flag.check()
        model_config = model.config.to_dict()
        state = dict(model.state_dict())
        for kind in settings.gguf:
            out = plan.gguf_name(run_dir.name, kind)
            reporter = Reporter(events, tally, "gguf", out)
            write_gguf(staging / out, state, model_config, tokenizer_dir, kind, f"{run_dir.name} ({name} + tuitune)",
                       Progress(reporter.report, flag.check))
            os.replace(staging / out, destination / out)
            tally.finished.append(describe_output(destination / out))
        if ollama is not None:
            write_text_atomic(destination / plan.MODELFILE, ollama)
            tally.finished.append(describe_output(destination / plan.MODELFILE))
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        staging_lock.release()
    checks = check_export(tokenizer, destination, [output["name"] for output in tally.finished])
    if errors := [check.line() for check in checks if check.is_error]:
        raise JobError(f"the exported model disagrees with training: {errors[0].split(maxsplit=1)[1]}", errors=errors,
                       hint="its files are complete, but serving them asks the model unlike training")
    return [check.to_dict() for check in checks]


def push(job_dir: Path, run_dir: Path, config: RunConfig, weights: Path, destination: Path,
         settings: plan.ExportSettings, events: EventWriter, flag: StopFlag, tally: Tally) -> None:
    """Upload the adapter, the outputs and the model card to ``settings.push`` in one commit."""
    repo_id = settings.push or ""
    outputs = [out for out in plan.outputs(settings, run_dir.name) if (destination / out).exists()]
    top = job_dir / PUSH_DIR
    if config.adapter.method != "full":
        copy_adapter(weights, top, config.model.name_or_path)
    top.mkdir(exist_ok=True)
    card = model_card(repo_id, run_dir, config, read_events(run_dir), settings.weights, outputs)
    write_text_atomic(top / CARD_FILE, card)
    files = [(path.relative_to(top).as_posix(), path) for path in sorted(top.rglob("*")) if path.is_file()]
    for out in outputs:
        path = destination / out
        inside = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
        files += [(p.relative_to(destination).as_posix(), p) for p in inside]
    events.emit(PHASE, name="pushing", message=f"uploading {len(files)} files to {repo_id}")
    reporter = Reporter(events, tally, "push", repo_id)
    tally.pushed = hub_push.upload(repo_id, files, f"tuitune export of {run_dir.name} ({settings.weights})",
                                   reporter.report, flag.check)


def write_merged(model: Any, tokenizer: Any, base_path: str, hub: dict[str, Any], staging: Path, destination: Path,
                 settings: plan.ExportSettings, events: EventWriter, tally: Tally) -> Path:
    """``merged/`` renamed into place when asked for; returns the folder holding the tokenizer files."""
    if not settings.merged:
        tokenizer.save_pretrained(staging / "tokenizer")
        return staging / "tokenizer"
    events.emit(PHASE, name="saving", message="writing the merged model")
    reporter = Reporter(events, tally, "merged", plan.MERGED_DIR, total=1)
    save_merged(model, tokenizer, base_path, staging / plan.MERGED_DIR, hub)
    os.replace(staging / plan.MERGED_DIR, destination / plan.MERGED_DIR)
    reporter.report(1, 1)
    tally.finished.append(describe_output(destination / plan.MERGED_DIR))
    return destination / plan.MERGED_DIR


def finish(events: EventWriter, tally: Tally, destination: Path, started: float,
           checks: list[dict[str, Any]] | None = None) -> None:
    """The terminal ``job_finished``, with the chat-template checks of the outputs (engine.jobs.export_check)."""
    tally.phase = "done"
    events.emit(JOB_FINISHED, destination=str(destination), outputs=tally.finished,
                elapsed_s=round(time.monotonic() - started, 3), checks=checks or [],
                **({"pushed": tally.pushed} if tally.pushed else {}))


def ollama_modelfile(tokenizer: Any, gguf_name: str) -> str:
    """The Modelfile for ``gguf_name`` from the tokenizer's own chat template.

    Raises:
        JobError: no chat template, or one an Ollama template cannot follow.
    """
    if not getattr(tokenizer, "chat_template", None):
        raise JobError("the model has no chat template, so there is nothing to derive an Ollama template from",
                       hint="export without --ollama, or use a model with a chat template")

    def render(messages: list[dict[str, str]], generation: bool) -> str:
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=generation)

    ids = tokenizer("a", add_special_tokens=True)["input_ids"]
    adds_bos = tokenizer.bos_token_id is not None and ids[:1] == [tokenizer.bos_token_id]
    try:
        return modelfile(gguf_name, render, tokenizer.all_special_tokens, tokenizer.eos_token, tokenizer.bos_token,
                         adds_bos)
    except TemplateError as exc:
        raise JobError(f"Ollama: {exc}",
                       hint="export without --ollama and write the Modelfile's TEMPLATE by hand") from None


class Reporter:
    """``progress`` events of one output, at most every PROGRESS_EVERY_S (its last one always)."""

    def __init__(self, events: EventWriter, tally: Tally, phase: str, output: str, total: int = 0) -> None:
        self.events, self.tally, self.last = events, tally, 0.0
        tally.phase, tally.output, tally.done, tally.total = phase, output, 0, total
        self.emit()

    def report(self, done: int, total: int) -> None:
        """``done`` of ``total`` steps of this output are written."""
        self.tally.done, self.tally.total = done, total
        if done == total or time.monotonic() - self.last >= PROGRESS_EVERY_S:
            self.emit()

    def emit(self) -> None:
        """Write where the output is now."""
        self.last = time.monotonic()
        self.events.emit(PROGRESS, phase=self.tally.phase, output=self.tally.output, done=self.tally.done,
                         total=self.tally.total)


def find_weights(run_dir: Path, weights: str, full: bool) -> Path:
    """The adapter (or full weights) folder inside the run, checked to hold what it should."""
    folder = (run_dir / weights).resolve()
    if not folder.is_relative_to(run_dir.resolve()):
        raise JobError(f"the weights {weights!r} are outside the run folder {run_dir}")
    marker = "config.json" if full else "adapter_config.json"
    if not (folder / marker).is_file():
        raise JobError(f"no {'weights' if full else 'adapter'} in {folder} (no {marker})",
                       hint="export a run that finished or stopped with a saved adapter, or one of its checkpoints")
    return folder


def describe_output(path: Path) -> dict[str, Any]:
    """An output for the events: its name, absolute path and size in bytes."""
    size = sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.is_dir() else path.stat().st_size
    return {"name": path.name, "path": str(path), "bytes": size}


def failure(exc: BaseException) -> dict[str, Any]:
    """``cause``, ``hint`` and ``errors`` of an export that failed (eval's, plus the GGUF writer's)."""
    if isinstance(exc, GGUFError):
        return {"cause": str(exc), "hint": "export the merged model instead (--merged)", "errors": []}
    return job_failure(exc)
