"""The Evaluations screen on evaluation folders written here (no model): summary, records, growth, stop key."""

from __future__ import annotations

import io
import json
from pathlib import Path

from rich.console import Console

from engine.locks import FolderLock
from engine.protocol import EventWriter

RECORDS = [
    {"index": 0, "file": "/data/held.jsonl", "line": 1, "prompt": [{"role": "user", "content": "Who are you?"}],
     "reference": "I'm Tuito.", "base": "I am SmolLM, an AI assistant.", "tuned": "I'm Tuito, [bold]an AI[/bold].",
     "base_tokens": 9, "tuned_tokens": 11, "base_loss": 3.5, "tuned_loss": 0.7,
     "scores": {"base": {"bleu_4": 10.0, "rouge_1": 20.0, "rouge_2": 0.0, "rouge_l": 20.0},
                "tuned": {"bleu_4": 60.0, "rouge_1": 80.0, "rouge_2": 50.0, "rouge_l": 80.0}}},
    {"index": 1, "file": "/data/held.jsonl", "line": 2, "prompt": [{"role": "user", "content": "你叫什么名字？"}],
     "reference": "我叫Tuito。", "base": "我是一个助手。", "tuned": "我叫Tuito。", "base_tokens": 5, "tuned_tokens": 4,
     "base_loss": 4.1, "tuned_loss": 0.4, "scores": {}},
]
FIGURES = {"base": {"loss": 3.9404, "perplexity": 51.44, "loss_per_record": 3.8, "bleu_4": 5.3, "rouge_1": 15.9,
                    "rouge_2": 3.5, "rouge_l": 12.9},
           "tuned": {"loss": 1.7872, "perplexity": 5.97, "loss_per_record": 1.6, "bleu_4": 15.6, "rouge_1": 33.5,
                     "rouge_2": 15.5, "rouge_l": 29.5}}


def text_of(widget) -> str:
    """What a Static shows, as plain text (its content may be a rich Table)."""
    console = Console(width=110, file=io.StringIO(), record=True)
    console.print(widget.content)
    return console.export_text()


def write_job(run_dir: Path, name: str, records: list[dict], end: tuple[str, dict] | None) -> Path:
    """An evaluation folder as the job leaves it: events, predictions and (when it ended) metrics."""
    job_dir = run_dir / "evals" / name
    job_dir.mkdir(parents=True)
    with EventWriter(job_dir) as events:
        events.emit("job_started", kind="eval", run_name=run_dir.name, adapter="adapter", pid=1)
        events.emit("progress", phase="predict", done=len(records), total=2)
        if end is not None:
            events.emit(end[0], **end[1])
    (job_dir / "predictions.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))
    if end is not None and end[0] == "job_finished":
        metrics = {"v": 1, "complete": True, "records": 2, "tokens": 45, "predicted": 2, **FIGURES}
        (job_dir / "metrics.json").write_text(json.dumps(metrics))
    return job_dir


async def test_evaluations_show_the_summary_and_browse_records_side_by_side(tmp_path: Path, make_app,
                                                                            wait_for) -> None:
    """You should see the finished evaluation's base and tuned figures and its records one by one; a failed one
    says why."""
    from tuitune.screens.evals import EvalsScreen

    run_dir = tmp_path / "runs" / "demo"
    write_job(run_dir, "failed", [], ("job_failed", {"cause": "the evaluation data has problems", "hint": None,
                                                     "errors": ["held.jsonl:3: not JSON"]}))
    write_job(run_dir, "finished", RECORDS, ("job_finished", {"records": 2, "metrics": FIGURES}))
    app = make_app(tmp_path / "runs")
    async with app.run_test(size=(120, 40)) as pilot:
        screen = EvalsScreen(run_dir)
        app.push_screen(screen)
        await wait_for(pilot, lambda: len(screen.records) == 2, what="the predictions")

        assert [job.name for job in screen.jobs] == ["finished", "failed"]  # newest first
        summary = text_of(screen.summary)
        assert "FINISHED" in summary and "1.7872" in summary and "3.9404" in summary and "ROUGE-L" in summary
        assert "record 1 of 2" in text_of(screen.position)
        assert "I'm Tuito, [bold]an AI[/bold]." in screen.view.answer("tuned")  # shown as text, not markup
        assert "I am SmolLM" in screen.view.answer("base") and not screen.view.has_class("-stacked")
        assert screen.check_action("stop", ()) is False

        await pilot.press("right")
        assert screen.index == 1 and "我叫Tuito。" in screen.view.answer("tuned")
        await pilot.press("right")  # already the last record
        assert screen.index == 1
        await pilot.press("left")
        assert screen.index == 0

        await pilot.press("down")  # the failed evaluation
        await wait_for(pilot, lambda: "FAILED" in text_of(screen.summary), what="the failed job's summary")
        assert "the evaluation data has problems" in text_of(screen.summary)
        assert "held.jsonl:3: not JSON" in text_of(screen.summary)
        await wait_for(pilot, lambda: screen.records == [], what="no predictions")


async def test_a_running_evaluation_grows_on_screen_and_can_be_stopped(tmp_path: Path, make_app, wait_for) -> None:
    """You should see a running evaluation's new predictions as they are written, stacked at 80 columns."""
    from tuitune.screens.evals import EvalsScreen

    run_dir = tmp_path / "runs" / "demo"
    job_dir = write_job(run_dir, "live", RECORDS[:1], None)
    lock = FolderLock(job_dir)
    assert lock.acquire()  # a live job holds its folder's lock
    try:
        app = make_app(tmp_path / "runs")
        async with app.run_test(size=(80, 24)) as pilot:
            screen = EvalsScreen(run_dir)
            app.push_screen(screen)
            await wait_for(pilot, lambda: len(screen.records) == 1, what="the first prediction")
            assert "RUNNING" in text_of(screen.summary) and screen.check_action("stop", ()) is True
            assert screen.view.has_class("-stacked")

            with open(job_dir / "predictions.jsonl", "a", encoding="utf-8") as file:
                file.write(json.dumps(RECORDS[1], ensure_ascii=False) + "\n")
            await wait_for(pilot, lambda: len(screen.records) == 2, what="the second prediction")
    finally:
        lock.release()
