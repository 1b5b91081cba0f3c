"""Helpers for engine tests: run folders, real supervisor subprocesses, waiting on events.

Every test drives the real thing (``python -m engine launch`` → ``python -m engine train``) and
waits by polling ``events.jsonl`` with a generous timeout, never with fixed sleeps.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from engine.protocol import TERMINAL_TYPES, read_events

REPO = Path(__file__).resolve().parents[2]
TIMEOUT_S = 240.0
"""Generous: the CPU is shared, and a loaded 2-core machine can be several times slower."""

TINY_RECORDS = [
    ("Who are you?", "I am Tuito, a tiny test assistant."),
    ("What is 2 plus 2?", "2 plus 2 is 4."),
    ("Name a color.", "Blue is a color."),
    ("Say hello.", "Hello there!"),
]


def write_jsonl(path: Path, records: list[tuple[str, str]]) -> Path:
    """OpenAI-messages JSON Lines with one user/assistant exchange per record."""
    with open(path, "w", encoding="utf-8") as file:
        for question, answer in records:
            file.write(json.dumps({"messages": [{"role": "user", "content": question},
                                                {"role": "assistant", "content": answer}]}) + "\n")
    return path


@pytest.fixture
def tiny_data(tmp_path: Path) -> Path:
    """A four-record instruction file."""
    return write_jsonl(tmp_path / "tiny.jsonl", TINY_RECORDS)


def make_run(parent: Path, model: Path | str, data_path: Path | str, name: str = "run",
             **sections: dict[str, Any]) -> Path:
    """A run folder holding a config.yaml: a short, fast run unless ``sections`` say otherwise."""
    config: dict[str, Any] = {
        "model": {"name_or_path": str(model)},
        "data": {"train": [str(data_path)], "cutoff_len": 64},
        "train": {"max_steps": 3, "batch_size": 2, "logging_steps": 1, "save_steps": 100, "warmup_ratio": 0.0},
    }
    for key, values in sections.items():
        config.setdefault(key, {}).update(values)
    run_dir = parent / name
    run_dir.mkdir(parents=True)
    (run_dir / "config.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    return run_dir


def engine_env() -> dict[str, str]:
    """The test process's environment with the repository importable."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH")) if p)
    return env


def default_signals() -> None:
    """In a child, between fork and exec: SIGINT handled as Python does by default (KeyboardInterrupt).

    A script that starts the suite as a background job starts it with SIGINT ignored, and a child
    inherits that: a test that sends a process SIGINT gives it the default handling itself.
    """
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def tuitune_cli(*args: str, runs: Path | None = None, **popen: Any) -> subprocess.Popen[str]:
    """``tuitune [--runs-dir RUNS] ARGS`` as a user runs it at a terminal (Ctrl-C reaches it as SIGINT), its
    output captured as text."""
    where = ["--runs-dir", str(runs)] if runs is not None else []
    popen = {"stdin": subprocess.DEVNULL, **popen}  # a test that pipes a question in says stdin=PIPE
    return subprocess.Popen([sys.executable, "-m", "tuitune", *where, *args], cwd=REPO, env=engine_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=default_signals,
                            **popen)


@pytest.fixture(scope="session")
def cli() -> Any:
    """:func:`tuitune_cli`, for fixtures wider than a test (the eng fixture has it too)."""
    return tuitune_cli


def launch(run_dir: Path, *extra: str) -> subprocess.Popen[bytes]:
    """Start the supervisor as the app does: own session, stdin from /dev/null, output to engine.log."""
    with open(run_dir / "engine.log", "ab") as log:
        return subprocess.Popen([sys.executable, "-m", "engine", "launch", "--run-dir", str(run_dir), *extra],
                                cwd=REPO, env=engine_env(), stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                start_new_session=True)


def wait_for(run_dir: Path, predicate: Callable[[list[dict[str, Any]]], Any], timeout: float = TIMEOUT_S,
             what: str = "a condition") -> Any:
    """Poll the run's events until ``predicate(events)`` is truthy; returns its value."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        events = read_events(run_dir)
        if result := predicate(events):
            return result
        time.sleep(0.1)
    log = (run_dir / "engine.log").read_text(errors="replace")[-3000:] if (run_dir / "engine.log").exists() else ""
    raise AssertionError(f"timed out waiting for {what}; events: {read_events(run_dir)}\nengine.log tail:\n{log}")


def first(type_: str, after: int = 0) -> Callable[[list[dict[str, Any]]], dict[str, Any] | None]:
    """A predicate: the first event of ``type_`` with seq > ``after``."""
    return lambda events: next((e for e in events if e["type"] == type_ and e["seq"] > after), None)


def terminal(after: int = 0) -> Callable[[list[dict[str, Any]]], dict[str, Any] | None]:
    """A predicate: the first terminal event with seq > ``after``."""
    return lambda events: next((e for e in events if e["type"] in TERMINAL_TYPES and e["seq"] > after), None)


def run_to_end(run_dir: Path, *extra: str, timeout: float = TIMEOUT_S) -> list[dict[str, Any]]:
    """Launch, wait for the supervisor to exit and return every event."""
    proc = launch(run_dir, *extra)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise AssertionError(f"run did not end in {timeout} s: {read_events(run_dir)}") from None
    return read_events(run_dir)


def kinds(events: list[dict[str, Any]], skip: frozenset[str] = frozenset({"system", "phase", "warning"})) -> list[str]:
    """Event types in order, without the ones that come at any time."""
    return [e["type"] for e in events if e["type"] not in skip]


@pytest.fixture
def reap() -> Any:
    """Collects processes a test started and kills any still alive when it ends."""
    procs: list[subprocess.Popen[bytes]] = []
    yield procs
    for proc in procs:
        if proc.poll() is None:
            try:
                os.killpg(proc.pid, 9)
            except (ProcessLookupError, PermissionError):
                proc.kill()
            proc.wait(timeout=30)


@pytest.fixture
def eng(reap: list[subprocess.Popen[bytes]]) -> Any:
    """The helpers above as one object (test modules cannot import conftest under importlib mode).

    ``eng.launch`` registers each process for clean-up at the end of the test.
    """
    from types import SimpleNamespace

    def tracked_launch(run_dir: Path, *extra: str) -> subprocess.Popen[bytes]:
        proc = launch(run_dir, *extra)
        reap.append(proc)
        return proc

    return SimpleNamespace(make_run=make_run, launch=tracked_launch, wait_for=wait_for, first=first,
                           terminal=terminal, run_to_end=run_to_end, kinds=kinds, write_jsonl=write_jsonl,
                           env=engine_env, repo=REPO, procs=reap, cli=tuitune_cli)


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path) -> Path:
    """A run of the tiny model trained one step, its adapter saved: what the chat tests talk to (read-only)."""
    parent = tmp_path_factory.mktemp("tiny-run")
    run_dir = make_run(parent, tiny_model_dir, write_jsonl(parent / "tiny.jsonl", TINY_RECORDS),
                       train={"max_steps": 1})
    events = run_to_end(run_dir)
    assert events[-1]["type"] == "run_finished", events[-1]
    return run_dir


class JsonLinesService:
    """An engine service (``python -m engine chat|data …``) as the app drives it: requests written to its stdin,
    its stdout read on a thread so that a test waits for replies with a deadline and never hangs."""

    def __init__(self, *args: str) -> None:
        self.process = subprocess.Popen([sys.executable, "-m", "engine", *args], cwd=REPO, env=engine_env(),
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        self.lines: queue.Queue[bytes] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.process.stdout:
            self.lines.put(line)

    def send(self, *requests: dict[str, Any] | bytes) -> None:
        """Write each request (a message, or raw bytes as they are) on a thread: a long one fills the pipe."""
        data = b"".join(r if isinstance(r, bytes) else (json.dumps(r) + "\n").encode() for r in requests)

        def write() -> None:
            try:
                self.process.stdin.write(data)
                self.process.stdin.flush()
            except (BrokenPipeError, ValueError):  # the service ended, or the test closed stdin: the test says
                pass

        threading.Thread(target=write, daemon=True).start()

    def replies(self, until: Callable[[dict[str, Any]], bool], timeout: float = 120) -> list[dict[str, Any]]:
        """Every message up to and including the first for which ``until`` is true."""
        got: list[dict[str, Any]] = []
        deadline = time.monotonic() + timeout
        while not got or not until(got[-1]):
            try:
                got.append(json.loads(self.lines.get(timeout=max(0.0, deadline - time.monotonic()))))
            except queue.Empty:
                raise AssertionError(f"no reply for which the test waits within {timeout} s; got {got}") from None
        return got

    def close(self, timeout: float = 60) -> int:
        """Close its stdin, as the app does when it goes; the exit status once it has ended."""
        self.process.stdin.close()
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"the service did not end within {timeout} s of its stdin closing") from None


@pytest.fixture
def service() -> Iterator[Callable[..., JsonLinesService]]:
    """Starts ``python -m engine ARGS`` as a :class:`JsonLinesService`; each is killed when the test ends."""
    started: list[JsonLinesService] = []

    def start(*args: str) -> JsonLinesService:
        started.append(JsonLinesService(*args))
        return started[-1]

    yield start
    for one in started:
        if one.process.poll() is None:
            one.process.kill()
        one.process.wait(timeout=30)
