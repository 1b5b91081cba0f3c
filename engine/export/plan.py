"""What an export writes, where, and how much room it needs. Standard library, pydantic and the
light model facts only: the command line and the Export dialog ask here before a job starts, and
the job asks again before it writes.

**Where an export may write**: a folder (never a file) outside the run or inside ``RUN/exports/`` (never
beside the run's adapter and checkpoints), that this user can write, and that no other export is writing:
an export holds its destination's lock (:class:`engine.locks.FolderLock` on the folder itself, taken by
the supervisor before the job starts, see ``JOBS`` in :mod:`engine.supervisor.launch`) for its life.

**job.yaml** of an export (``RUN/exports/NAME/job.yaml``, written by ``tuitune export``)::

    weights: adapter          # the adapter (or full weights) folder, relative to the run
    merged: true              # write merged/: the merged model as sharded safetensors
    gguf: [q8_0, f16]         # GGUF files to write, one per type (GGUF_TYPES)
    ollama: true              # a Modelfile next to the first GGUF
    to: null                  # the folder the files go to (absolute); null: the job's own folder
    adapter_only: null        # a folder to copy a clean PEFT adapter into (absolute), or null
    push: null                # a Hub repo ORG/NAME to upload the adapter, the outputs and a model card to
    private: false            # with push: create the repo private (an existing repo keeps its visibility)

**Pushing** (``push``): the token is the one huggingface_hub reads (``HF_TOKEN``, or the file ``hf auth login``
writes); it is never written into job.yaml, the job's folder or its log. :func:`push_problem` refuses a malformed
repo id and a missing token before any work.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from engine.data.hub import repo_id_problem
from engine.locks import LOCK_FILE, held_elsewhere, is_locked
from engine.models.safetensors_header import weights_problem as damaged_weights
from engine.protocol import JOB_FOLDERS

GGUF_TYPES = ("f16", "bf16", "q8_0")
"""GGUF types an export writes. Q4_K_M is not among them: the ``gguf`` library cannot write
K-quants, and a writer of our own could not be verified against llama.cpp's."""
GGUF_ARCHITECTURES = {"LlamaForCausalLM": "llama", "MistralForCausalLM": "mistral", "Qwen2ForCausalLM": "qwen2",
                      "Qwen3ForCausalLM": "qwen3"}
"""transformers architectures the GGUF writer knows, by the family name users know them as."""
SUPPORTED = "llama, qwen2, qwen3, mistral"
MERGED_DIR = "merged"
MODELFILE = "Modelfile"
RESERVE = 64 * 1024**2
"""Bytes left free beyond the outputs: the job's events and logs, the tokenizer files."""
BYTES_PER_WEIGHT = {"f16": 2.0, "bf16": 2.0, "q8_0": 34 / 32}
"""Q8_0 stores 32 weights in 34 bytes (an fp16 scale and 32 int8)."""
DTYPE_BYTES = {"float32": 4, "float16": 2, "bfloat16": 2}
LOGIN_HINT = "log in with `hf auth login` (a token with write access) or set HF_TOKEN"
STAGING_PREFIX = ".tuitune-export-"
"""Name prefix of the temporary folder an export writes into, inside the destination. The export holds the
folder's lock (:class:`engine.locks.FolderLock`) while it writes, so a later export can tell a folder left by a
killed job (lock file, lock free) from a live one's."""


def request_problem(run_dir: Path, weights: Path, settings: ExportSettings, holding: bool = False) -> str | None:
    """What refuses an export before it starts, in one line naming what and where, or None: a push that cannot
    be made (:func:`push_problem`), a destination (``to`` or ``adapter_only``) that cannot take it
    (:func:`destination_problem`), a ``to`` another export is writing (:func:`busy_problem`), or damaged weights
    (:func:`weights_problem`). Reads no model.

    Args:
        holding: Asked by the job itself, whose supervisor holds the destination's lock (not asked then).
    """
    if settings.push and (problem := push_problem(settings.push)):
        return problem
    for folder in (settings.to, settings.adapter_only):
        if folder and (problem := destination_problem(Path(folder), run_dir)):
            return problem
    if settings.to and not holding and (problem := busy_problem(Path(settings.to))):
        return problem
    return weights_problem(weights)


def push_problem(repo_id: str) -> str | None:
    """Why the export cannot be pushed to the Hub repo ``repo_id``, or None: not of the form ``ORG/NAME``, or no
    token (read as huggingface_hub reads it: ``HF_TOKEN``, then the file ``hf auth login`` writes). Whether the
    token may write there only the Hub can say: the job asks it before the export's work."""
    if problem := repo_id_problem(repo_id):
        return f"--push: {problem}"
    from huggingface_hub import get_token  # only a push needs it; the app must start without it

    if not get_token():
        return f"cannot push to {repo_id}: no Hugging Face token; {LOGIN_HINT}"
    return None


def push_access_problem(repo_id: str) -> str | None:
    """Why the Hub will not take a push to ``repo_id`` from this token, or None (asks the Hub who the token is):
    it refuses the token, the token is read-only, or ``repo_id``'s namespace is neither the user's nor one of their
    organizations (the Hub would answer 403 to the commit).

    The Hub out of reach is a problem too: nothing could be pushed.
    """
    from huggingface_hub import HfApi

    try:
        me = HfApi().whoami()
    except Exception as exc:  # the client's HTTP errors, and its transport's (not OSErrors)
        if getattr(getattr(exc, "response", None), "status_code", None) in (401, 403):
            return f"cannot push to {repo_id}: the Hub refused the Hugging Face token; {LOGIN_HINT}"
        return f"cannot push to {repo_id}: the Hugging Face Hub cannot be reached ({type(exc).__name__}: {exc})"
    name, (namespace, repo) = me.get("name"), repo_id.split("/", 1)
    if ((me.get("auth") or {}).get("accessToken") or {}).get("role") == "read":
        return f"cannot push to {repo_id}: the Hugging Face token of {name} is read-only; {LOGIN_HINT}"
    if namespace not in {name} | {org.get("name") for org in me.get("orgs") or []}:
        return (f"{repo_id} belongs to {namespace}, where {name} cannot write (the Hub answers 403): push to "
                f"{name}/{repo} or to an organization you belong to")
    return None


def destination_problem(destination: Path, run_dir: Path) -> str | None:
    """Why an export cannot write into the folder ``destination``, or None: it (or a folder above it) is a
    file, it is inside the run but not in ``RUN/exports/``, or this user cannot write it (or, while it does
    not exist, the nearest folder above it, where it would be made)."""
    destination = Path(destination).absolute()
    nearest = destination
    while not os.path.lexists(nearest) and nearest != nearest.parent:
        nearest = nearest.parent
    if not nearest.is_dir():
        return f"{nearest} is a file, not a folder: exports go into a folder; choose another destination"
    run = Path(run_dir).resolve()
    where = destination.resolve()
    exports = run / JOB_FOLDERS["export"]
    if where.is_relative_to(run) and not where.is_relative_to(exports):
        return (f"{destination} is inside the run {run}, beside its adapter and checkpoints: exports go outside "
                f"the run or into {exports}")
    if not os.access(nearest, os.W_OK | os.X_OK):
        if nearest == destination:
            return f"{destination} is read-only to this user; choose another destination"
        return f"{destination} cannot be made: {nearest} is read-only to this user; choose another destination"
    return None


def busy_problem(destination: Path) -> str | None:
    """Why ``destination`` cannot be exported into now, or None: another export holds its lock."""
    return held_elsewhere(destination, "export") if is_locked(destination, lock_file=None) else None


def weights_problem(weights: Path) -> str | None:
    """Why the weights folder cannot be exported, or None: a ``.safetensors`` file in it that is not whole
    (a header that does not parse, or shorter than its header says). Reads the headers only."""
    if damage := damaged_weights(Path(weights)):
        return f"the weights file {damage}; export one of the run's checkpoints, or train it again"
    return None


def remove_stale_staging(destination: Path) -> list[Path]:
    """Remove the temporary folders that exports killed outright left in ``destination``; return them.

    A folder is stale when it has a lock file that no process holds; folders of running exports (and
    folders without a lock file, which no export of this kind wrote) are left alone.
    """
    removed = []
    for folder in destination.glob(f"{STAGING_PREFIX}*"):
        try:
            stale = folder.is_dir() and (folder / LOCK_FILE).is_file() and not is_locked(folder)
        except OSError:  # a lock that cannot be asked may be held
            continue
        if stale:
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
    return removed


class ExportSettings(BaseModel):
    """What ``job.yaml`` asks an export for (see the module docstring)."""

    model_config = ConfigDict(extra="forbid", strict=True, use_attribute_docstrings=True)

    weights: str = "adapter"
    """The adapter (or full fine-tune's weights) folder, relative to the run folder."""
    merged: bool = False
    """Write ``merged/``: the adapter merged into the full-precision base, as sharded safetensors."""
    gguf: list[Literal["f16", "bf16", "q8_0"]] = Field(default_factory=list)
    """GGUF files to write, one per type."""
    ollama: bool = False
    """Write a Modelfile next to the first GGUF (``ollama create NAME -f Modelfile``)."""
    to: str | None = None
    """The folder the files go to (absolute); None: the job's own folder."""
    adapter_only: str | None = None
    """A folder to copy a clean PEFT adapter into (absolute), or None."""
    push: str | None = None
    """A Hub repo (``ORG/NAME``) to upload the adapter, what the export wrote and a model card to, or None."""
    private: bool = False
    """With ``push``: create the repo private (a repo that exists keeps its visibility)."""

    @model_validator(mode="after")
    def _something(self) -> ExportSettings:
        if not (self.merged or self.gguf or self.adapter_only or self.push):
            raise ValueError("nothing to export: ask for merged, a gguf type, adapter_only or push")
        if self.private and not self.push:
            raise ValueError("private applies to push: the repo to create")
        if self.ollama and not self.gguf:
            raise ValueError("ollama needs a gguf type for its Modelfile to point at")
        if len(set(self.gguf)) != len(self.gguf):
            raise ValueError("each gguf type once")
        return self


def gguf_name(base: str, kind: str) -> str:
    """The GGUF file's name: ``RUN-q8_0.gguf``, with anything odd in the run's name made a dash."""
    return f"{re.sub(r'[^A-Za-z0-9._-]+', '-', base).strip('-.') or 'model'}-{kind}.gguf"


def outputs(settings: ExportSettings, base: str) -> list[str]:
    """The names the export puts into its destination, in the order it writes them."""
    names = [MERGED_DIR] if settings.merged else []
    names += [gguf_name(base, kind) for kind in settings.gguf]
    return names + ([MODELFILE] if settings.ollama else [])


def needed_bytes(merged: bool, gguf: list[str], params: int, dtype: str | None) -> dict[str, int]:
    """Bytes each output needs for a model of ``params`` weights stored as ``dtype``.

    The merged model keeps the base's stored dtype; 1-D tensors, written as F32 in a GGUF, are
    a rounding error next to the matrices. The tokenizer (a few MB) is in ``RESERVE``.
    """
    sizes: dict[str, int] = {}
    if merged:
        sizes[MERGED_DIR] = int(params * DTYPE_BYTES.get(dtype or "float32", 4))
    for kind in gguf:
        sizes[kind] = int(params * BYTES_PER_WEIGHT[kind])
    return sizes


def free_bytes(folder: Path) -> int:
    """Free bytes on the filesystem that holds ``folder`` (or its nearest existing parent)."""
    folder = Path(folder).resolve()
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    return shutil.disk_usage(folder).free


def room_problem(folder: Path, needed: int) -> str | None:
    """Why ``needed`` bytes (plus ``RESERVE``) do not fit in ``folder``, or None when they do."""
    free = free_bytes(folder)
    if free >= needed + RESERVE:
        return None
    mb = 1024**2
    return (f"not enough disk space in {folder}: {free / mb:.0f} MB free, the export needs "
            f"{(needed + RESERVE) / mb:.0f} MB")


def architecture_problem(architecture: str | None) -> str | None:
    """Why a GGUF of this transformers architecture cannot be written, or None."""
    if architecture in GGUF_ARCHITECTURES:
        return None
    return f"GGUF export does not know the architecture {architecture or 'unknown'}; supported: {SUPPORTED}"


def taken(destination: Path, names: list[str]) -> list[Path]:
    """The outputs that already exist in ``destination`` (never overwritten)."""
    return [destination / name for name in names if os.path.lexists(destination / name)]
