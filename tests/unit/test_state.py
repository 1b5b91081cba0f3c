"""Folding events into RunState: pure, order-preserving, resume-aware, status from events + liveness."""

from __future__ import annotations

from pathlib import Path

from engine.protocol import read_events
from tuitune.runs.state import FAILED, FINISHED, LOST, RUNNING, STOPPED, RunState, apply, fold, status

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "runs"


def ev(seq: int, type: str, **fields) -> dict:
    return {"v": 1, "seq": seq, "t": 100.0 + seq, "type": type, **fields}


STARTED = ev(1, "run_started", run_name="r", model={"name_or_path": "m"}, method="lora", total_steps=10,
             resumed_from_step=None)


def test_apply_is_pure_and_folds_logs_into_series() -> None:
    empty = RunState()
    s1 = apply(empty, STARTED)
    s2 = apply(s1, ev(2, "log", step=5, loss=2.5, lr=1e-4, grad_norm=0.7, tokens_per_s=100.0, epoch=0.5, eta_s=9.0))
    assert empty == RunState() and s1.train_series == ()
    assert (s2.name, s2.model, s2.method, s2.total_steps) == ("r", "m", "lora", 10)
    assert (s2.step, s2.loss, s2.lr, s2.grad_norm, s2.epoch) == (5, 2.5, 1e-4, 0.7, 0.5)
    assert s2.train_series == ((5.0, 2.5),)
    assert s2.progress == 0.5
    assert s2.duration_s == 1.0 and s2.last_seq == 2


def test_fold_equals_applying_one_by_one_on_every_fixture() -> None:
    for name in ("running", "finished", "stopped", "failed"):
        events = read_events(FIXTURES / name)
        one_by_one = RunState()
        for event in events:
            one_by_one = apply(one_by_one, event)
        assert fold(RunState(), events) == one_by_one, name


def test_terminal_events_set_status_and_resume_clears_it() -> None:
    s = fold(RunState(), [STARTED, ev(2, "log", step=3, loss=1.0)])
    assert status(s, alive=True) == RUNNING
    assert status(s, alive=False) == LOST
    failed = apply(s, ev(3, "run_failed", cause="boom", exit_code=1, hint="h", log_tail=["x"]))
    assert status(failed, alive=False) == FAILED and failed.terminal["cause"] == "boom"
    resumed = apply(failed, ev(4, "run_started", run_name="r", model={"name_or_path": "m"}, method="lora",
                               total_steps=10, resumed_from_step=3))
    assert resumed.terminal is None and resumed.step == 3 and resumed.resumed_from_step == 3
    assert status(resumed, alive=True) == RUNNING
    done = apply(resumed, ev(5, "run_finished", step=10, train_loss=0.9, adapter_path="adapter"))
    assert status(done, alive=False) == FINISHED and done.step == 10
    stopped = apply(resumed, ev(5, "run_stopped", step=6, checkpoint_path="checkpoints/checkpoint-6"))
    assert status(stopped, alive=True) == STOPPED


def test_eval_checkpoint_system_warning_and_unknown_events() -> None:
    s = fold(RunState(), [
        STARTED,
        ev(2, "eval", step=4, eval_loss=1.5),
        ev(3, "checkpoint", step=4, path="checkpoints/checkpoint-4"),
        ev(4, "system", gpus=[], gpu_note="no NVIDIA driver", rss_bytes=1, cpu_pct=50.0),
        ev(5, "warning", message="3 records truncated", code="truncated"),
        ev(6, "some_future_type", anything=1),
        ev(7, "phase", name="saving", message="saving the adapter"),
    ])
    assert s.eval_series == ((4.0, 1.5),) and s.eval_loss == 1.5
    assert s.checkpoints == ("checkpoints/checkpoint-4",)
    assert s.system["gpu_note"] == "no NVIDIA driver"
    assert s.warnings == ("3 records truncated",)
    assert (s.phase, s.phase_message) == ("saving", "saving the adapter")
    assert s.events_seen == 7 and s.last_seq == 7


def test_fixture_states_match_their_names() -> None:
    for name, expected in (("finished", FINISHED), ("stopped", STOPPED), ("failed", FAILED), ("running", LOST)):
        state = fold(RunState(), read_events(FIXTURES / name))
        assert status(state, alive=False) == expected, name


def test_a_resume_replaces_the_earlier_attempt_after_its_checkpoint() -> None:
    """Steps logged after the checkpoint by the stopped attempt give way to the resumed attempt's."""
    state = fold(RunState(), [
        STARTED,
        ev(2, "log", step=5, loss=2.0), ev(3, "eval", step=5, eval_loss=2.1),
        ev(4, "log", step=10, loss=1.5), ev(5, "eval", step=10, eval_loss=1.6),
        ev(6, "warning", message="stop requested", code="stop"),
        ev(7, "run_stopped", step=12),
        ev(8, "warning", message="3 records truncated", code="data"),
        ev(9, "run_started", run_name="r", model={"name_or_path": "m"}, method="lora", total_steps=20,
           resumed_from_step=5),
        ev(10, "log", step=10, loss=1.4),
    ])
    assert state.train_series == ((5.0, 2.0), (10.0, 1.4))
    assert state.eval_series == ((5.0, 2.1),)
    assert state.warnings == ("3 records truncated",)


def test_a_resume_without_a_checkpoint_starts_the_picture_again_at_step_0() -> None:
    state = fold(RunState(), [
        STARTED, ev(2, "log", step=50, loss=1.0), ev(3, "run_failed", cause="boom"),
        ev(4, "warning", message="no checkpoint to resume from", code="no_checkpoint"),
        ev(5, "run_started", run_name="r", total_steps=60, resumed_from_step=None),
    ])
    assert (state.step, state.train_series, state.terminal) == (0, (), None)
    assert state.warnings == ("no checkpoint to resume from",)
