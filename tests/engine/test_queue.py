"""The queue with real processes: ``tuitune queue add`` with no app open, its detached runner starting the runs one
after another, the supervisors' and the runner's notifications to a webhook on 127.0.0.1 and to a command."""

from __future__ import annotations

import json
import os
import shutil
import signal
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

from engine.locks import is_locked
from engine.protocol import TERMINAL_TYPES, read_events

WAIT_S = 300.0
HANG_S = 30.0
"""How long the hanging webhook keeps a POST waiting: longer than a sender's timeout."""


class Receiver:
    """A webhook on 127.0.0.1 that keeps every POST (its path, JSON body and when it came); ``/hang`` answers
    only after HANG_S."""

    def __init__(self) -> None:
        self.posts: list[dict[str, Any]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                receiver.posts.append({"path": self.path, "body": body, "t": time.time()})
                if self.path == "/hang":
                    time.sleep(HANG_S)
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def events(self, path: str = "/") -> list[str]:
        """The ``event`` of each POST to ``path``, in the order they came."""
        return [post["body"].get("event") for post in self.posts if post["path"] == path]


@pytest.fixture
def webhook() -> Iterator[Receiver]:
    receiver = Receiver()
    yield receiver
    receiver.server.shutdown()


@pytest.fixture
def runs(tmp_path: Path) -> Iterator[Path]:
    """A runs folder whose queue is paused, its runner and its runs ended when the test ends (a test that fails
    half way leaves nothing training)."""
    from tuitune.runs.launch import stop_run
    from tuitune.runs.queue import runner_pid, set_paused

    folder = tmp_path / "runs"
    yield folder
    if (folder / ".queue").is_dir():
        set_paused(folder, True)
        if (pid := runner_pid(folder)) is not None:
            os.kill(pid, signal.SIGKILL)
    for run in folder.iterdir() if folder.is_dir() else []:
        if is_locked(run):
            stop_run(run, kill=True)


def settings(notify: dict[str, Any]) -> None:
    """Write the settings file (the test's own XDG config) with this ``notify`` section."""
    path = Path(os.environ["XDG_CONFIG_HOME"]) / "tuitune" / "settings.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump({"notify": notify}), encoding="utf-8")


def config_file(folder: Path, model: Path, data: Path) -> Path:
    """A run config for a short, fast run of ``model`` (2 steps)."""
    path = folder / "short.yaml"
    path.write_text(yaml.safe_dump({
        "model": {"name_or_path": str(model)},
        "data": {"train": [str(data)], "cutoff_len": 64},
        "train": {"max_steps": 2, "batch_size": 2, "logging_steps": 1, "save_steps": 100, "warmup_ratio": 0.0},
    }), encoding="utf-8")
    return path


def until(predicate: Any, what: str, timeout: float = WAIT_S) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if result := predicate():
            return result
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def queue_log(runs: Path) -> str:
    path = runs / ".queue" / "queue.log"
    return path.read_text(errors="replace") if path.exists() else ""


def cli_ok(eng: Any, runs: Path, *args: str) -> str:
    proc = eng.cli(*args, runs=runs)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, f"tuitune {' '.join(args)} exited {proc.returncode}: {err}"
    return out


def span(run_dir: Path) -> tuple[float, float, dict[str, Any]]:
    """When the run's first event and its terminal event were written, and the terminal event."""
    events = read_events(run_dir)
    end = next(e for e in events if e["type"] in TERMINAL_TYPES)
    return events[0]["t"], end["t"], end


def test_a_sweep_of_four_runs_one_at_a_time_and_says_when_each_ends(
        eng: Any, tiny_model_dir: Path, tiny_data: Path, tmp_path: Path, webhook: Receiver, runs: Path) -> None:
    """Queued with no app open, a 2 x 2 sweep runs one run at a time (on a CPU), each with its swept values, and
    the webhook gets four ``finished`` and then one ``queue_empty``."""
    settings({"webhook": webhook.url + "/", "events": ["finished", "failed", "stopped", "queue_empty"]})
    out = cli_ok(eng, runs, "queue", "add", str(config_file(tmp_path, tiny_model_dir, tiny_data)), "--name", "sw",
                 "--sweep", "train.learning_rate=1e-4,2e-4", "--sweep", "adapter.r=4,8")
    names = ["sw-lr-0.0001-r-4", "sw-lr-0.0001-r-8", "sw-lr-0.0002-r-4", "sw-lr-0.0002-r-8"]
    assert [line.removeprefix("queued ") for line in out.splitlines()[:4]] == names

    until(lambda: "queue_empty" in webhook.events(), "queue_empty at the webhook\n" + queue_log(runs))
    assert webhook.events() == ["finished"] * 4 + ["queue_empty"], webhook.posts
    assert sorted(post["body"]["run"] for post in webhook.posts[:4]) == names
    spans = sorted(span(runs / name)[:2] for name in names)
    for (_, end), (start, _) in zip(spans, spans[1:]):
        assert end <= start, f"two queued runs overlapped on the CPU: {spans}"
    for name in names:
        config = yaml.safe_load((runs / name / "config.yaml").read_text())
        lr, r = name.split("-")[2], name.split("-")[4]
        assert (config["train"]["learning_rate"], config["adapter"]["r"]) == (float(lr), int(r))
        assert span(runs / name)[2]["type"] == "run_finished"
    body = webhook.posts[0]["body"]
    assert {"run", "event", "state", "step", "loss", "duration_s", "text"} <= body.keys()
    assert body["state"] == "finished" and body["step"] == 2 and isinstance(body["loss"], float)
    until(lambda: not is_locked(runs / ".queue", "runner.lock"), "the runner to exit")
    assert json.loads((runs / ".queue" / "queue.json").read_text())["runs"] == []


def test_a_queue_goes_on_past_a_failure_a_hanging_webhook_and_its_runner_killed(
        eng: Any, tiny_model_dir: Path, tiny_data: Path, tmp_path: Path, webhook: Receiver, runs: Path) -> None:
    """A run that fails does not stop the queue; a webhook that hangs holds up neither; the runner killed mid-queue
    loses no queued run and ``tuitune queue resume`` goes on; ``queue_empty`` runs the configured command; a run
    whose config no longer passes the pre-start check is skipped with its reason."""
    said = tmp_path / "said.txt"
    settings({"webhook": webhook.url + "/hang", "events": ["finished", "failed", "queue_empty"],
              "command": f'echo "$TUITUNE_EVENT $TUITUNE_RUN" >> {said}'})
    broken = tmp_path / "broken-model"  # its header is whole, so the pre-start check passes; loading it fails
    shutil.copytree(tiny_model_dir, broken)
    weights = broken / "model.safetensors"
    header = 8 + int.from_bytes(weights.read_bytes()[:8], "little")
    os.truncate(weights, header + 16)
    gone = tmp_path / "gone.jsonl"
    shutil.copy(tiny_data, gone)
    short = str(config_file(tmp_path, tiny_model_dir, tiny_data))
    cli_ok(eng, runs, "queue", "pause")  # queued in full before the first starts
    cli_ok(eng, runs, "queue", "add", short, "--model", str(broken), "--name", "bad")
    cli_ok(eng, runs, "queue", "add", short, "--data", str(gone), "--name", "skipped")
    cli_ok(eng, runs, "queue", "add", short, "--name", "good")
    gone.unlink()  # its turn will come without its data
    assert "paused" in cli_ok(eng, runs, "queue")
    cli_ok(eng, runs, "queue", "resume")

    until(lambda: (runs / "bad" / "config.yaml").exists(), "the first run to start")
    runner = json.loads((runs / ".queue" / "runner.json").read_text())["pid"]
    os.kill(runner, signal.SIGKILL)
    until(lambda: not is_locked(runs / ".queue", "runner.lock"), "the killed runner's lock to go")
    queued = [run["name"] for run in json.loads((runs / ".queue" / "queue.json").read_text())["runs"]]
    # killed before it could take "bad" out (its folder already chosen: it is never started again) or after
    assert queued in (["bad", "skipped", "good"], ["skipped", "good"]), queued
    assert "nothing works the queue" in cli_ok(eng, runs, "queue")

    cli_ok(eng, runs, "queue", "resume")
    until(lambda: said.exists() and "queue_empty" in said.read_text(), "the queue_empty command\n" + queue_log(runs))
    assert span(runs / "bad")[2]["type"] == "run_failed"
    assert [e["type"] for e in read_events(runs / "bad")].count("run_failed") == 1  # one attempt, never two
    bad_end, (good_start, _, good_end) = span(runs / "bad")[1], span(runs / "good")
    assert good_end["type"] == "run_finished"
    assert good_start - bad_end < HANG_S, "the next run waited for the hanging webhook"
    assert not (runs / "skipped").exists()
    done = json.loads((runs / ".queue" / "queue.json").read_text())["done"]
    skipped = next(d for d in done if d["name"] == "skipped")
    assert skipped["outcome"] == "skipped" and str(gone) in skipped["reason"], skipped
    assert "queue_empty" in [line.split()[0] for line in said.read_text().splitlines()]
    assert {"failed", "finished"} <= set(webhook.events("/hang"))
