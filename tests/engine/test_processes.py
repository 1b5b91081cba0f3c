"""Processes around training: stop, resume, deaths by signal, detached runs and ``tuitune stop``."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from engine.protocol import read_events
from tuitune.runs.launch import is_alive, read_pids, request_save, stop_run

LONG = {"max_steps": 1000, "batch_size": 1, "save_steps": 1000}
"""Far more steps than a test waits for: the run is always stopped or killed mid-way."""


def tuitune(eng, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run the ``tuitune`` command line in a subprocess and wait for it."""
    return subprocess.run([sys.executable, "-m", "tuitune", *args], cwd=eng.repo, env=eng.env(),
                          capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)


def test_ctrl_c_in_tuitune_train_saves_a_checkpoint_and_stops(eng, tiny_model_dir: Path, tiny_data: Path,
                                                              tmp_path: Path) -> None:
    run_dir = tmp_path / "fg"
    cli = eng.cli("train", "--model", str(tiny_model_dir), "--data", str(tiny_data), "--max-steps", "1000",
                  "--run-dir", str(run_dir))
    eng.procs.append(cli)
    first_log = eng.wait_for(run_dir, eng.first("log"), what="the first log event")
    cli.send_signal(signal.SIGINT)  # what Ctrl-C does to the foreground command
    out, err = cli.communicate(timeout=240)

    assert cli.returncode == 0, err
    assert "stopped at step" in out
    events = read_events(run_dir)
    stopped = events[-1]
    assert stopped["type"] == "run_stopped", stopped
    checkpoint = [e for e in events if e["type"] == "checkpoint"][-1]
    assert checkpoint["step"] == stopped["step"] and stopped["checkpoint_path"] == checkpoint["path"]
    # the first step logs at once (logging_first_step): the stop comes at or after it, well before the end
    assert first_log["step"] <= stopped["step"] < 1000
    assert (run_dir / checkpoint["path"] / "trainer_state.json").is_file()
    assert (run_dir / "adapter" / "adapter_model.safetensors").is_file()


def test_resume_continues_at_the_next_step_with_the_same_losses(eng, tiny_model_dir: Path, tiny_data: Path,
                                                                 tmp_path: Path) -> None:
    """torchtune's test_training_state_on_resume: train 4 steps; resume a copy from step 2's
    checkpoint; steps 3 and 4 must come back with the same numbers and the same losses."""
    settings = {"max_steps": 4, "batch_size": 1, "save_steps": 2, "learning_rate": 0.001}
    first_dir = eng.make_run(tmp_path, tiny_model_dir, tiny_data, name="first", adapter={"dropout": 0.1},
                             train=settings)
    original = eng.run_to_end(first_dir)
    assert eng.kinds(original)[-1] == "run_finished", original[-1]
    resumed_dir = tmp_path / "resumed"
    shutil.copytree(first_dir, resumed_dir)
    shutil.rmtree(resumed_dir / "checkpoints" / "checkpoint-4")
    events_before = read_events(resumed_dir)

    events = eng.run_to_end(resumed_dir, "--resume")

    new = events[len(events_before):]
    assert eng.kinds(new) == ["run_started", "log", "log", "checkpoint", "run_finished"], new
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    started = new[[e["type"] for e in new].index("run_started")]
    assert started["resumed_from_step"] == 2 and started["total_steps"] == 4
    # The whole run's mean loss, not the resumed attempt's: the same as the uninterrupted run's.
    assert new[-1]["train_loss"] == pytest.approx(original[-1]["train_loss"], rel=1e-4)
    logs = {e["step"]: e["loss"] for e in new if e["type"] == "log"}
    original_logs = {e["step"]: e["loss"] for e in original if e["type"] == "log"}
    assert sorted(logs) == [3, 4]
    for step in (3, 4):
        assert logs[step] == pytest.approx(original_logs[step], rel=1e-4), (logs, original_logs)


def test_save_now_then_a_kill_on_request_is_a_stop_naming_the_checkpoint(eng, tiny_model_dir: Path, tiny_data: Path,
                                                                        tmp_path: Path) -> None:
    """A kill the user asked for (k, tuitune stop --kill) is not a failure: it was reported as FAILED
    with an out-of-memory hint. It is a stop that saved nothing and names what a resume uses."""
    run_dir = eng.make_run(tmp_path, tiny_model_dir, tiny_data, train=LONG)
    supervisor = eng.launch(run_dir)
    eng.wait_for(run_dir, eng.first("log"), what="the first log event")

    assert request_save(run_dir)  # SIGUSR1: a checkpoint at the next step end, training goes on
    saved = eng.wait_for(run_dir, eng.first("checkpoint"), what="the requested checkpoint")
    assert (run_dir / saved["path"] / "adapter_model.safetensors").is_file()
    eng.wait_for(run_dir, lambda events: any(e["type"] == "log" and e["step"] > saved["step"] for e in events),
                 what="training to go on after the checkpoint")

    assert stop_run(run_dir, kill=True)
    killed = eng.wait_for(run_dir, eng.terminal(), what="the terminal event")

    assert killed["type"] == "run_stopped" and killed["killed"] is True, killed
    assert killed["checkpoint_path"] == saved["path"] and killed["adapter_path"] is None
    assert killed["step"] > saved["step"]
    assert supervisor.wait(timeout=60) == 0
    assert not is_alive(run_dir) and not (run_dir / "adapter").exists()


def test_a_sigill_child_is_recorded_with_the_onednn_hint(eng, tmp_path: Path) -> None:
    run_dir = tmp_path / "sigill"
    run_dir.mkdir()
    child = (f"{sys.executable} -c \"import os, signal; print('about to die', flush=True); "
             "os.kill(os.getpid(), signal.SIGILL)\"")
    eng.launch(run_dir, "--child-command", child).wait(timeout=60)

    failed = read_events(run_dir)[-1]
    assert failed["type"] == "run_failed" and failed["signal"] == "SIGILL" and failed["exit_code"] == 132, failed
    assert "ONEDNN_MAX_CPU_ISA" in failed["hint"]
    assert "about to die" in failed["log_tail"]
    pids = read_pids(run_dir)
    assert pids["trainer"] and pids["supervisor"] != pids["trainer"]


def test_the_trainer_gets_the_onednn_cap_and_a_silent_exit_is_a_failure(eng, tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)
    run_dir = tmp_path / "env"
    run_dir.mkdir()
    child = f"{sys.executable} -c \"import os; print('isa=' + os.environ.get('ONEDNN_MAX_CPU_ISA', 'unset'))\""
    eng.launch(run_dir, "--child-command", child).wait(timeout=60)

    failed = read_events(run_dir)[-1]
    assert failed["type"] == "run_failed" and failed["exit_code"] == 0 and failed["signal"] is None, failed
    assert "isa=AVX512_CORE_BF16" in failed["log_tail"]


def test_detach_returns_at_once_and_tuitune_stop_ends_the_run_as_stopped(eng, tiny_model_dir: Path,
                                                                         tiny_data: Path) -> None:
    started = tuitune(eng, "train", "--model", str(tiny_model_dir), "--data", str(tiny_data),
                      "--max-steps", "1000", "--detach")
    assert started.returncode == 0, started.stderr
    run_dir = Path(started.stdout.strip())
    assert run_dir.is_dir() and (run_dir / "config.yaml").is_file()
    assert not any(e["type"] in ("run_finished", "run_stopped", "run_failed") for e in read_events(run_dir))
    try:
        eng.wait_for(run_dir, eng.first("log"), what="the first log event")
        stopped = tuitune(eng, "stop", run_dir.name, timeout=240)  # by name, in the runs folder
    finally:
        stop_run(run_dir, kill=True)

    assert stopped.returncode == 0, stopped.stderr
    assert "stopped at step" in stopped.stdout
    assert not is_alive(run_dir)  # it returns once every process of the run is gone
    assert read_events(run_dir)[-1]["type"] == "run_stopped"
    again = tuitune(eng, "stop", str(run_dir))
    assert again.returncode == 1 and "not running" in again.stderr


def test_a_bad_preset_is_refused_naming_file_line_and_field(eng, tmp_path: Path) -> None:
    preset = tmp_path / "bad.yaml"
    preset.write_text("train:\n  batch_size: 4\n  lerning_rate: 0.1\n", encoding="utf-8")

    result = tuitune(eng, "train", "--preset", str(preset), "--detach")

    assert result.returncode == 2
    assert f"{preset}:3" in result.stderr and "train.lerning_rate" in result.stderr, result.stderr
    assert json.dumps(result.stdout) == '""'


def test_a_stop_while_the_model_loads_ends_the_run_as_stopped(eng, tiny_model_dir: Path, tiny_data: Path,
                                                              tmp_path: Path) -> None:
    """SIGTERM can come before the trainer has installed its handlers (torch still importing):
    the supervisor starts it with the signal blocked, so the stop waits and is honoured."""
    run_dir = eng.make_run(tmp_path, tiny_model_dir, tiny_data, train=LONG)
    supervisor = eng.launch(run_dir)
    eng.wait_for(run_dir, lambda _: read_pids(run_dir).get("trainer"), what="the trainer to start")

    assert stop_run(run_dir)
    stopped = eng.wait_for(run_dir, eng.terminal(), what="the terminal event")

    assert stopped["type"] == "run_stopped" and stopped["step"] is None, stopped
    assert stopped["peak_memory_kind"] == "rss"  # written by the trainer itself, not by the supervisor
    assert "run_started" not in eng.kinds(read_events(run_dir))
    assert supervisor.wait(timeout=60) == 0


def test_stops_that_keep_coming_while_the_first_is_answered_still_end_the_run_as_stopped(
        eng, tiny_model_dir: Path, tiny_data: Path, tmp_path: Path) -> None:
    """A second SIGTERM while the trainer wrote run_stopped for the first raised out of the handler: exit 1, and
    the supervisor recorded run_failed (seen when two stops met a resume in test_faults)."""
    import os
    import time

    import psutil

    def running(pid: int) -> bool:
        try:
            return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            return False

    run_dir = eng.make_run(tmp_path, tiny_model_dir, tiny_data, train=LONG)
    supervisor = eng.launch(run_dir)
    trainer = eng.wait_for(run_dir, lambda _: read_pids(run_dir).get("trainer"), what="the trainer to start")
    deadline = time.monotonic() + 60
    while supervisor.poll() is None and time.monotonic() < deadline and running(trainer):
        os.kill(trainer, signal.SIGTERM)  # until the trainer is gone (a zombie takes signals too)
        time.sleep(0.0005)
    stopped = eng.wait_for(run_dir, eng.terminal(), what="the terminal event")
    assert stopped["type"] == "run_stopped" and stopped["step"] is None, stopped
    assert supervisor.wait(timeout=60) == 0


def test_a_stop_while_a_model_loads_ends_the_attempt_at_once(eng, demo_model_dir: Path, tmp_path: Path) -> None:
    """A stop was answered only once the model had loaded (22 s on the demo model here, minutes for a large one):
    nothing is lost before training, so it now ends the attempt where it is."""
    run_dir = eng.make_run(tmp_path, "smollm2-135m-instruct", "builtin:identity", train=LONG)
    supervisor = eng.launch(run_dir)
    eng.wait_for(run_dir, lambda events: any(e.get("name") == "loading_model" for e in events), what="the loading")
    assert stop_run(run_dir)
    stopped = eng.wait_for(run_dir, eng.terminal(), what="the terminal event")
    assert stopped["type"] == "run_stopped" and stopped["step"] is None, stopped
    assert supervisor.wait(timeout=60) == 0
    assert "model: {" not in (run_dir / "engine.log").read_text()  # the load was cut short: it never said what loaded
