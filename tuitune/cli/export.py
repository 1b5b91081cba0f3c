"""``tuitune export RUN [--best] [--to DIR] [--merged] [--gguf TYPE]… [--ollama] [--adapter-only DIR] [--push ORG/NAME
[--private]] [--name] [--detach]``.

Writes a run's model where it is served: ``merged/`` (the adapter merged into the full-precision
base, sharded safetensors with the tokenizer, chat template and generation config), one GGUF
file per ``--gguf`` type (f16, bf16, q8_0; tokenizer and chat template inside), a ``Modelfile``
for Ollama next to the first GGUF (``--ollama``; q8_0 when no type is given), and with
``--adapter-only DIR`` a clean PEFT folder naming the base model the run chose. ``RUN`` is a run
folder or name, or a checkpoint folder of a run; a run without ``adapter/`` is exported at its
newest complete checkpoint (``resolve_trained``, as chat and eval); with ``--best`` at its checkpoint of the lowest
eval loss (``tuitune.runs.checkpoints.best_checkpoint``, as the Checkpoints screen marks it). ``--push ORG/NAME``
uploads, as the job's last phase, the adapter, what the export wrote and a model card to that Hub repo (created,
``--private`` if asked, or pushed to as a new commit); alone it pushes the adapter.

The files go to ``--to DIR`` (a folder outside the run or inside ``RUN/exports/``) or the job's own
folder ``RUN/exports/NAME/``. The export is a long job of the run (``python -m engine export`` under
the supervisor, see docs/run-folder.md, Jobs), which holds its destination's lock while it lives:
this command checks what it can at once (the weights whole, the destination, the GGUF architecture,
outputs that exist, free disk space), starts it and follows its events. Ctrl-C stops it (finished
outputs are kept, a half-written one never appears); a second Ctrl-C kills it. ``--adapter-only``
alone needs no job: the copy is made here. Exit status: 0 when the export finished, 1 when it
stopped, failed or was lost, or the run has nothing to export or no room for it; 2 for bad
arguments, a destination that is a file, inside the run, read-only or being written by another
export, damaged weights, ``--best`` with no best checkpoint to take, a malformed ``--push`` repo id or no Hugging
Face token, or when it could not start.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from engine.data.verdicts import Verdict
from engine.export import plan
from engine.export.adapter import copy_adapter
from engine.protocol import CHECKPOINTS_DIR, JOB_FAILED, JOB_FINISHED, LOG_FILE, TERMINAL_TYPES
from engine.units import fmt_bytes
from tuitune.cli.common import runs_root
from tuitune.cli.follow import JobProgress, print_failure
from tuitune.runs.checkpoints import NoBestCheckpoint, best_checkpoint
from tuitune.runs.folder import read_meta, resolve_trained, summarize
from tuitune.runs.launch import start_job

NOT_OFFERED = {"q4_k_m": "q4_k_m is not offered: the gguf library cannot write K-quants and tuitune will not write "
                         "another type under its name; export q8_0 (or f16) and quantize with llama.cpp's "
                         "llama-quantize"}


class Refused(Exception):
    """The export cannot be asked for as given; ``code`` is the exit status (1 or 2)."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


def run(args: argparse.Namespace) -> int:
    """Check the request, then copy the adapter here or start the job and follow it."""
    try:
        run_dir, weights, settings = checked_request(args)
    except Refused as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.code
    if not (settings.merged or settings.gguf or settings.push):
        return copy_only(weights, settings, read_meta(run_dir).model)
    try:
        job_dir, _ = start_job(run_dir, "export", settings.model_dump(), args.name)
    except (OSError, RuntimeError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.detach:
        print(job_dir)
        return 0
    print(f"exporting {run_dir.name} ({settings.weights}) to {settings.to or job_dir}  "
          f"(engine log: {job_dir / LOG_FILE})")
    return ExportFollower(job_dir).follow()


def checked_request(args: argparse.Namespace) -> tuple[Path, Path, plan.ExportSettings]:
    """The run, its weights and the job's settings, once everything that can be checked here is.

    Raises:
        Refused: saying what is wrong, with exit status 2 for bad arguments and what refuses the export before
            it starts (:func:`engine.export.plan.request_problem`), and 1 for the run's state.
    """
    kinds = [kind.lower() for kind in args.gguf or []]
    for kind in kinds:
        if kind in NOT_OFFERED:
            raise Refused(NOT_OFFERED[kind], 2)
        if kind not in plan.GGUF_TYPES:
            raise Refused(f"--gguf {kind}: unknown type; choose from {', '.join(plan.GGUF_TYPES)}", 2)
    if args.ollama and not kinds:
        print("note: --ollama without --gguf writes a q8_0 GGUF for the Modelfile", file=sys.stderr)
        kinds = ["q8_0"]
    if not (args.merged or kinds or args.adapter_only or args.push):
        raise Refused("nothing to export: give --merged, --gguf TYPE, --ollama, --adapter-only DIR or --push ORG/NAME",
                      2)
    if args.private and not args.push:
        raise Refused("--private applies to --push ORG/NAME: the repo to create", 2)
    if args.push:
        check_push(args.push)
    try:
        run_dir, weights = resolve_trained(args.run, runs_root(args))
    except FileNotFoundError as exc:
        raise Refused(str(exc), 1) from None
    if args.best:
        weights = best_weights(args.run, run_dir)
    meta = read_meta(run_dir)
    if meta.method == "full" and args.adapter_only:
        raise Refused(f"{run_dir.name} is a full fine-tune: there is no adapter to copy (--adapter-only)", 1)
    if meta.method == "full" and args.push and not (args.merged or kinds):
        raise Refused(f"{run_dir.name} is a full fine-tune: there is no adapter to push alone; add --merged or --gguf",
                      1)
    to = str(Path(args.to).expanduser().resolve()) if args.to else None
    adapter_only = str(Path(args.adapter_only).expanduser().resolve()) if args.adapter_only else None
    settings = plan.ExportSettings(weights=str(weights.relative_to(run_dir)), merged=args.merged,
                                   gguf=list(dict.fromkeys(kinds)), ollama=args.ollama, to=to,
                                   adapter_only=adapter_only, push=args.push, private=args.private)
    if problem := plan.request_problem(run_dir, weights, settings):
        raise Refused(problem, 2)
    check_model_and_room(run_dir, meta.model, settings)
    return run_dir, weights, settings


def best_weights(given: str, run_dir: Path) -> Path:
    """``--best``: the run's checkpoint of the lowest eval loss (:func:`tuitune.runs.checkpoints.best_checkpoint`).

    Raises:
        Refused: with exit status 2, when ``given`` is a checkpoint already or the run has no best checkpoint to take.
    """
    if Path(given).expanduser().resolve().parent.name == CHECKPOINTS_DIR:
        raise Refused(f"{given} is a checkpoint folder already; --best chooses among a run's checkpoints: give the run "
                      f"{run_dir.name}", 2)
    try:
        return best_checkpoint(run_dir, summarize(run_dir).state).path
    except NoBestCheckpoint as exc:
        raise Refused(str(exc), 2) from None


def check_push(repo_id: str) -> None:
    """Refuse a push the Hub would not take, before anything else is looked at: a malformed repo id, no token, a
    token the Hub refuses or that may not write into the repo's namespace (asked of the Hub).

    Raises:
        Refused: with exit status 2.
    """
    if problem := plan.push_problem(repo_id) or plan.push_access_problem(repo_id):
        raise Refused(problem, 2)


def check_model_and_room(run_dir: Path, model: str, settings: plan.ExportSettings) -> None:
    """Refuse an architecture the GGUF writer does not know, existing outputs, and a full disk.

    Raises:
        Refused: with exit status 1.
    """
    from engine.models.info import ModelError, read_model_info

    folder = Path(settings.adapter_only) if settings.adapter_only else None
    if folder is not None and folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
        raise Refused(f"{folder} already exists; give a new or empty folder for --adapter-only", 1)
    if settings.to:
        names = plan.outputs(settings, run_dir.name)
        if existing := plan.taken(Path(settings.to), names):
            raise Refused(f"{existing[0]} already exists; an export never overwrites: choose another --to", 1)
    try:
        info = read_model_info(model)
    except ModelError as exc:
        raise Refused(f"the run's model {model}: {exc}", 1) from None
    if settings.gguf and info.architecture and (problem := plan.architecture_problem(info.architecture)):
        raise Refused(problem, 1)
    if info.params_total:
        needed = sum(plan.needed_bytes(settings.merged, settings.gguf, info.params_total, info.dtype).values())
        if problem := plan.room_problem(Path(settings.to) if settings.to else run_dir, needed):
            raise Refused(problem, 1)


def copy_only(weights: Path, settings: plan.ExportSettings, base: str) -> int:
    """``--adapter-only`` alone: the clean PEFT folder, copied here."""
    try:
        target = copy_adapter(weights, Path(settings.adapter_only or ""), base)
    except (OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"adapter for {base}: {target}")
    return 0


class ExportFollower(JobProgress):
    """Follows an export's events with a progress bar until its terminal event."""

    STOPPING = "stopping after the current tensor (Ctrl-C again to kill)"
    KILLING = "killing the export"

    def started(self, event: dict[str, Any]) -> str:
        model = event.get("model") or {}
        push = f", then pushed to {event['push']}" if event.get("push") else ""
        if not event.get("outputs"):
            return f"{model.get('name_or_path')} with {event.get('weights')}{push}"
        return (f"{model.get('name_or_path')} ({model.get('architecture')}) with {event.get('weights')}: "
                f"{', '.join(event.get('outputs') or [])} into {event.get('destination')}, about "
                f"{fmt_bytes(event.get('needed_bytes') or 0)}{push}")

    def describe(self, event: dict[str, Any]) -> str:
        return f"push to {event.get('output')} (bytes)" if event.get("phase") == "push" else str(event.get("output"))

    def report(self, end: dict[str, Any]) -> int:
        kind = end["type"]
        if kind == JOB_FINISHED:
            for output in end.get("outputs") or []:
                print(f"{fmt_bytes(output.get('bytes') or 0):>10}  {output.get('path')}")
            for check in end.get("checks") or []:  # the chat template of each output, checked against training
                print(Verdict.from_dict(check).line())
            if pushed := end.get("pushed"):
                print(f"pushed {len(pushed.get('files') or [])} files ({fmt_bytes(pushed.get('bytes') or 0)}) to "
                      f"{pushed.get('repo_id')}: {pushed.get('url')}")
            return 0
        if kind in TERMINAL_TYPES and kind != JOB_FAILED:
            kept = [output.get("path") for output in end.get("outputs") or []]
            print(f"stopped while writing {end.get('output') or end.get('phase')}; nothing half-written was left"
                  + (f"; finished before the stop: {', '.join(kept)}" if kept else ""))
            return 1
        print_failure(end, self.job_dir)
        return 1
