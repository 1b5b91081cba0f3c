"""Find run folders and read what they say about themselves. No Textual here.

A folder in the runs folder is a run when it holds ``config.yaml`` or ``events.jsonl``.
Everything is read from the folder alone; whether the engine is alive comes from
``tuitune.runs.launch.is_alive`` (its lock).
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from engine.checkpoints import latest_checkpoint
from engine.checkpoints import problem as checkpoint_problem
from engine.files import FileTooLarge, NotARegularFile, read_regular
from engine.protocol import ADAPTER_DIR, CHECKPOINTS_DIR, CONFIG_FILE, EVENTS_FILE
from tuitune.runs.lf_folder import LFTail, find_lf_folders, is_lf_folder, still_writing
from tuitune.runs.state import LIVE, LOST, RunState, fold, status
from tuitune.runs.tail import EventTail


@dataclass(frozen=True)
class RunMeta:
    """What ``config.yaml`` says about a run (read leniently: a broken file still lists)."""

    model: str = ""
    """``model.name_or_path``."""
    method: str = ""
    """``adapter.method``."""
    stage: str = ""
    """``stage`` (empty when the config names none: the default stage's)."""
    max_steps: int | None = None
    """``train.max_steps``."""
    quant: str = ""
    """``quant.mode``."""
    error: str | None = None
    """Why config.yaml could not be read, if it could not."""


@dataclass(frozen=True)
class RunSummary:
    """One row of the runs list: the folder, its config, its state and whether it lives."""

    path: Path
    """The run folder."""
    meta: RunMeta
    """From config.yaml."""
    state: RunState
    """Folded from every event."""
    alive: bool | None
    """Whether the supervisor is alive (None: not checked yet)."""
    bad_lines: list[str] = field(default_factory=list)
    """Lines of events.jsonl that were not events."""
    events_error: str | None = None
    """Why events.jsonl cannot be read at all (a folder, a FIFO, no permission), or None."""
    lf: bool = False
    """A LLaMA-Factory output folder, listed read-only."""

    @property
    def name(self) -> str:
        """The run's name: its folder's name (what ``tuitune stop NAME`` and ``attach NAME`` take); a
        LLaMA-Factory output folder's is its last three parts (``qwen2/lora/sft``) and says where it is from."""
        if self.lf:
            return "LF:" + "/".join(self.path.parts[-3:])
        return self.path.name

    @property
    def status(self) -> str:
        """running, finished, stopped, failed or lost."""
        return status(self.state, self.alive)


MAX_CONFIG_BYTES = 1 << 20
"""A run's config.yaml is a few KiB; a larger one is not read into a summary."""


def is_run_dir(path: Path) -> bool:
    """Whether ``path`` looks like a run folder."""
    return (path / CONFIG_FILE).is_file() or (path / EVENTS_FILE).is_file()


def list_run_dirs(runs_dir: str | os.PathLike[str]) -> list[Path]:
    """Run folders directly inside ``runs_dir``, newest first (missing folder: none)."""
    root = Path(runs_dir)
    try:
        entries = [p for p in root.iterdir() if p.is_dir() and is_run_dir(p)]
    except (FileNotFoundError, NotADirectoryError):
        return []
    return sorted(entries, key=_started_key, reverse=True)


def _started_key(path: Path) -> tuple[float, str]:
    for name in (EVENTS_FILE, CONFIG_FILE):
        try:
            return ((path / name).stat().st_mtime, path.name)
        except FileNotFoundError:
            continue
    return (0.0, path.name)


def read_config_mapping(run_dir: str | os.PathLike[str]) -> tuple[dict[str, Any], str | None]:
    """The run's ``config.yaml`` as a plain mapping, read leniently: ``({}, why)`` when it cannot be read."""
    path = Path(run_dir) / CONFIG_FILE
    try:
        data = yaml.safe_load(read_regular(path, MAX_CONFIG_BYTES).decode("utf-8")) or {}
    except FileNotFoundError:
        return {}, f"{path}: missing"
    except (NotARegularFile, FileTooLarge) as exc:
        return {}, str(exc)
    except (OSError, UnicodeDecodeError, yaml.YAMLError, RecursionError) as exc:
        return {}, f"{path}: {exc}"
    if not isinstance(data, dict):
        return {}, f"{path}: not a mapping"
    return data, None


def read_meta(run_dir: str | os.PathLike[str]) -> RunMeta:
    """Model, method and max steps from the run's ``config.yaml``."""
    data, error = read_config_mapping(run_dir)
    if error:
        return RunMeta(error=error)
    return RunMeta(
        model=str(_section(data, "model").get("name_or_path", "")),
        method=str(_section(data, "adapter").get("method", "lora")),
        stage=str(data.get("stage") or ""),
        max_steps=_section(data, "train").get("max_steps"),
        quant=str(_section(data, "quant").get("mode", "none")),
    )


def _section(data: dict[str, Any], name: str) -> dict[str, Any]:
    value = data.get(name)
    return value if isinstance(value, dict) else {}


def initial_state(run_dir: Path, meta: RunMeta) -> RunState:
    """The state before any event: names from the folder and config.yaml."""
    return RunState(name=run_dir.name, model=meta.model, method=meta.method, stage=meta.stage,
                    total_steps=meta.max_steps)


def summarize(run_dir: str | os.PathLike[str]) -> RunSummary:
    """Read one run folder whole: config, every event, and whether the engine is alive."""
    run_dir = Path(run_dir)
    meta = read_meta(run_dir)
    tail = EventTail(run_dir)
    state = fold(initial_state(run_dir, meta), tail.read_all())
    return RunSummary(run_dir, meta, state, engine_alive(run_dir), tail.bad_lines, tail.error)


def list_runs(runs_dir: str | os.PathLike[str]) -> list[RunSummary]:
    """Every run in ``runs_dir``, newest first (by start time from events, else folder time)."""
    return RunsIndex(runs_dir).scan()


def _newest_first(summary: RunSummary) -> tuple[float, str]:
    started = summary.state.started_t
    return (started if started is not None else _started_key(summary.path)[0], summary.path.name)


class RunsIndex:
    """Every run of a runs folder, kept up to date cheaply: each scan reads only new events.

    Args:
        runs_dir: The folder holding run folders.
        lf_dirs: Folders whose LLaMA-Factory output folders are listed too (read, never written).
    """

    def __init__(self, runs_dir: str | os.PathLike[str], lf_dirs: list[Path] | tuple[Path, ...] = ()) -> None:
        self.runs_dir = Path(runs_dir)
        self.lf_dirs = list(lf_dirs)
        self._known: dict[Path, tuple[EventTail | LFTail, RunState, RunMeta]] = {}
        self._lock = threading.Lock()

    def scan(self, check_alive: bool = True) -> list[RunSummary]:
        """Summaries of every run now in the folder, newest first.

        Args:
            check_alive: Ask whether each engine lives; without it ``alive`` is None, which
                lets a first list show before the process checks are loaded and done.
        """
        with self._lock:  # a cancelled scan may still be finishing in another thread
            found = list_run_dirs(self.runs_dir) + [path for root in self.lf_dirs for path in find_lf_folders(root)]
            self._known = {path: self._update(path) for path in found}
            summaries = [
                RunSummary(path, meta, state, self._alive(path, tail) if check_alive else None, tail.bad_lines,
                           tail.error, lf=isinstance(tail, LFTail))
                for path, (tail, state, meta) in self._known.items()
            ]
        return sorted(summaries, key=_newest_first, reverse=True)

    @staticmethod
    def _alive(path: Path, tail: EventTail | LFTail) -> bool:
        return still_writing(path) if isinstance(tail, LFTail) else engine_alive(path)

    def _update(self, path: Path) -> tuple[EventTail | LFTail, RunState, RunMeta]:
        if path not in self._known and is_lf_folder(path):
            tail = LFTail(path)
            return tail, fold(RunState(name=path.name), tail.read_all()), RunMeta()
        if path in self._known and isinstance(self._known[path][0], LFTail):
            tail, state, meta = self._known[path]
            return tail, fold(state, tail.read_all()), meta
        if path in self._known:
            tail, state, meta = self._known[path]
            if meta.error:
                meta = read_meta(path)
        else:
            meta = read_meta(path)
            tail, state = EventTail(path), initial_state(path, meta)
            return tail, fold(state, tail.skim()), meta
        return tail, fold(state, tail.read_all()), meta


def engine_alive(run_dir: Path) -> bool:
    """Whether an attempt of the run (or job) lives, its folder's lock held; False when that cannot be told
    (a list shows such a folder as not running rather than fail)."""
    from tuitune.runs.launch import is_alive

    try:
        return bool(is_alive(run_dir))
    except (OSError, ValueError):
        return False


def resolve_run(run: str, runs_dir: str | os.PathLike[str]) -> Path:
    """A run given on the command line, as a folder path or a name in ``runs_dir``.

    Raises:
        FileNotFoundError: saying what was found where (a folder that is not a run, or nothing), once
            per place looked in.
    """
    direct = Path(run).expanduser()
    if direct.is_dir() and is_run_dir(direct):
        return direct.resolve()
    named = Path(runs_dir) / run
    if named.is_dir() and is_run_dir(named):
        return named.resolve()
    if direct.is_dir():
        raise FileNotFoundError(f"{direct.resolve()} is a folder but not a run folder "
                                f"(it holds no {CONFIG_FILE} and no {EVENTS_FILE})")
    if direct.is_absolute() or len(direct.parts) > 1:
        raise FileNotFoundError(f"no run folder at {direct.absolute()}")
    raise FileNotFoundError(f"no run named {run!r} in {Path(runs_dir).absolute()} "
                            f"and no folder {run!r} in {Path.cwd()}")


def trained_label(run_dir: Path, weights: Path) -> str:
    """What a chat, evaluation or export of ``weights`` is called: the run's name, with the checkpoint's when the
    weights are one of its checkpoints (``RUN at checkpoint-40``)."""
    return f"{run_dir.name} at {weights.name}" if weights.parent == run_dir / CHECKPOINTS_DIR else run_dir.name


def resolve_trained(run: str, runs_dir: str | os.PathLike[str]) -> tuple[Path, Path]:
    """What a chat or an evaluation uses: ``(run folder, weights folder)`` for a run given by name or
    path (its adapter, else its newest complete checkpoint) or for a checkpoint folder of a run.

    Raises:
        FileNotFoundError: no such run, or a run with no adapter and no complete checkpoint yet.
    """
    direct = Path(run).expanduser()
    if direct.parent.name == CHECKPOINTS_DIR and is_run_dir(direct.parent.parent):
        if checkpoint_problem(direct) is not None:
            raise FileNotFoundError(f"{direct.resolve()} cannot be used: {checkpoint_problem(direct)}")
        return direct.parent.parent.resolve(), direct.resolve()
    run_dir = resolve_run(run, runs_dir)
    weights = trained_weights(run_dir)
    if weights is None:
        raise FileNotFoundError(f"{run_dir} has no adapter and no complete checkpoint yet: train it first "
                                "(or wait for its first checkpoint)")
    return run_dir, weights


def trained_weights(run_dir: Path) -> Path | None:
    """What a run trained, to chat with, evaluate or export: its adapter (or full model), else its newest complete
    checkpoint; None when it has neither (reads the folder: not on the UI thread)."""
    adapter = run_dir / ADAPTER_DIR
    if (adapter / "adapter_config.json").is_file() or (adapter / "config.json").is_file():
        return adapter
    return latest_checkpoint(run_dir)


def nothing_to_chat(name: str, status: str) -> str:
    """Why a run offers no chat, by its status (``tuitune.runs.state.status``): its trainer is alive (it holds the
    machine), it was lost mid-attempt, or it trained nothing to talk to."""
    if status in LIVE:
        return f"{name} is still training: chat with it once it ends (or stop it: s on its dashboard)"
    if status == LOST:
        return f"{name} was lost (its engine ended without a last event): R resumes it; chat once it has ended"
    return (f"{name} has no adapter and no complete checkpoint: there is nothing to chat with "
            "(a run saves a checkpoint every train.save_steps steps)")
