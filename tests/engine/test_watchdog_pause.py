"""Pause and continue a real training, and the supervisor's watchdog on a real run: a stall made by stopping the
trainer, which train.stop_on turns into a saved stop; the alerts of the trainer's own events are its own (see
test_grpo.py for one it raises and stops on)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from engine.protocol import EventWriter, read_events
from tuitune.runs.launch import pause_run
from tuitune.runs.state import PAUSED, RUNNING, RunState, fold, status

LONG = {"max_steps": 400, "save_steps": 1000}


def logs(events: list[dict]) -> list[dict]:
    return [e for e in events if e["type"] == "log"]


def test_pause_holds_the_trainer_and_continue_lets_it_go_on(eng, tiny_model_dir: Path, tiny_data: Path,
                                                            tmp_path: Path) -> None:
    run_dir = eng.make_run(tmp_path, tiny_model_dir, tiny_data, train=LONG)
    eng.launch(run_dir)
    eng.wait_for(run_dir, lambda events: len(logs(events)) >= 2, what="two steps")
    said = subprocess.run([sys.executable, "-m", "tuitune", "pause", str(run_dir)], env=eng.env(), cwd=eng.repo,
                          capture_output=True, text=True, timeout=60)
    assert said.returncode == 0 and said.stdout.startswith(f"paused {run_dir}"), said
    paused = eng.wait_for(run_dir, eng.first("paused"), what="the paused event")
    time.sleep(1.0)  # a step in flight when the signal came may still be logged
    held = len(logs(read_events(run_dir)))
    time.sleep(3.0)
    events = read_events(run_dir)
    assert len(logs(events)) == held, "the trainer went on while paused"
    assert status(fold(RunState(), events), True) == PAUSED
    trainer = json.loads((run_dir / "pids.json").read_text())["trainer"]
    assert open(f"/proc/{trainer}/stat").read().split(") ")[1][0] == "T"  # stopped: no compute used
    said = subprocess.run([sys.executable, "-m", "tuitune", "continue", str(run_dir)], env=eng.env(), cwd=eng.repo,
                          capture_output=True, text=True, timeout=60)
    assert said.returncode == 0 and said.stdout == f"continued {run_dir}\n", said
    eng.wait_for(run_dir, eng.first("continued", paused["seq"]), what="the continued event")
    eng.wait_for(run_dir, lambda events: len(logs(events)) > held, what="a step after continuing")
    assert status(fold(RunState(), read_events(run_dir)), True) == RUNNING
    # a stop of a paused run continues it first, so it saves and ends
    assert pause_run(run_dir)
    eng.wait_for(run_dir, lambda events: sum(e["type"] == "paused" for e in events) == 2, what="the second pause")
    from tuitune.runs.launch import stop_run

    assert stop_run(run_dir)
    end = eng.wait_for(run_dir, eng.terminal(), what="the stop")
    assert end["type"] == "run_stopped" and end["adapter_path"] == "adapter"
    said = subprocess.run([sys.executable, "-m", "tuitune", "pause", str(run_dir)], env=eng.env(), cwd=eng.repo,
                          capture_output=True, text=True, timeout=60)
    assert said.returncode == 1 and said.stderr.startswith(f"{run_dir} is not running (it ended: stopped at step")
    seqs = [e["seq"] for e in read_events(run_dir)]
    assert seqs == sorted(set(seqs)), "two writers gave the same sequence number"


def test_a_paused_trainer_whose_supervisor_is_killed_goes_on_saves_and_ends_as_stopped(
        eng, tiny_model_dir: Path, tiny_data: Path, tmp_path: Path) -> None:
    """Paused, then the supervisor SIGKILLed: the trainer stayed stopped for good, holding its memory and the
    folder's lock, so tuitune stop never returned and the steps since the last checkpoint were lost."""
    run_dir = eng.make_run(tmp_path, tiny_model_dir, tiny_data, train=LONG)
    supervisor = eng.launch(run_dir)
    eng.wait_for(run_dir, lambda events: len(logs(events)) >= 2, what="two steps")
    assert pause_run(run_dir)
    eng.wait_for(run_dir, eng.first("paused"), what="the paused event")
    os.kill(supervisor.pid, signal.SIGKILL)
    supervisor.wait(timeout=30)
    end = eng.wait_for(run_dir, eng.terminal(), timeout=120, what="the trainer's own end")
    assert end["type"] == "run_stopped" and end["adapter_path"] == "adapter", end
    checkpoint = [e for e in read_events(run_dir) if e["type"] == "checkpoint"][-1]
    assert checkpoint["step"] == end["step"] >= 2 and (run_dir / checkpoint["path"]).is_dir()
    from engine.locks import is_locked

    deadline = time.monotonic() + 60
    while is_locked(run_dir) and time.monotonic() < deadline:  # the trainer, its end written, exits
        time.sleep(0.1)
    assert not is_locked(run_dir)  # nothing of the attempt is left holding the folder
    said = eng.cli("stop", str(run_dir)).communicate(timeout=60)  # returns: there is nothing left to stop
    assert "stopping" not in said[0], said


def test_the_supervisor_alerts_on_a_stall_which_stop_on_turns_into_a_saved_stop_and_leaves_logs_to_the_trainer(
        eng, tiny_model_dir: Path, tiny_data: Path, tmp_path: Path) -> None:
    run_dir = eng.make_run(tmp_path, tiny_model_dir, tiny_data, train={**LONG, "stop_on": ["stall", "spike"],
                                                                        "stall_after_s": 3.0})
    eng.launch(run_dir)
    eng.wait_for(run_dir, lambda events: len(logs(events)) >= 6, what="six steps of history")
    step = logs(read_events(run_dir))[-1]["step"]
    with EventWriter(run_dir) as injected:  # not the trainer's: the trainer raises the alerts of its own logs
        injected.emit("log", step=step, loss=500.0, grad_norm=0.5)

    trainer = json.loads((run_dir / "pids.json").read_text())["trainer"]
    os.kill(trainer, signal.SIGSTOP)  # a hung trainer: no step, no event
    try:
        stall = eng.wait_for(run_dir, eng.first("alert"), what="the stall alert")
    finally:
        os.kill(trainer, signal.SIGCONT)
    assert stall["kind"] == "stall" and stall["severity"] == "critical" and "no training step" in stall["message"]
    assert stall["stops"] is True and stall["action"]
    end = eng.wait_for(run_dir, eng.terminal(), what="the stop train.stop_on asked for")
    assert end["type"] == "run_stopped" and end["adapter_path"] == "adapter"
    assert (run_dir / "adapter" / "adapter_model.safetensors").is_file()
    events = read_events(run_dir)
    assert [e["kind"] for e in events if e["type"] == "alert"] == ["stall"]  # the supervisor wrote no spike
    assert events[-1] == end
