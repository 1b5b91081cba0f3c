"""A run's figures, its curves against tokens and time, and the config keys that differ (tuitune.runs.figures)."""

from __future__ import annotations

import json
from pathlib import Path

from tuitune.runs.figures import config_diff, figures_of, load_run, logged_metrics, timeline, with_defaults
from tuitune.runs.state import RunState, fold

T0 = 1_700_000_000.0


def events_of_a_resumed_run() -> list[dict]:
    """Logs every 10 steps at 100 tokens/s, an eval at 20, a stop at 30, a resume from 20 and a finish at 40."""
    out = [{"type": "run_started", "t": T0, "run_name": "r", "total_steps": 40, "resumed_from_step": None}]
    for step in (10, 20, 30):
        out.append({"type": "log", "t": T0 + step, "step": step, "loss": 3.0 - step / 20, "lr": 1e-4,
                    "tokens_per_s": 100.0, "elapsed_s": float(step), "metrics": {"rewards/margins": step / 10}})
    out.append({"type": "eval", "t": T0 + 21, "step": 20, "eval_loss": 2.5})
    out.append({"type": "run_stopped", "t": T0 + 31, "step": 30})
    out.append({"type": "run_started", "t": T0 + 100, "run_name": "r", "total_steps": 40, "resumed_from_step": 20})
    for step in (30, 40):
        out.append({"type": "log", "t": T0 + 100 + step - 20, "step": step, "loss": 1.0 + 36 / step, "lr": 1e-4,
                    "tokens_per_s": 50.0, "elapsed_s": float(step - 20), "metrics": {"rewards/margins": 9.0}})
    out.append({"type": "eval", "t": T0 + 121, "step": 40, "eval_loss": 2.25})
    out.append({"type": "run_finished", "t": T0 + 122, "step": 40, "peak_memory_bytes": 3 << 30,
                "peak_memory_kind": "cuda"})
    return out


def test_figures_are_the_best_and_last_of_the_attempts_that_count() -> None:
    figures = figures_of(fold(RunState(), events_of_a_resumed_run()))
    # The first attempt's step 30 (loss 1.5) was replaced by the resumed attempt's (2.2).
    assert (figures.final_loss, figures.best_loss, figures.best_loss_step) == (1.9, 1.9, 40)
    assert (figures.best_eval_loss, figures.best_eval_step) == (2.25, 40)
    assert (figures.tokens_per_s, figures.peak_memory_bytes, figures.peak_memory_kind) == (50.0, 3 << 30, "cuda")
    assert figures.duration_s == 122.0
    assert figures.stage_metrics == {"rewards/margins": 9.0}


def test_figures_of_a_run_that_logged_nothing_are_unknown() -> None:
    figures = figures_of(RunState())
    assert (figures.final_loss, figures.best_eval_loss, figures.peak_memory_bytes, figures.duration_s) == (
        None, None, None, None)


def test_the_timeline_counts_tokens_per_attempt_and_seconds_from_the_start() -> None:
    line = timeline(events_of_a_resumed_run())
    # 100 tokens/s for 10 s per log up to step 20; the resumed attempt restarts its elapsed_s and goes on from 2000.
    assert line.tokens == {10.0: 1000.0, 20.0: 2000.0, 30.0: 2500.0, 40.0: 3000.0}
    assert line.seconds == {10.0: 10.0, 20.0: 20.0, 30.0: 110.0, 40.0: 120.0}


def test_curves_follow_the_chosen_axis(tmp_path: Path) -> None:
    (tmp_path / "events.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events_of_a_resumed_run()))
    run = load_run(tmp_path)
    assert run.curve("eval_loss", "step") == [(20.0, 2.5), (40.0, 2.25)]
    assert run.curve("eval_loss", "tokens") == [(2000.0, 2.5), (3000.0, 2.25)]
    assert run.curve("loss", "time")[-1] == (120.0, 1.9)
    assert logged_metrics(run.summary.state) == ["loss", "eval_loss", "lr", "rewards/margins"]


def test_config_diff_keeps_only_the_keys_that_differ() -> None:
    a = {"model": {"name_or_path": "m"}, "train": {"lr": 1e-4, "max_steps": 20}, "data": {"train": ["a.jsonl"]}}
    b = {"model": {"name_or_path": "m"}, "train": {"lr": 2e-4, "max_steps": 20}, "data": {"train": ["a.jsonl"]}}
    c = {"model": {"name_or_path": "m"}, "train": {"lr": 1e-4, "max_steps": 20}, "data": {"train": ["b.jsonl"]},
         "rl": {"beta": 0.1}}
    assert config_diff([a, b]) == [("train.lr", [1e-4, 2e-4])]
    assert config_diff([a, b, c]) == [("train.lr", [1e-4, 2e-4, 1e-4]),
                                      ("data.train", [["a.jsonl"]] * 2 + [["b.jsonl"]]),
                                      ("rl.beta", [None, None, 0.1])]
    assert config_diff([a, a]) == []


def test_a_key_unset_or_missing_is_no_difference_and_a_key_an_older_run_lacks_is_its_default() -> None:
    from engine.config import RunConfig

    assert config_diff([{"rl": {"beta": None}}, {}]) == []
    older = {"train": {"max_steps": 20}}  # written before the other keys existed
    newer = RunConfig().model_dump(mode="json")
    newer["train"]["max_steps"] = 30
    assert config_diff([with_defaults(older), with_defaults(newer)]) == [("train.max_steps", [20, 30])]
