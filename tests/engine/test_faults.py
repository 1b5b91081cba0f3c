"""Run integrity under faults: kills at chosen moments, a full disk, torn checkpoints, races.

Each test drives the real supervisor and trainer on the tiny model and checks what a reader of
the run folder sees afterwards (docs/run-folder.md, "Guarantees").
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest

from engine.checkpoints import latest_checkpoint, problem
from engine.protocol import read_events
from tuitune.runs.launch import is_alive, read_pids, resume_run, stop_run, wait_until_gone

LONG = {"max_steps": 1000, "batch_size": 1, "save_steps": 1000}
"""More steps than a test waits for."""


def test_a_sigkill_from_outside_is_a_failure_with_the_out_of_memory_hint(eng, tiny_model_dir: Path,
                                                                        tiny_data: Path, tmp_path: Path) -> None:
    """What the OOM killer does: not asked for, so recorded as run_failed by the supervisor."""
    run_dir = eng.make_run(tmp_path, tiny_model_dir, tiny_data, train=LONG)
    supervisor = eng.launch(run_dir)
    eng.wait_for(run_dir, eng.first("log"), what="the first log event")
    os.kill(read_pids(run_dir)["trainer"], signal.SIGKILL)

    failed = eng.wait_for(run_dir, eng.terminal(), what="the terminal event")
    assert failed["type"] == "run_failed" and failed["signal"] == "SIGKILL" and failed["exit_code"] == 137
    assert "out of memory" in failed["hint"] and failed["log_tail"]
    assert supervisor.wait(timeout=60) == 137 and not is_alive(run_dir)


def test_a_killed_supervisor_leaves_no_trainer_training_alone(eng, tiny_model_dir: Path, tiny_data: Path,
                                                             tmp_path: Path) -> None:
    """The orphan hears of its parent's death, stops and saves; nothing starts in the folder meanwhile."""
    run_dir = eng.make_run(tmp_path, tiny_model_dir, tiny_data, train=LONG)
    supervisor = eng.launch(run_dir)
    eng.wait_for(run_dir, eng.first("log"), what="the first log event")
    os.kill(supervisor.pid, signal.SIGKILL)
    supervisor.wait(timeout=30)

    stopped = eng.wait_for(run_dir, eng.terminal(), what="the orphan's own terminal event")
    assert stopped["type"] == "run_stopped" and stopped["checkpoint_path"], stopped
    assert wait_until_gone(run_dir, timeout=120)
    assert latest_checkpoint(run_dir) == run_dir / stopped["checkpoint_path"]
    seqs = [e["seq"] for e in read_events(run_dir)]
    assert seqs == list(range(1, len(seqs) + 1))


def test_of_two_resumes_at_once_exactly_one_starts(eng, tiny_model_dir: Path, tiny_data: Path,
                                                   tmp_path: Path) -> None:
    run_dir = eng.make_run(tmp_path, tiny_model_dir, tiny_data, train=LONG)
    for _ in range(2):
        outcomes: list[object] = []
        barrier = threading.Barrier(2)

        def resume(barrier: threading.Barrier = barrier, outcomes: list[object] = outcomes) -> None:
            barrier.wait()
            try:
                outcomes.append(resume_run(run_dir))
            except RuntimeError as exc:
                outcomes.append(exc)

        threads = [threading.Thread(target=resume) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
        started = [o for o in outcomes if isinstance(o, int)]
        refused = [o for o in outcomes if isinstance(o, RuntimeError)]
        assert len(started) == 1 and len(refused) == 1, outcomes
        assert "still running" in str(refused[0])
        assert read_pids(run_dir)["supervisor"] == started[0]
        assert stop_run(run_dir) and wait_until_gone(run_dir, timeout=120)
    attempts = [e for e in read_events(run_dir) if e["type"] in ("run_started", "run_stopped", "run_failed")]
    assert all(e["type"] != "run_failed" for e in attempts), attempts


def test_a_checkpoint_torn_by_a_kill_is_skipped_and_the_resume_says_so(eng, tiny_model_dir: Path,
                                                                        tiny_data: Path, tmp_path: Path) -> None:
    """A kill right after transformers created trainer_state.json left it empty: every resume failed."""
    run_dir = eng.make_run(tmp_path, tiny_model_dir, tiny_data, train={"max_steps": 6, "save_steps": 2,
                                                                       "save_total_limit": 5})
    finished = eng.run_to_end(run_dir)[-1]
    assert finished["type"] == "run_finished"
    # The newest is torn by a kill during its save; the next by a file truncated after it was saved.
    newest, next_one = (run_dir / "checkpoints" / f"checkpoint-{step}" for step in (6, 4))
    (newest / "tuitune-complete.json").unlink()
    (newest / "trainer_state.json").write_bytes(b"")
    with open(next_one / "optimizer.pt", "r+b") as file:
        file.truncate(10)
    assert "never finished" in problem(newest) and "optimizer.pt has 10 bytes" in problem(next_one)
    assert latest_checkpoint(run_dir) == run_dir / "checkpoints" / "checkpoint-2"
    before = len(read_events(run_dir))

    new = eng.run_to_end(run_dir, "--resume")[before:]
    warnings = [e["message"] for e in new if e["type"] == "warning" and e["code"] == "incomplete_checkpoint"]
    assert len(warnings) == 2 and all("resuming from checkpoint-2" in w for w in warnings), warnings
    assert next(e for e in new if e["type"] == "run_started")["resumed_from_step"] == 2
    assert new[-1]["type"] == "run_finished" and new[-1]["step"] == 6


def test_a_resume_from_the_last_steps_checkpoint_finishes_without_training(eng, tiny_model_dir: Path,
                                                                          tiny_data: Path, tmp_path: Path) -> None:
    """It trained one step past the end (4/3); then it loaded the model only to say there was nothing to train."""
    run_dir = eng.make_run(tmp_path, tiny_model_dir, tiny_data, train={"max_steps": 3, "save_steps": 3})
    first = eng.run_to_end(run_dir)
    assert first[-1]["type"] == "run_finished"
    (run_dir / "adapter").rename(run_dir / "adapter-first")  # as if the final save never happened

    new = eng.run_to_end(run_dir, "--resume")[len(first):]
    assert eng.kinds(new) == ["run_started", "run_finished"], new
    assert [e["name"] for e in new if e["type"] == "phase"] == ["saving"]  # no model, no data was loaded
    # the same run_started as any attempt's, processes included
    started = next(e for e in new if e["type"] == "run_started")
    assert {"world_size": 1, "nnodes": 1, "nproc": 1, "gpus": []}.items() <= started.items()
    assert new[-1]["step"] == 3 and new[-1]["train_loss"] == pytest.approx(first[-1]["train_loss"])
    saved = (run_dir / "adapter" / "adapter_model.safetensors").read_bytes()
    assert saved == (run_dir / "adapter-first" / "adapter_model.safetensors").read_bytes()
    assert not (run_dir / "adapter" / "optimizer.pt").exists()


@pytest.fixture
def small_disk(tmp_path: Path):
    """A 40 MiB tmpfs: a disk that can be filled without filling the machine's (needs root, as CI has)."""
    mount = tmp_path / "disk"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=40m", "tmpfs", str(mount)], check=True, timeout=30)
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False, timeout=30)


def test_a_full_disk_fails_whole_keeps_the_last_checkpoint_and_no_adapter(eng, tiny_model_dir: Path, tiny_data: Path,
                                                                          small_disk: Path) -> None:
    run_dir = eng.make_run(small_disk, tiny_model_dir, tiny_data, train={**LONG, "save_steps": 1})
    supervisor = eng.launch(run_dir)
    saved = eng.wait_for(run_dir, eng.first("checkpoint"), what="the first checkpoint")
    trainer = read_pids(run_dir)["trainer"]
    os.kill(trainer, signal.SIGSTOP)
    try:
        free = os.statvfs(small_disk).f_bavail * os.statvfs(small_disk).f_frsize
        with open(small_disk / "filler", "wb") as filler:  # leave less than a checkpoint and the reserve
            filler.write(b"\0" * (free - 4 * 1024**2))
    finally:
        os.kill(trainer, signal.SIGCONT)

    failed = eng.wait_for(run_dir, eng.terminal(), what="the terminal event")
    assert supervisor.wait(timeout=120) == 1
    assert failed["type"] == "run_failed", failed
    assert failed["cause"].startswith(f"no space left on {small_disk}: ") and "MB free" in failed["cause"]
    assert "the checkpoint needs" in failed["cause"] and "resume" in failed["hint"]
    complete = latest_checkpoint(run_dir)
    assert complete is not None and complete.name.startswith("checkpoint-") and int(complete.name[11:]) >= saved["step"]
    assert not (run_dir / "adapter").exists()
    assert json.loads((run_dir / "events.jsonl").read_text().splitlines()[-1])["type"] == "run_failed"


def test_a_paused_trainer_goes_on_and_a_double_stop_ends_it_once(eng, tiny_model_dir: Path, tiny_data: Path,
                                                                 tmp_path: Path) -> None:
    """SIGSTOP/SIGCONT of the trainer, then SIGTERM to the supervisor alone and a tuitune stop on top."""
    run_dir = eng.make_run(tmp_path, tiny_model_dir, tiny_data, train=LONG)
    supervisor = eng.launch(run_dir)
    first = eng.wait_for(run_dir, eng.first("log"), what="the first log event")
    trainer = read_pids(run_dir)["trainer"]
    os.kill(trainer, signal.SIGSTOP)
    time.sleep(1.0)
    os.kill(trainer, signal.SIGCONT)
    eng.wait_for(run_dir, lambda ev: any(e["type"] == "log" and e["step"] > first["step"] for e in ev),
                 what="training to go on")
    os.kill(supervisor.pid, signal.SIGTERM)  # the supervisor passes it on to the trainer
    assert stop_run(run_dir)
    eng.wait_for(run_dir, eng.terminal(), what="the terminal event")
    assert supervisor.wait(timeout=120) == 0
    ends = [e["type"] for e in read_events(run_dir) if e["type"] in ("run_stopped", "run_finished", "run_failed")]
    assert ends == ["run_stopped"]


def test_stop_signals_only_the_runs_own_process_group(eng, tmp_path: Path) -> None:
    """pids.json may name another group (stale, edited): only the supervisor's own group is signalled."""
    import sys

    bystander = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], start_new_session=True)
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "config.yaml").write_text("{}\n")
    # The supervisor starts its child with SIGTERM blocked until it has handlers, as the trainer does.
    sleeper = (f"{sys.executable} -c 'import signal, time; "
               "signal.pthread_sigmask(signal.SIG_UNBLOCK, [signal.SIGTERM]); time.sleep(60)'")
    supervisor = eng.launch(run_dir, "--child-command", sleeper)
    try:
        eng.wait_for(run_dir, lambda _: read_pids(run_dir).get("trainer"), what="the child to start")
        pids = read_pids(run_dir)
        (run_dir / "pids.json").write_text(json.dumps({**pids, "pgid": bystander.pid}))
        assert stop_run(run_dir)
        assert supervisor.wait(timeout=60) == 0
        assert bystander.poll() is None
    finally:
        bystander.kill()
        bystander.wait()
