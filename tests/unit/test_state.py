"""Folding events into RunState: pure, order-preserving, resume-aware, status from events + liveness."""

from __future__ import annotations

import math
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


# What a hostile or corrupted events.jsonl line can hold in any one field.
BAD_VALUES = [None, "abc", "", ["log"], {"a": 1}, [], True, -1, 1.5, 10**400, float("nan"), float("inf")]
FIELDS = {
    "run_started": ["run_name", "model", "method", "data", "total_steps", "device", "resumed_from_step"],
    "phase": ["name", "message"],
    "log": ["step", "total_steps", "epoch", "loss", "lr", "grad_norm", "tokens_per_s", "eta_s"],
    "eval": ["step", "epoch", "eval_loss"],
    "checkpoint": ["step", "path"],
    "system": ["gpus", "gpu_note", "rss_bytes", "cpu_pct"],
    "warning": ["message", "code"],
    "run_finished": ["step", "train_loss", "adapter_path"],
    "run_stopped": ["step", "checkpoint_path", "adapter_path"],
    "run_failed": ["cause", "exit_code", "signal", "hint", "log_tail", "errors"],
}
GOOD = {
    "run_started": dict(run_name="r", model={"name_or_path": "m", "params_total": 10, "params_trainable": 1},
                        method="lora", data={"train_records": 3}, total_steps=10, device="cpu",
                        resumed_from_step=None),
    "phase": dict(name="saving", message="saving the adapter"),
    "log": dict(step=5, total_steps=10, epoch=0.5, loss=2.5, lr=1e-4, grad_norm=0.7, tokens_per_s=9.0, eta_s=3.0),
    "eval": dict(step=5, epoch=0.5, eval_loss=2.0),
    "checkpoint": dict(step=5, path="checkpoints/checkpoint-5"),
    "system": dict(gpus=[{"index": 0, "name": "g", "mem_used_bytes": 1, "mem_total_bytes": 2}], gpu_note=None,
                   rss_bytes=1, cpu_pct=5.0),
    "warning": dict(message="m", code="data"),
    "run_finished": dict(step=10, train_loss=1.0, adapter_path="adapter"),
    "run_stopped": dict(step=6, checkpoint_path="checkpoints/checkpoint-6", adapter_path="adapter"),
    "run_failed": dict(cause="boom", exit_code=1, signal=None, hint=None, log_tail=["x"], errors=["e"]),
}
NESTED = [
    ("run_started", "model", {"name_or_path": 5, "params_total": "many", "params_trainable": [1]}),
    ("run_started", "data", {"train_records": "3"}),
    ("system", "gpus", [5, "gpu", None, {"index": "0", "name": 3, "mem_used_bytes": "1", "mem_total_bytes": [2],
                                          "util_pct": {}, "temp_c": "hot"}]),
    ("run_failed", "log_tail", ["ok", 5, None, ["x"]]),
    ("run_failed", "errors", [{"e": 1}, "fine"]),
]


def malformed_events() -> list[dict]:
    """Every event type with each of its fields (and the common ones) given each bad value, one at a time."""
    events: list[dict] = [{}, {"type": ["log"]}, {"type": {"a": 1}}, {"type": None}, {"type": 5},
                          {"type": "log", "seq": "x", "t": "yesterday", "v": []}]
    for kind, fields in FIELDS.items():
        for name in [*fields, "t", "seq", "v"]:
            for value in BAD_VALUES:
                events.append({"v": 1, "seq": 3, "t": 103.0, "type": kind, **GOOD[kind], name: value})
    for kind, name, value in NESTED:
        events.append({"v": 1, "seq": 3, "t": 103.0, "type": kind, **GOOD[kind], name: value})
    return events


def assert_well_typed(state: RunState) -> None:
    """Every field of the state has the type the app's widgets expect."""
    for name in ("name", "model", "method", "device", "phase", "phase_message"):
        assert isinstance(getattr(state, name), str), name
    assert type(state.step) is int and type(state.last_seq) is int and type(state.warnings_at_end) is int
    for name in ("params_trainable", "params_total", "train_records", "total_steps", "resumed_from_step"):
        assert getattr(state, name) is None or type(getattr(state, name)) is int, name
    for name in ("epoch", "loss", "eval_loss", "lr", "grad_norm", "tokens_per_s", "eta_s", "started_t", "last_t"):
        assert getattr(state, name) is None or type(getattr(state, name)) is float, name
    assert all(math.isfinite(x) for x in (state.started_t, state.last_t, state.eta_s) if x is not None)
    for point in state.train_series + state.eval_series:
        assert all(type(x) is float for x in point)
    assert all(isinstance(x, str) for x in state.checkpoints + state.warnings)
    if state.terminal is not None:
        assert all(isinstance(line, str) for key in ("log_tail", "errors") for line in state.terminal.get(key) or [])
        assert all(state.terminal.get(k) is None or isinstance(state.terminal[k], str)
                   for k in ("cause", "hint", "signal", "adapter_path", "checkpoint_path"))
    if state.system is not None:
        for gpu in state.system.get("gpus") or []:
            assert isinstance(gpu, dict)
            assert all(gpu.get(k) is None or type(gpu[k]) in (int, float)
                       for k in ("index", "mem_used_bytes", "mem_total_bytes", "util_pct", "temp_c"))
            assert gpu.get("name") is None or isinstance(gpu["name"], str)


def test_fold_never_raises_on_a_field_of_the_wrong_type() -> None:
    """One corrupted line used to raise inside fold, so the runs list became an error dialog forever."""
    events = malformed_events()
    assert len(events) > 500
    for event in events:
        for before in (RunState(), fold(RunState(), [STARTED, ev(2, "log", step=3, loss=1.0)])):
            state = apply(before, event)
            assert_well_typed(state)
    assert_well_typed(fold(RunState(), events))


def test_a_field_of_the_wrong_type_is_ignored_and_the_rest_kept() -> None:
    state = fold(RunState(), [
        STARTED,
        ev(2, "log", step="abc", loss="x", lr=0.1, grad_norm=0.5),
        ev(3, "log", step=4, loss=1.5),
        {"type": ["log"], "seq": 4, "t": 104.0},
        ev(5, "run_started", run_name=7, model=5, method="dora", total_steps="ten", resumed_from_step="x"),
        ev(6, "eval", step=4, eval_loss="low"),
        ev(7, "warning", message=["not", "text"], code="data"),
        ev(8, "run_failed", cause="boom", exit_code="one", log_tail="not a list", errors=["a", 2]),
    ])
    assert (state.lr, state.grad_norm) == (0.1, 0.5)
    assert state.train_series == ((4.0, 1.5),)
    assert (state.name, state.model, state.method, state.total_steps) == ("r", "m", "dora", 10)
    assert state.eval_series == () and state.warnings == ()
    assert state.terminal is not None and state.terminal["cause"] == "boom"
    assert "exit_code" not in state.terminal and "log_tail" not in state.terminal
    assert state.terminal["errors"] == ["a"]
    assert state.last_seq == 8 and state.events_seen == 8
    assert state.bad_fields == 12


def test_describe_end_roots_paths_at_the_run_folder() -> None:
    """'checkpoint checkpoints/checkpoint-40, adapter adapter' said nothing about where they are."""
    from pathlib import Path

    from tuitune.runs.state import describe_end

    end = {"type": "run_stopped", "step": 40, "checkpoint_path": "checkpoints/checkpoint-40", "adapter_path": "adapter"}
    assert describe_end(end, Path("/runs/r1")) == \
        "stopped at step 40; checkpoint /runs/r1/checkpoints/checkpoint-40, adapter /runs/r1/adapter"
    assert describe_end(end) == "stopped at step 40; checkpoint checkpoints/checkpoint-40, adapter adapter"


def test_a_kill_before_the_first_step_says_so_not_step_none() -> None:
    from tuitune.runs.state import describe_end

    killed = {"type": "run_stopped", "killed": True, "step": None, "checkpoint_path": None}
    assert describe_end(killed) == \
        "killed on request before training started; nothing saved, no checkpoint to resume from"


def test_a_run_of_several_processes_says_how_many_where_in_the_dashboard_title() -> None:
    from tuitune.screens.train import title_text

    alone = apply(RunState(), STARTED)
    two_gpus = apply(RunState(), {**STARTED, "world_size": 2, "nnodes": 1, "gpus": [0, 1]})
    two_nodes = apply(RunState(), {**STARTED, "world_size": 4, "nnodes": 2, "gpus": []})
    assert alone.processes == "" and "processes" not in title_text(alone, RUNNING).plain
    assert two_gpus.processes == "2 processes on GPU 0, 1"
    assert two_nodes.processes == "4 processes on 2 nodes on the CPU"
    assert "m · sft · lora · 2 processes on GPU 0, 1" in title_text(two_gpus, RUNNING).plain
