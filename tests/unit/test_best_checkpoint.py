"""A run's checkpoints with their losses, and the best one: the rows the Checkpoints screen shows and what
``tuitune export RUN --best`` takes (one function decides for both), with the refusals of ``--best`` in one line
and exit status 2 when there is no best checkpoint to take."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.tui.canned import overfit
from tuitune.runs.checkpoints import DELETED, NoBestCheckpoint, best_checkpoint, checkpoint_rows
from tuitune.runs.folder import summarize

REPO = Path(__file__).resolve().parents[2]
FINISHED = REPO / "tests" / "fixtures" / "runs" / "finished"


@pytest.fixture()
def overfit_run(tmp_path: Path) -> Path:
    """The canned finished run (evals at 20, 40, 60), its eval loss rising after step 40, checkpoint-20 deleted
    by save_total_limit (the events still name it)."""
    run_dir = tmp_path / "runs" / "finished"
    shutil.copytree(FINISHED, run_dir)
    return overfit(run_dir)


def test_each_checkpoint_has_its_losses_and_the_lowest_eval_loss_is_best(overfit_run: Path) -> None:
    rows = checkpoint_rows(overfit_run, summarize(overfit_run).state)
    assert [(r.step, r.train_loss, r.eval_loss, r.problem) for r in rows] == [
        (20, 1.7747, 1.8947, DELETED), (40, 1.4199, 1.5399, None), (60, 1.2118, 1.6318, None)]
    assert best_checkpoint(overfit_run, summarize(overfit_run).state).path == overfit_run / "checkpoints/checkpoint-40"


def test_no_best_when_it_is_torn_or_was_deleted(overfit_run: Path) -> None:
    (overfit_run / "checkpoints" / "checkpoint-40" / "tuitune-complete.json").unlink()  # killed while saving
    with pytest.raises(NoBestCheckpoint, match="step 40 .*cannot be used: it was never finished"):
        best_checkpoint(overfit_run, summarize(overfit_run).state)
    shutil.rmtree(overfit_run / "checkpoints" / "checkpoint-40")
    with pytest.raises(NoBestCheckpoint, match="step 40 .*cannot be used: deleted"):
        best_checkpoint(overfit_run, summarize(overfit_run).state)


def export(runs: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", "tuitune", "--runs-dir", str(runs), "export", *args],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=120)


def test_export_best_takes_the_checkpoint_of_the_lowest_eval_loss(overfit_run: Path) -> None:
    # the weights here are not a model, so the export is refused naming the folder --best chose
    done = export(overfit_run.parent, "finished", "--best", "--merged")
    assert done.returncode == 2 and "checkpoint-40/adapter_model.safetensors" in done.stderr, done


@pytest.mark.parametrize(("change", "says"), [
    ("checkpoint", "is a checkpoint folder already"),
    ("no_eval", "has no eval loss at any checkpoint"),
    ("deleted", "the best checkpoint of finished, step 40 (eval loss 1.5399), cannot be used: deleted"),
])
def test_export_best_refuses_in_one_line(overfit_run: Path, change: str, says: str) -> None:
    run = "finished"
    if change == "checkpoint":
        run = str(overfit_run / "checkpoints" / "checkpoint-60")
    elif change == "no_eval":
        events = overfit_run / "events.jsonl"
        kept = [line for line in events.read_text().splitlines() if '"type": "eval"' not in line]
        events.write_text("\n".join(kept) + "\n")
    else:
        shutil.rmtree(overfit_run / "checkpoints" / "checkpoint-40")
    done = export(overfit_run.parent, run, "--best", "--merged")
    assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1 and says in done.stderr, done
    assert not (overfit_run / "exports").exists()
