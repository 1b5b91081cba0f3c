"""Drive the real app in tmux as a person would, against the real demo model on this machine.

Set up a run with an edited rank, start it, see an alert, quit (training goes on), re-open with
``tuitune attach``, pause and continue, stop-and-save, resume to the end, compare it with an earlier run
(marked with space in the runs list), and end the app with SIGTERM (the terminal comes back).
tmux is a test dependency: without it this test fails, it does not skip.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from engine.health.watchdog import Watchdog
from engine.protocol import EventWriter, read_events
from tuitune.runs import launch

TUITUNE = Path(sys.executable).parent / "tuitune"
"""The installed command, as a person runs it."""
CANNED_RUNS = Path(__file__).resolve().parents[2] / "fixtures" / "runs"
"""Canned run folders (tests/fixtures/runs), for a run this box trained earlier."""


class Pane:
    """One tmux session on a private server socket, sized like a small SSH terminal."""

    def __init__(self, socket: str, command: str, size: tuple[int, int] = (100, 30)) -> None:
        self.socket = socket
        self.tmux("-f", "/dev/null", "new-session", "-d", "-s", "t", "-x", str(size[0]), "-y", str(size[1]), command)
        self.tmux("set-option", "-s", "escape-time", "10")  # else an Esc waits 500 ms

    def tmux(self, *args: str) -> str:
        done = subprocess.run(["tmux", "-L", self.socket, *args], capture_output=True, text=True, timeout=30)
        assert done.returncode == 0, f"tmux {' '.join(args)}: {done.stderr}"
        return done.stdout

    def screen(self) -> str:
        return self.tmux("capture-pane", "-p", "-t", "t")

    def keys(self, *keys: str) -> None:
        for key in keys:
            self.tmux("send-keys", "-t", "t", key)
            time.sleep(0.15)

    def type(self, text: str) -> None:
        self.tmux("send-keys", "-t", "t", "-l", text)

    def wait(self, pattern: str, timeout: float = 20.0) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        while True:
            screen = self.screen()
            if match := re.search(pattern, screen):
                return match
            if time.monotonic() > deadline:
                raise AssertionError(f"no {pattern!r} on screen after {timeout:.0f}s; screen was:\n{screen}")
            time.sleep(0.2)

    def respawn(self, command: str) -> None:
        self.tmux("respawn-pane", "-k", "-t", "t", command)

    def value(self, fmt: str) -> str:
        return self.tmux("display-message", "-p", "-t", "t", fmt).strip()

    def close(self) -> None:
        subprocess.run(["tmux", "-L", self.socket, "kill-server"], capture_output=True, timeout=30)


def shell(command: str) -> str:
    """The pane's command: the app, then a marker with its exit status, then an idle shell."""
    return f"{command}; echo APP-EXITED-$?; sleep 600"


def test_person_journey_at_80x24(tmp_path: Path, demo_model_dir: Path, isolated_home: Path) -> None:
    """New run with an edited rank → start → an alert shown → quit (training goes on) → attach →
    pause → continue → stop and save → resume → finish → compare with an earlier run, on the smallest terminal."""
    if shutil.which("tmux") is None:
        pytest.fail("tmux is not installed: it is a test dependency (apt-get install -y tmux; make test installs it)")
    runs = tmp_path / "runs"
    settings = isolated_home / "config" / "tuitune" / "settings.yaml"
    settings.parent.mkdir(parents=True, exist_ok=True)
    settings.write_text("preset: cpu-first-try\n")  # a CPU box: the quick preset, whatever the machine
    pane = Pane(f"tuitune-test-{os.getpid()}", shell(f"TZ=UTC {TUITUNE} --runs-dir {runs}"), size=(80, 24))
    try:
        pane.wait(r"No runs yet", timeout=30)
        pane.keys("n")
        pane.wait(r"smollm2-135m-instruct")
        pane.keys("Enter")
        pane.wait(r"supervised fine-tuning")  # the stage step, sft highlighted
        pane.keys("Enter")
        pane.wait(r"sft trains on instruction")  # the data step names the layouts sft trains on
        pane.keys("Enter")
        pane.wait(r"cpu-first-try")
        pane.keys("Enter")
        pane.wait(r"resolved config")
        pane.keys("C-t")  # every preset field for this run
        pane.wait(r"Settings of the new run")
        pane.keys(*["Tab"] * 8)  # description, stage, mode, quant_type, double_quant, compute_dtype, method, r
        time.sleep(0.5)
        pane.wait(r"LoRA rank: higher")  # the focused field's help: r
        pane.keys("BSpace")
        pane.type("12")
        pane.wait(r"adapter.r 8 → 12")
        pane.keys("C-t")  # use for this run
        pane.wait(r"Changed: adapter.r 8 → 12")
        pane.keys("Tab")
        time.sleep(0.5)  # focus moves on the app's next turn; keys sent before it go to the old field
        pane.type("14")
        pane.keys("Tab")
        time.sleep(0.5)
        pane.type("64")
        pane.wait(r"▊  14 +▎▊  64 ")
        pane.keys("Enter")  # start

        pane.wait(r"RUNNING", timeout=30)
        pane.wait(r"step ([2-9]|\d\d+)/14", timeout=240)
        run_dir = next(runs.iterdir())
        assert "r: 12" in (run_dir / "config.yaml").read_text()
        # Host memory nearly full, as the sampler would say: the trainer writes the watchdog's alert after its sample.
        sample = {"type": "system", "gpus": [], "host_mem_used_bytes": 99, "host_mem_total_bytes": 100}
        (full,) = Watchdog().feed(sample)
        with EventWriter(run_dir) as trainer:
            trainer.emit("alert", **full.fields(), stops=False)
        pane.wait(r"⚠ host_memory", timeout=30)

        pane.keys("C-q")
        pane.wait(r"APP-EXITED-0")
        assert launch.is_alive(run_dir), "quitting the app must not stop training"
        assert re.search(rf"{run_dir.name} keeps training in the background: tuitune\s+attach", pane.screen())

        pane.respawn(shell(f"TZ=UTC {TUITUNE} --runs-dir {runs} attach {run_dir.name}"))
        pane.wait(r"RUNNING", timeout=30)
        pane.wait(r"⚠ host_memory")  # the alert lingers: it is in the run folder
        pane.keys("p")
        pane.wait(r"PAUSED", timeout=60)
        paused_at = max(e["step"] for e in read_events(run_dir) if e["type"] == "log")
        pane.keys("p")
        pane.wait(r"RUNNING", timeout=60)
        deadline = time.monotonic() + 120
        while max(e["step"] for e in read_events(run_dir) if e["type"] == "log") <= paused_at:
            assert time.monotonic() < deadline, "training did not go on after continue"
            time.sleep(0.5)

        pane.keys("s")
        pane.wait(r"Stop & save \(y\)")
        pane.keys("y")
        pane.wait(r"STOPPING|STOPPED", timeout=30)
        pane.wait(r"STOPPED", timeout=180)
        stopped = [e for e in read_events(run_dir) if e["type"] == "run_stopped"]
        assert stopped and stopped[-1]["adapter_path"]
        adapter = run_dir / stopped[-1]["adapter_path"]
        assert (adapter / "adapter_config.json").is_file() and (adapter / "adapter_model.safetensors").is_file()

        pane.wait(r"R Resume", timeout=30)  # offered once the stopped attempt's processes are gone
        pane.keys("R")
        pane.wait(r"RESUMING|RUNNING", timeout=30)
        pane.wait(r"FINISHED", timeout=300)
        assert [e["type"] for e in read_events(run_dir) if e["type"] in ("run_stopped", "run_finished")] == [
            "run_stopped", "run_finished"]

        shutil.copytree(CANNED_RUNS / "finished", runs / "earlier")  # a run this box trained before
        pane.keys("Escape")
        pane.wait(r"Runs \(2\)")
        pane.keys("Up", "Up", "Space", "Down", "Space")  # mark this run, then the earlier one
        pane.wait(r"2 marked: c compares them")
        pane.keys("c")
        pane.wait(r"Compare 2 runs: .*earlier")
        pane.wait(r"loss against step")
        pane.keys("Tab")
        pane.wait(r"best eval loss +– +1\.332 @60")  # this run evaluated nothing; the earlier one did
        pane.keys("Tab")
        pane.wait(r"adapter\.r +12 +16")  # the edited rank against the earlier run's
        assert re.search(r"train\.max_steps +14 +60", pane.screen())  # the preset's keys that differ fit: 15 rows
        pane.keys("Escape")
        pane.wait(r"Runs \(2\)")

        app_pid = int(subprocess.run(["pgrep", "-P", pane.value("#{pane_pid}"), "-f", "tuitune"],
                                     capture_output=True, text=True).stdout.split()[0])
        os.kill(app_pid, signal.SIGTERM)
        pane.wait(r"APP-EXITED-0")
        assert pane.value("#{alternate_on}") == "0", "SIGTERM left the terminal in the alternate screen"
        assert pane.value("#{mouse_any_flag}") == "0", "SIGTERM left mouse reporting on"
    finally:
        pane.close()
        for folder in runs.iterdir() if runs.is_dir() else []:
            end_engine(folder)


def end_engine(run_dir: Path) -> None:
    """Leave no training behind when the test fails half-way."""
    if launch.is_alive(run_dir):
        pgid = launch.read_pids(run_dir).get("pgid")
        try:
            os.killpg(int(pgid), signal.SIGKILL)
        except (ProcessLookupError, TypeError, ValueError):
            launch.stop_run(run_dir, kill=True)
