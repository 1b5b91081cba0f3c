"""The queue file of a runs folder (tuitune.runs.queue) and ``tuitune queue`` refusals, with no runner started."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from tuitune.__main__ import main
from tuitune.cli.common import Refusal
from tuitune.cli.queue import sweep_name, sweep_values
from tuitune.runs.queue import QueuedRun, QueueError, add_runs, move_run, read_queue, remove_run, set_paused


def test_edits_at_once_lose_nothing(tmp_path: Path) -> None:
    def add(who: int) -> None:
        for n in range(15):
            add_runs(tmp_path, [QueuedRun(f"r{who}-{n}", {})])

    adders = [threading.Thread(target=add, args=(who,)) for who in range(3)]
    for adder in adders:
        adder.start()
    for adder in adders:
        adder.join()
    names = [run.name for run in read_queue(tmp_path).runs]
    assert sorted(names) == sorted(f"r{who}-{n}" for who in range(3) for n in range(15))
    assert [p.name for p in (tmp_path / ".queue").iterdir() if p.name.endswith(".tmp")] == []


def test_move_remove_pause_and_what_a_name_says(tmp_path: Path) -> None:
    add_runs(tmp_path, [QueuedRun(name, {}) for name in ("a", "b", "c")])
    assert move_run(tmp_path, "c", -1) == 1 and move_run(tmp_path, "c", -5) == 0
    assert move_run(tmp_path, "a", 9) == 2
    assert [run.name for run in read_queue(tmp_path).runs] == ["c", "b", "a"]
    with pytest.raises(QueueError, match="already holds b"):
        add_runs(tmp_path, [QueuedRun("d", {}), QueuedRun("b", {})])
    assert len(read_queue(tmp_path).runs) == 3  # all or none
    remove_run(tmp_path, "b")
    with pytest.raises(QueueError, match=r"no queued run is called 'b' \(queued: c, a\)"):
        remove_run(tmp_path, "b")
    set_paused(tmp_path, True)
    assert read_queue(tmp_path).paused


def test_a_queue_file_that_is_not_one_is_named(tmp_path: Path) -> None:
    (tmp_path / ".queue").mkdir()
    (tmp_path / ".queue" / "queue.json").write_text('{"v": 9, "runs": []}')
    with pytest.raises(QueueError, match=r"queue\.json: not a tuitune queue: version 9"):
        read_queue(tmp_path)


def test_a_sweep_is_every_combination_named_by_its_values() -> None:
    sweeps = sweep_values(["train.learning_rate=1e-4,2e-4", "adapter.r=8,16", "stage=sft"])
    assert sweeps == [("train.learning_rate", [0.0001, 0.0002]), ("adapter.r", [8, 16]), ("stage", ["sft"])]
    assert sweep_name("base", (("train.learning_rate", 0.0001), ("adapter.r", 8))) == "base-lr-0.0001-r-8"
    for wrong in (["lr"], ["train.learning_rate="], ["a.b=1", "a.b=2"]):
        with pytest.raises(Refusal):
            sweep_values(wrong)


@pytest.mark.parametrize("args, said", [
    (["queue", "add", "--sweep", "adapter.r"], "--sweep 'adapter.r': give a dotted config key and its values"),
    (["queue", "add", "--name", "a/b"], "--name: 'a/b' cannot be a folder name here"),
    (["queue", "rm", "nothing"], "no queued run is called 'nothing'"),
])
def test_refusals_are_one_line_and_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str],
                                          said: str) -> None:
    assert main(["--runs-dir", str(tmp_path), *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {said}") and err.count("\n") == 1, err
