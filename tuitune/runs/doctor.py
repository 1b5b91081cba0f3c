"""The chat-template doctor on a run's config, before the run exists. No Textual here.

The doctor needs the model's tokenizer (the ML stack), so it runs as ``python -m engine data`` on up to
:data:`SAMPLE` records of the run's data with the run's model, stage, cutoff and system prompt: the same
report ``tuitune data check --model`` prints, of which only the ``verdict`` events are kept. ``tuitune
train`` refuses a run with an error verdict unless ``--force``; the new-run review shows the errors and asks
before it starts such a run.

Loading the tokenizer costs seconds, and every door checks a run (a queued one twice: when added and when it
starts), so verdicts are kept in the user cache, keyed by what they depend on: the judged settings, the model's
and the data files' sizes and times, and the engine's data code. A check that could not run is never kept.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import engine.data
from engine.config import RunConfig
from engine.data.problems import HUB_PREFIX
from engine.data.report_events import FAILED, VERDICT
from engine.data.verdicts import Verdict
from engine.files import file_stamp, write_text_atomic
from engine.models.hf_cache import find_snapshot
from engine.paths import DEMO_MODEL, cache_dir, demo_model_dir
from engine.services import jsonlines

SAMPLE = 64
"""Records of the run's data the doctor renders (the report reads no further)."""
TIMEOUT_S = 300
"""Loading a large tokenizer can take a while; longer than this, the check is given up (and said so)."""
WEIGHTS = (".safetensors", ".bin", ".gguf", ".pt", ".pth", ".onnx")
"""Files of a model folder the verdicts do not depend on (the tokenizer's and configs' files are the rest)."""


@dataclass
class TemplateCheck:
    """What the doctor said about a run's chat template, or why it could not say."""

    verdicts: list[Verdict] = field(default_factory=list)
    not_checked: str = ""
    """Why there are no verdicts (the tokenizer could not be loaded offline, the check took too long); empty when
    the check ran."""

    @property
    def errors(self) -> list[Verdict]:
        """The verdicts that stop a run unless forced."""
        return [v for v in self.verdicts if v.is_error]

    @property
    def warnings(self) -> list[Verdict]:
        """The verdicts worth knowing that do not stop a run."""
        return [v for v in self.verdicts if v.severity == "warning"]


def judged(config: RunConfig) -> tuple:
    """What of ``config`` the doctor's verdicts depend on: a new check is needed only when this changes."""
    data = config.data
    return (config.model.name_or_path, tuple(data.train), data.format, config.stage, data.cutoff_len,
            data.system_prompt)


def doctor_command(config: RunConfig) -> list[str]:
    """``python -m engine data`` over the first records of the run's data, tokenised as the run will."""
    data = config.data
    command = [sys.executable, "-m", "engine", "data", *data.train, "--format", data.format, "--stage", config.stage,
               "--model", config.model.name_or_path, "--cutoff", str(data.cutoff_len), "--limit", str(SAMPLE)]
    return command + (["--system-prompt", data.system_prompt] if data.system_prompt else [])


def check_template(config: RunConfig) -> TemplateCheck:
    """The doctor's verdicts on ``config``'s model and data (see the module docstring), from the cache when
    nothing they depend on changed since they were kept."""
    key = cache_key(config)
    kept = cache_dir() / "doctor" / f"{key}.json" if key else None
    if kept is not None:
        try:
            return TemplateCheck([Verdict.from_dict(v) for v in json.loads(kept.read_text(encoding="utf-8"))])
        except (OSError, ValueError, TypeError, AttributeError):
            pass  # not kept yet, or unreadable: check again
    found = run_doctor(config)
    if kept is not None and not found.not_checked and found.verdicts:
        try:
            kept.parent.mkdir(parents=True, exist_ok=True)
            write_text_atomic(kept, json.dumps([v.to_dict() for v in found.verdicts]))
        except OSError:
            pass  # a cache that cannot be written only costs the next check its seconds
    return found


def cache_key(config: RunConfig) -> str | None:
    """A name for the verdicts on ``config`` that changes with anything they depend on, or None when that cannot
    be told from files here (a hub dataset, a model not on this machine)."""
    model = _model_folder(config)
    if model is None or any(path.startswith(HUB_PREFIX) for path in config.data.train):
        return None
    try:
        files = [_fingerprint(Path(path)) for path in config.data.train]
        files.append(_fingerprint(model, skip=WEIGHTS))
        files.append(_fingerprint(Path(engine.data.__file__).parent))
    except OSError:
        return None
    text = json.dumps([list(judged(config)), config.model.revision, files], default=str)
    return hashlib.sha256(text.encode("utf-8", "surrogateescape")).hexdigest()[:32]


def _model_folder(config: RunConfig) -> Path | None:
    name = config.model.name_or_path
    if name == DEMO_MODEL:
        return demo_model_dir()
    folder = Path(name).expanduser()
    if folder.is_dir():
        return folder.resolve()
    return find_snapshot(name, revision=config.model.revision) if "/" in name else None


def _fingerprint(path: Path, skip: tuple[str, ...] = ()) -> list:
    """Name, size and modification time of ``path``, or of each file directly in it when it is a folder."""
    path = path.expanduser().resolve()
    if not path.is_dir():
        return file_stamp(path)
    return [file_stamp(f) for f in sorted(path.iterdir()) if f.is_file() and not f.name.endswith(skip)]


def run_doctor(config: RunConfig) -> TemplateCheck:
    """The doctor's verdicts on ``config``, from a ``python -m engine data`` process."""
    try:
        done = subprocess.run(doctor_command(config), stdin=subprocess.DEVNULL, capture_output=True, text=True,
                              encoding="utf-8", errors="surrogateescape", timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        return TemplateCheck(not_checked=f"the tokenizer took over {TIMEOUT_S} s to load")
    found = TemplateCheck()
    for message in jsonlines.read_messages(done.stdout.splitlines()):
        if isinstance(message, jsonlines.BadLine):
            continue
        if message.get("type") == VERDICT:
            found.verdicts.append(Verdict.from_dict(message))
        elif message.get("type") == FAILED:
            found.not_checked = message.get("message", "")
    return found
