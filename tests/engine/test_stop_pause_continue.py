"""``tuitune stop``, ``pause`` and ``continue`` agree on whether a run is running, from its folder's lock alone,
and say the same line when it is not; a run folder they cannot read is one line naming it and exit 2. Real
supervisors (``python -m engine launch``) with a stand-in child, and the real command line in a subprocess.

Unreadable folders: the tests run as root, whom file modes do not stop, so the commands run under
``setpriv`` without CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH: still root, but held to a folder's mode as
anyone else is (chmod 000 then denies, as it would any user).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from engine.locks import FolderLock
from tuitune.runs.launch import is_alive, read_pids

COMMANDS = ("stop", "pause", "continue")
WITHOUT_READ_OVERRIDE = ["setpriv", "--bounding-set", "-dac_override,-dac_read_search"]
"""Root held to file modes: what chmod 000 does to any user, it then does to the command."""
STAND_IN = (f"{sys.executable} -c 'import signal, time; "
            "signal.pthread_sigmask(signal.SIG_UNBLOCK, [signal.SIGTERM]); time.sleep(300)'")
"""A child that sleeps in the trainer's place and ends on SIGTERM (it starts with SIGTERM blocked, as the trainer
does, and unblocks it as the trainer does once its handlers are in)."""
DEAF_STAND_IN = (f"{sys.executable} -c 'import signal, time; "
                 "signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(300)'")
"""A child that outlives its supervisor: it ignores the SIGTERM its parent's death sends."""


def tuitune(eng, *args: str, prefix: tuple[str, ...] | list[str] = ()) -> subprocess.CompletedProcess[str]:
    """The ``tuitune`` command line in a subprocess, waited for."""
    return subprocess.run([*prefix, sys.executable, "-m", "tuitune", *args], cwd=eng.repo, env=eng.env(),
                          capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)


def every_command(eng, run_dir: Path, prefix: tuple[str, ...] | list[str] = ()
                  ) -> list[subprocess.CompletedProcess[str]]:
    """stop, pause and continue of ``run_dir``, in that order."""
    return [tuitune(eng, command, str(run_dir), prefix=prefix) for command in COMMANDS]


def run_folder(tmp_path: Path, name: str = "run") -> Path:
    run_dir = tmp_path / name
    run_dir.mkdir()
    (run_dir / "config.yaml").write_text("{}\n")
    return run_dir


def ended_attempt(run_dir: Path) -> None:
    """The lock file an attempt leaves behind: there, and free."""
    lock = FolderLock(run_dir)
    assert lock.acquire()
    lock.release()


def supervise(eng, run_dir: Path, child: str = STAND_IN) -> subprocess.Popen[bytes]:
    """A real supervisor over ``child``, once it holds the folder's lock and has written pids.json."""
    supervisor = eng.launch(run_dir, "--child-command", child)
    deadline = time.monotonic() + 60
    while not (read_pids(run_dir).get("trainer") and is_alive(run_dir)):
        assert time.monotonic() < deadline and supervisor.poll() is None, "the supervisor did not start"
        time.sleep(0.05)
    return supervisor


def history(path: Path, lines: int) -> None:
    """An events.jsonl of a run that started and logged ``lines`` steps (about 170 bytes a line)."""
    with open(path, "w", encoding="utf-8") as file:
        file.write(json.dumps({"v": 1, "seq": 1, "t": 1000.0, "type": "run_started", "run_name": "long",
                               "total_steps": 10**7}) + "\n")
        for start in range(2, lines + 2, 100_000):
            file.write("".join(f'{{"v": 1, "seq": {i}, "t": {1000 + i / 100:.2f}, "type": "log", "step": {i}, '
                               f'"total_steps": 10000000, "loss": 1.2345, "lr": 0.0002, "tokens_per_s": 212.5, '
                               f'"elapsed_s": {i / 100:.2f}, "eta_s": 100000.0}}\n'
                               for i in range(start, min(start + 100_000, lines + 2))))


def test_a_run_whose_lock_is_free_is_not_running_for_all_three_alike(eng, tmp_path: Path) -> None:
    """A torn last event (its end half written) and a supervisor killed with its trainer: nothing holds the lock,
    so no command may call the run running (continue said "running already", exit 0)."""
    torn = run_folder(tmp_path, "torn")
    (torn / "events.jsonl").write_text('{"v": 1, "seq": 1, "t": 1.0, "type": "run_started"}\n'
                                       '{"v": 1, "seq": 2, "t": 2.0, "type": "run_fini')
    ended_attempt(torn)
    killed = run_folder(tmp_path, "killed")
    supervisor = supervise(eng, killed)
    os.killpg(supervisor.pid, signal.SIGKILL)
    supervisor.wait(timeout=30)
    deadline = time.monotonic() + 30
    while is_alive(killed):
        assert time.monotonic() < deadline, "the killed attempt's lock was not freed"
        time.sleep(0.05)

    for run_dir in (torn, killed):
        said = every_command(eng, run_dir)
        assert [done.returncode for done in said] == [1, 1, 1], said
        lines = {done.stderr for done in said}
        assert len(lines) == 1 and not any(done.stdout for done in said), said
        line = lines.pop()
        assert line.startswith(f"{run_dir} is not running (") and line.count("\n") == 1, line
        assert "end was not recorded" in line, line


def test_a_trainer_outliving_its_supervisor_is_running_for_all_three_alike(eng, tmp_path: Path) -> None:
    """The lock is held by an orphan: stop said "not running" while continue said "running already"."""
    run_dir = run_folder(tmp_path)
    supervisor = supervise(eng, run_dir, DEAF_STAND_IN)
    try:
        os.kill(supervisor.pid, signal.SIGKILL)
        supervisor.wait(timeout=30)
        time.sleep(0.5)  # the SIGTERM its parent's death sent has come, and was ignored
        assert is_alive(run_dir)
        stop, pause, go_on = every_command(eng, run_dir)
    finally:
        os.killpg(supervisor.pid, signal.SIGKILL)  # the orphan, still in the supervisor's process group

    assert stop.returncode == 1 and stop.stderr == (f"{run_dir} is running, but none of its processes could be "
                                                    f"signalled; see {run_dir / 'pids.json'}\n"), stop
    assert pause.returncode == 1 and pause.stderr == (f"{run_dir} is running, but its supervisor is gone: it cannot "
                                                      "be paused (tuitune stop ends it)\n"), pause
    assert go_on.returncode == 0 and go_on.stdout == f"{run_dir} is running already\n", go_on


@pytest.mark.parametrize("how", ["run folder mode 000", "runs folder mode 000", "lock mode 000",
                                 "pids.json mode 000", "events.jsonl mode 000", "events.jsonl a folder",
                                 "events.jsonl a FIFO"])
def test_a_run_folder_that_cannot_be_read_is_one_line_and_exit_2(eng, tmp_path: Path, how: str) -> None:
    """Not a traceback (a folder without permission), and not "not running" or "running already" when the lock or
    the events cannot be read: whether it runs, or what it did, cannot be told."""
    runs = tmp_path / "runs"
    runs.mkdir()
    run_dir = run_folder(runs)
    ended_attempt(run_dir)
    (run_dir / "pids.json").write_text(json.dumps({"supervisor": None, "trainer": None, "started": 1.0}))
    (run_dir / "events.jsonl").write_text('{"v": 1, "seq": 1, "t": 2.0, "type": "run_started"}\n')
    thing, _, kind = how.partition(" ")
    target = {"run": run_dir, "runs": runs}.get(thing, run_dir / thing)
    if kind == "a folder":
        target.unlink()
        target.mkdir()
    elif kind == "a FIFO":
        target.unlink()
        os.mkfifo(target)
    else:
        target.chmod(0)
    try:
        said = every_command(eng, run_dir, prefix=WITHOUT_READ_OVERRIDE)
        said += [tuitune(eng, "--runs-dir", str(runs), "continue", run_dir.name, prefix=WITHOUT_READ_OVERRIDE)]
    finally:
        target.chmod(0o755)

    assert [done.returncode for done in said] == [2, 2, 2, 2], said
    lines = {done.stderr for done in said}
    assert len(lines) == 1, said
    line = lines.pop()
    assert line.startswith("error: ") and line.count("\n") == 1 and "Traceback" not in line, line
    assert str(target) in line, line


def test_a_long_history_is_not_read_whole(eng, tmp_path: Path) -> None:
    """Only the end of events.jsonl says where a run is: with 200 MB of history, each command takes about what it
    takes with none. Before, stop took 6 s here and continue 18 s, reading and folding all of it, and the
    supervisor numbered its ``paused`` event by parsing the whole file too."""
    def timed(*args: str) -> tuple[float, subprocess.CompletedProcess[str]]:
        begin = time.monotonic()
        done = tuitune(eng, *args)
        return time.monotonic() - begin, done

    short = run_folder(tmp_path, "short")
    history(short / "events.jsonl", 10)
    baseline, done = timed("stop", str(short))
    assert done.returncode == 1, done
    bound = 4.0 + 3 * baseline
    run_dir = run_folder(tmp_path, "long")
    history(run_dir / "events.jsonl", 1_200_000)
    assert (run_dir / "events.jsonl").stat().st_size > 200 << 20
    supervisor = supervise(eng, run_dir)
    try:
        for command, out in (("pause", f"paused {run_dir}:"), ("pause", f"{run_dir} is paused already"),
                             ("continue", f"continued {run_dir}"), ("continue", f"{run_dir} is running already"),
                             ("stop", "stopping (saving a checkpoint and the adapter)")):
            took, done = timed(command, str(run_dir))
            assert done.returncode == 0 and done.stdout.startswith(out), (command, done)
            assert took < bound, f"tuitune {command} took {took:.1f} s, over {bound:.1f} s"
        assert supervisor.wait(timeout=30) == 0
        for command in COMMANDS:
            took, done = timed(command, str(run_dir))
            assert done.returncode == 1, (command, done)
            assert done.stderr == f"{run_dir} is not running (it ended: stopped before training started " \
                                  "(nothing saved))\n", done
            assert took < bound, f"tuitune {command} took {took:.1f} s, over {bound:.1f} s"
    finally:
        (run_dir / "events.jsonl").unlink()  # 200 MB need not outlive the test
