"""Run folder listing, config meta and resolving a run given by name or path."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from tuitune.runs import folder

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "runs"


@pytest.fixture()
def runs_dir(tmp_path: Path) -> Path:
    root = tmp_path / "runs"
    shutil.copytree(FIXTURES, root)
    for age, name in enumerate(("running", "stopped", "failed", "finished")):
        os.utime(root / name / "events.jsonl", (1e9 - age, 1e9 - age))
    (root / "not-a-run").mkdir()
    (root / "stray.txt").write_text("x")
    return root


def test_lists_only_run_folders_newest_first(runs_dir: Path) -> None:
    assert [p.name for p in folder.list_run_dirs(runs_dir)] == ["running", "stopped", "failed", "finished"]
    assert folder.list_run_dirs(runs_dir / "missing") == []
    # summaries order by the start time in the events, not by file times
    assert [r.name for r in folder.list_runs(runs_dir)] == ["running", "failed", "stopped", "finished"]


def test_index_reads_only_new_events_and_sees_new_runs(runs_dir: Path) -> None:
    index = folder.RunsIndex(runs_dir)
    first = {r.name: r for r in index.scan()}
    assert first["running"].state.step == 45
    with open(runs_dir / "running" / "events.jsonl", "a") as file:
        file.write('ss": 1.3}\n{"v": 1, "seq": 100, "t": 1764162500.0, "type": "run_stopped", "step": 50}\n')
    shutil.copytree(runs_dir / "failed", runs_dir / "failed-again")
    again = {r.path.name: r for r in index.scan()}
    assert again["running"].state.step == 50 and again["running"].status == "stopped"
    assert again["running"].state.train_series[-1] == (50.0, 1.3)
    assert "failed-again" in again


def test_summaries_carry_config_meta_state_and_status(runs_dir: Path) -> None:
    runs = {r.name: r for r in folder.list_runs(runs_dir)}
    assert runs["running"].meta.model == "meta-llama/Llama-3.2-1B-Instruct"
    assert runs["running"].meta.quant == "4bit"
    assert runs["stopped"].meta.method == "dora"
    assert {n: r.status for n, r in runs.items()} == {
        "running": "lost", "stopped": "stopped", "failed": "failed", "finished": "finished"}
    assert runs["running"].state.step == 45
    assert runs["failed"].state.terminal["cause"].startswith("CUDA out of memory")


def test_broken_or_missing_config_still_lists(runs_dir: Path) -> None:
    (runs_dir / "finished" / "config.yaml").write_text("model: [unclosed\n")
    meta = folder.read_meta(runs_dir / "finished")
    assert meta.error and "config.yaml" in meta.error
    only_events = runs_dir / "bare"
    only_events.mkdir()
    shutil.copy(FIXTURES / "failed" / "events.jsonl", only_events)
    summary = folder.summarize(only_events)
    assert summary.meta.error.endswith("missing") and summary.status == "failed"


def test_resolve_run_by_path_or_name(runs_dir: Path, tmp_path: Path) -> None:
    assert folder.resolve_run(str(runs_dir / "stopped"), tmp_path) == (runs_dir / "stopped").resolve()
    assert folder.resolve_run("failed", runs_dir) == (runs_dir / "failed").resolve()
    with pytest.raises(FileNotFoundError, match="no run named 'nope' in .*runs and no folder 'nope' in"):
        folder.resolve_run("nope", runs_dir)


def test_resolve_run_says_what_it_found_once(runs_dir: Path, tmp_path: Path) -> None:
    """An absolute path that is not a run was reported as 'no run folder at X or X'."""
    plain = tmp_path / "plain"
    plain.mkdir()
    with pytest.raises(FileNotFoundError) as found:
        folder.resolve_run(str(plain), runs_dir)
    assert str(found.value) == f"{plain} is a folder but not a run folder (it holds no config.yaml and no events.jsonl)"
    with pytest.raises(FileNotFoundError) as missing:
        folder.resolve_run(str(tmp_path / "gone"), runs_dir)
    assert str(missing.value) == f"no run folder at {tmp_path / 'gone'}"


def test_a_run_whose_events_cannot_be_read_is_listed_with_why_and_the_rest_work(runs_dir: Path) -> None:
    """A folder, a FIFO or an unreadable file in place of events.jsonl made the runs list an error
    dialog (or stalled the scan for ever) and tuitune stop a traceback."""
    for name, make in (("as-folder", lambda p: p.mkdir()), ("as-fifo", os.mkfifo),
                       ("as-fifo-config", None)):
        run = runs_dir / name
        shutil.copytree(runs_dir / "finished", run)
        events = run / "events.jsonl"
        if make is None:
            (run / "config.yaml").unlink()
            os.mkfifo(run / "config.yaml")
        else:
            events.unlink()
            make(events)
    runs = {r.name: r for r in folder.RunsIndex(runs_dir).scan(check_alive=False)}
    assert "not a regular file" in runs["as-folder"].events_error
    assert "not a regular file" in runs["as-fifo"].events_error
    assert "not a regular file (a FIFO)" in runs["as-fifo-config"].meta.error
    assert runs["finished"].status == "finished" and runs["finished"].events_error is None


def test_a_long_history_is_summarised_from_its_start_and_its_end(tmp_path: Path) -> None:
    """A 200 MB events.jsonl hid the runs list for 18 s: the summary reads the ends, not the middle."""
    import json

    run = tmp_path / "runs" / "long"
    run.mkdir(parents=True)
    with open(run / "events.jsonl", "w") as file:
        file.write(json.dumps({"v": 1, "seq": 1, "t": 1000.0, "type": "run_started", "run_name": "long",
                               "model": {"name_or_path": "m"}, "method": "lora", "total_steps": 60000}) + "\n")
        for step in range(1, 60001):
            file.write(json.dumps({"v": 1, "seq": step + 1, "t": 1000.0 + step, "type": "log", "step": step,
                                   "loss": 1.0 + 1 / step, "total_steps": 60000}) + "\n")
    size = (run / "events.jsonl").stat().st_size
    assert size > 4_000_000
    [summary] = folder.RunsIndex(tmp_path / "runs").scan(check_alive=False)
    assert summary.state.events_seen < 10_000  # most of the history was never parsed
    assert summary.state.model == "m" and summary.state.started_t == 1000.0
    assert summary.state.step == 60000 and summary.state.loss == 1.0 + 1 / 60000
    assert summary.state.last_t == 61000.0
