"""LLaMA-Factory output folders read as tuitune events (tuitune.runs.lf_folder)."""

from __future__ import annotations

import json
import os
import shutil
import stat
from pathlib import Path

import pytest

from tuitune.runs.lf_folder import LFTail, is_lf_folder, last_activity, lf_events, log_file, parse_duration
from tuitune.runs.state import RunState, fold, status

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "lf_runs"
FINISHED = FIXTURES / "qwen2_lora_sft_finished"
RUNNING = FIXTURES / "qwen2_lora_sft_running"


def lf_lines(folder: Path) -> list[dict]:
    return [json.loads(line) for line in (folder / "trainer_log.jsonl").read_text().splitlines()]


def tree(folder: Path) -> dict[str, tuple[int, int, int]]:
    """Every path under ``folder`` with its mode, size and modification time."""
    return {str(p.relative_to(folder)): (p.stat().st_mode, p.stat().st_size, p.stat().st_mtime_ns)
            for p in [folder, *folder.rglob("*")]}


@pytest.fixture
def running(tmp_path: Path) -> Path:
    """A copy of the running fixture that a test may append to."""
    return Path(shutil.copytree(RUNNING, tmp_path / "saves" / "qwen2_lora_sft_running"))


def append(folder: Path, text: str) -> None:
    with open(folder / "trainer_log.jsonl", "a") as file:
        file.write(text)


def log_line(step: int, total: int = 90, loss: float = 1.5, **more: object) -> str:
    """A trainer_log.jsonl line as LLaMA-Factory's LogCallback writes it."""
    line = {"current_steps": step, "total_steps": total, "loss": loss, "lr": 9e-05, "epoch": step / 30,
            "percentage": round(step / total * 100, 2), "elapsed_time": f"0:01:{step:02d}",
            "remaining_time": "0:02:00", **more}
    return json.dumps(line) + "\n"


def test_a_finished_run_becomes_our_events(tmp_path: Path) -> None:
    events = lf_events(FINISHED)

    kinds = [e["type"] for e in events]
    assert kinds[0] == "run_started" and kinds[-1] == "run_finished"
    assert kinds.count("log") == 12 and kinds.count("eval") == 3 and kinds.count("checkpoint") == 3
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    started = events[0]
    assert started["total_steps"] == 60 and started["run_name"] == "qwen2_lora_sft_finished"
    assert started["model"] == {"name_or_path": "Qwen/Qwen2.5-0.5B-Instruct"} and started["method"] == "lora"
    lines = [line for line in lf_lines(FINISHED) if "loss" in line]
    logs = [e for e in events if e["type"] == "log"]
    assert [(e["step"], e["loss"], e["lr"], e["epoch"]) for e in logs] == [
        (line["current_steps"], line["loss"], line["lr"], line["epoch"]) for line in lines]
    assert logs[0]["elapsed_s"] == 11.0 and logs[0]["eta_s"] == 126.0
    assert logs[0]["grad_norm"] == 1.811995  # from trainer_state.json's log_history
    assert logs[1]["tokens_per_s"] == pytest.approx((18430 - 9215) / (23 - 11), abs=0.01)  # since the last log
    assert [(e["step"], e["eval_loss"]) for e in events if e["type"] == "eval"] == [
        (line["current_steps"], line["eval_loss"]) for line in lf_lines(FINISHED) if "eval_loss" in line]
    assert events[-1]["train_loss"] == 1.4127 and events[-1]["step"] == 60

    state = fold(RunState(), events)
    assert (state.step, state.total_steps, state.progress) == (60, 60, 1.0)
    assert state.checkpoints == ("checkpoint-20", "checkpoint-40", "checkpoint-60")
    assert status(state, None) == "finished" and state.bad_fields == 0
    assert [t for t in (e["t"] for e in events)] == sorted(e["t"] for e in events)
    assert log_file(FINISHED) == FINISHED / "running_log.txt"


def test_a_running_run_is_followed_line_by_line_with_a_torn_line_held_back(running: Path) -> None:
    tail = LFTail(running)
    state = fold(RunState(), tail.read())
    assert (state.step, state.total_steps, state.checkpoints, status(state, None)) == (25, 90, ("checkpoint-20",),
                                                                                         "running")
    assert log_file(running) is None

    whole, torn = log_line(30, loss=1.4), log_line(35, loss=1.3)
    append(running, whole + torn[:20])
    new = tail.read()
    assert [(e["type"], e["step"]) for e in new] == [("log", 30)]
    state = fold(state, new)
    assert tail.offset == (running / "trainer_log.jsonl").stat().st_size - 20

    append(running, torn[20:])
    state = fold(state, tail.read())
    assert state.step == 35 and state.loss == 1.3 and len(state.train_series) == 7

    (running / "checkpoint-40").mkdir()  # a checkpoint being written: not counted until its state is
    append(running, log_line(40, loss=1.2))
    assert [e["type"] for e in tail.read()] == ["log"]
    shutil.copy(running / "checkpoint-20" / "trainer_state.json", running / "checkpoint-40" / "trainer_state.json")
    assert [(e["type"], e["path"]) for e in tail.read()] == [("checkpoint", "checkpoint-40")]
    assert tail.read() == []


def test_the_end_is_read_from_the_results_files(running: Path) -> None:
    tail = LFTail(running)
    tail.read()
    append(running, log_line(90, loss=0.9) + json.dumps({"current_steps": 90, "total_steps": 90, "epoch": 3.0,
                                                          "percentage": 100.0, "elapsed_time": "0:03:27",
                                                          "remaining_time": "0:00:00"}) + "\n")
    assert [e["type"] for e in tail.read()] == ["log"]  # the summary line alone does not end it
    (running / "train_results.json").write_text(json.dumps({"epoch": 3.0, "train_loss": 1.234}))
    [finished] = tail.read()
    assert finished["type"] == "run_finished" and finished["step"] == 90 and finished["train_loss"] == 1.234
    assert finished.get("adapter_path") is None  # no adapter_config.json in the folder yet
    assert tail.read() == []


def test_a_resume_starts_a_new_attempt_from_its_checkpoint(running: Path) -> None:
    tail = LFTail(running)
    state = fold(RunState(), tail.read())
    append(running, log_line(25, loss=1.25))  # resumed from checkpoint-20: steps 21.. are done again
    events = tail.read()
    assert [e["type"] for e in events] == ["run_started", "log"]
    assert events[0]["resumed_from_step"] == 20 and events[0]["total_steps"] == 90
    state = fold(state, events)
    assert state.resume_steps == (20,) and [p[0] for p in state.train_series] == [5, 10, 15, 20, 25]
    assert state.loss == 1.25


def test_lines_that_are_not_llamafactory_logs_are_kept_aside(running: Path) -> None:
    tail = LFTail(running)
    tail.read()
    append(running, "not json\n" + json.dumps({"step": 3}) + "\n" + log_line(30))
    assert [e["step"] for e in tail.read()] == [30]
    assert tail.bad_lines == ["not json", '{"step": 3}']


def test_reading_never_writes_into_the_folder(tmp_path: Path) -> None:
    folder = Path(shutil.copytree(FINISHED, tmp_path / "lf"))
    for path in sorted([folder, *folder.rglob("*")], reverse=True):
        path.chmod(stat.S_IREAD | stat.S_IXUSR if path.is_dir() else stat.S_IREAD)
    try:
        before = tree(folder)
        events = lf_events(folder)
        assert tree(folder) == before
        assert events[-1]["type"] == "run_finished"
    finally:
        for path in [folder, *folder.rglob("*")]:
            path.chmod(0o755 if path.is_dir() else 0o644)


def test_what_counts_as_a_llamafactory_folder(tmp_path: Path) -> None:
    assert is_lf_folder(FINISHED) and is_lf_folder(RUNNING)
    ours = tmp_path / "ours"
    ours.mkdir()
    (ours / "trainer_log.jsonl").write_text("")
    (ours / "events.jsonl").write_text("")
    assert not is_lf_folder(ours)
    odd = tmp_path / "odd"
    (odd / "trainer_log.jsonl").mkdir(parents=True)
    assert not is_lf_folder(odd) and not is_lf_folder(tmp_path / "missing")
    tail = LFTail(odd)
    assert tail.read() == [] and "not a regular file" in tail.error
    assert last_activity(FINISHED) == max(os.stat(FINISHED / n).st_mtime for n in ("trainer_log.jsonl",
                                                                                   "running_log.txt"))


@pytest.mark.parametrize("text, seconds", [("0:00:41", 41.0), ("1:02:03", 3723.0), ("1 day, 2:03:04", 93784.0),
                                           ("3 days, 0:00:00", 259200.0), ("", None), ("soon", None), (12, None)])
def test_durations_as_llamafactory_writes_them(text: object, seconds: float | None) -> None:
    assert parse_duration(text) == seconds


def test_a_real_llamafactory_runs_folder_reads_as_it_trained() -> None:
    """The folder a real LLaMA-Factory 0.9.5 run wrote (see fixtures/lf_runs/README.md): every step's
    loss and lr, the evaluations, both checkpoints and the end."""
    folder = FIXTURES / "real_smollm2_lora_sft"
    written = [json.loads(line) for line in (folder / "trainer_log.jsonl").read_text().splitlines()]
    events = lf_events(folder)
    logs = [e for e in events if e["type"] == "log"]
    train_lines = [w for w in written if "loss" in w]
    assert [e["step"] for e in logs] == [w["current_steps"] for w in train_lines] == [1, 2, 3, 4, 5, 6]
    assert [e["loss"] for e in logs] == pytest.approx([w["loss"] for w in train_lines])
    assert [e["lr"] for e in logs] == pytest.approx([w["lr"] for w in train_lines])
    evals = [e for e in events if e["type"] == "eval"]
    assert [(e["step"], e["eval_loss"]) for e in evals][0] == pytest.approx(
        (3, next(w["eval_loss"] for w in written if "eval_loss" in w)))
    assert [e["path"] for e in events if e["type"] == "checkpoint"] == ["checkpoint-3", "checkpoint-6"]
    state = fold(RunState(name=folder.name), events)
    assert events[-1]["type"] == "run_finished" and status(state, False) == "finished"
    assert state.total_steps == 6 and state.model.endswith("smollm2-135m-instruct") and state.method == "lora"
