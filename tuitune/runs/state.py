"""What a run looks like, rebuilt from its events. No Textual, no filesystem.

``RunState`` is a plain value. ``apply(state, event)`` returns the state after one more
event and ``fold(state, events)`` after a batch; neither changes the state it is given,
so the dashboard can replay a whole history or add one batch the same way.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Iterable

from engine import protocol as p

Event = dict[str, Any]
Point = tuple[float, float]

RUNNING, FINISHED, STOPPED, FAILED, LOST = "running", "finished", "stopped", "failed", "lost"
TERMINAL_STATUS = {p.RUN_FINISHED: FINISHED, p.RUN_STOPPED: STOPPED, p.RUN_FAILED: FAILED}


@dataclass(frozen=True)
class RunState:
    """Everything the app shows about one run, as of its last event read."""

    name: str = ""
    """Run name from ``run_started`` (the folder name until then)."""
    model: str = ""
    """Base model as configured (``model.name_or_path``)."""
    method: str = ""
    """lora, dora or full."""
    device: str = ""
    """Where the trainer runs (cuda, cpu …)."""
    params_trainable: int | None = None
    """Trainable parameters."""
    params_total: int | None = None
    """All parameters of the model."""
    train_records: int | None = None
    """Training records after loading."""
    step: int = 0
    """Last optimizer step reported."""
    total_steps: int | None = None
    """Optimizer steps the run will take."""
    epoch: float | None = None
    """Fractional epoch at the last log."""
    loss: float | None = None
    """Last training loss."""
    eval_loss: float | None = None
    """Last evaluation loss."""
    lr: float | None = None
    """Last learning rate."""
    grad_norm: float | None = None
    """Last gradient norm."""
    tokens_per_s: float | None = None
    """Last training throughput."""
    eta_s: float | None = None
    """Seconds left, as the engine estimated at the last log."""
    started_t: float | None = None
    """Unix time of the first ``run_started`` (or first event)."""
    last_t: float | None = None
    """Unix time of the last event read."""
    phase: str = ""
    """Slow stage the engine is in (loading_model, training, saving …)."""
    phase_message: str = ""
    """What the engine said about that stage."""
    resumed_from_step: int | None = None
    """Step the latest resume started from; None for a fresh run."""
    terminal: Event | None = None
    """The finished/stopped/failed event ending the latest attempt, if any."""
    system: Event | None = None
    """The last ``system`` event (GPUs, process memory and CPU, host memory)."""
    train_series: tuple[Point, ...] = ()
    """(step, loss) of every log event."""
    eval_series: tuple[Point, ...] = ()
    """(step, eval_loss) of every eval event."""
    checkpoints: tuple[str, ...] = ()
    """Checkpoint paths, relative to the run folder, oldest first."""
    warnings: tuple[str, ...] = ()
    """Warning messages of the latest attempt, oldest first."""
    warnings_at_end: int = 0
    """How many warnings there were at the latest terminal event: later ones belong to the next attempt."""
    last_seq: int = 0
    """Highest ``seq`` seen."""
    events_seen: int = field(default=0, compare=False)
    """How many events were folded in."""

    @property
    def duration_s(self) -> float | None:
        """Seconds from the start to the last event (from event times, never the clock)."""
        if self.started_t is None or self.last_t is None:
            return None
        return max(0.0, self.last_t - self.started_t)

    @property
    def progress(self) -> float | None:
        """Share of steps done, 0 to 1, when the total is known."""
        if not self.total_steps:
            return None
        return min(1.0, self.step / self.total_steps)


def status(state: RunState, alive: bool | None) -> str:
    """running, finished, stopped, failed or lost, from the events and whether the engine lives.

    Args:
        state: The run's state.
        alive: Whether its supervisor is alive; None when unknown (counted as alive).
    """
    if state.terminal is not None:
        return TERMINAL_STATUS[state.terminal["type"]]
    return LOST if alive is False else RUNNING


def apply(state: RunState, event: Event) -> RunState:
    """The state after ``event``; ``state`` itself is left unchanged."""
    return fold(state, (event,))


def fold(state: RunState, events: Iterable[Event]) -> RunState:
    """The state after every event of ``events`` in order; ``state`` itself is left unchanged."""
    acc = _Acc(state)
    for event in events:
        handler = _HANDLERS.get(event.get("type"))
        acc.common(event)
        if handler is not None:
            handler(acc, event)
    return acc.build()


class _Acc:
    """A mutable copy of a RunState used while folding one batch (lists appended in place)."""

    def __init__(self, state: RunState) -> None:
        self.base = state
        self.changes: dict[str, Any] = {}
        self.train = list(state.train_series)
        self.eval = list(state.eval_series)
        self.checkpoints = list(state.checkpoints)
        self.warnings = list(state.warnings)
        self.count = state.events_seen

    def get(self, name: str) -> Any:
        return self.changes.get(name, getattr(self.base, name))

    def set(self, **changes: Any) -> None:
        self.changes.update(changes)

    def common(self, event: Event) -> None:
        self.count += 1
        t = event.get("t")
        if isinstance(t, (int, float)):
            if self.get("started_t") is None:
                self.set(started_t=float(t))
            self.set(last_t=float(t))
        seq = event.get("seq")
        if isinstance(seq, int) and seq > self.get("last_seq"):
            self.set(last_seq=seq)

    def build(self) -> RunState:
        return dataclasses.replace(
            self.base,
            **self.changes,
            train_series=tuple(self.train),
            eval_series=tuple(self.eval),
            checkpoints=tuple(self.checkpoints),
            warnings=tuple(self.warnings),
            events_seen=self.count,
        )


def _run_started(acc: _Acc, e: Event) -> None:
    after_an_end = acc.get("terminal") is not None
    model = e.get("model") or {}
    data = e.get("data") or {}
    acc.set(
        name=e.get("run_name") or acc.get("name"),
        model=model.get("name_or_path") or acc.get("model"),
        method=e.get("method") or acc.get("method"),
        device=e.get("device") or "",
        params_trainable=model.get("params_trainable"),
        params_total=model.get("params_total"),
        train_records=data.get("train_records"),
        total_steps=e.get("total_steps"),
        resumed_from_step=e.get("resumed_from_step"),
        terminal=None,
        phase="training",
        phase_message="",
    )
    if after_an_end or e.get("resumed_from_step") is not None:
        # A new attempt logs again from its checkpoint (or from 0 when it found none): its points
        # replace the earlier attempt's after that step. Warnings written since the earlier
        # attempt ended (e.g. about the data) are already the new attempt's own.
        start = e.get("resumed_from_step") or 0
        acc.set(step=start)
        acc.train[:] = [p for p in acc.train if p[0] <= start]
        acc.eval[:] = [p for p in acc.eval if p[0] <= start]
        del acc.warnings[:acc.get("warnings_at_end")]


def _phase(acc: _Acc, e: Event) -> None:
    acc.set(phase=e.get("name", ""), phase_message=e.get("message", ""))


def _log(acc: _Acc, e: Event) -> None:
    step = e.get("step", acc.get("step"))
    changes = {k: e[k] for k in ("epoch", "loss", "lr", "grad_norm", "tokens_per_s", "eta_s") if k in e}
    acc.set(step=step, **changes)
    if e.get("total_steps"):
        acc.set(total_steps=e["total_steps"])
    if isinstance(e.get("loss"), (int, float)):
        acc.train.append((float(step), float(e["loss"])))


def _eval(acc: _Acc, e: Event) -> None:
    if isinstance(e.get("eval_loss"), (int, float)):
        acc.set(eval_loss=e["eval_loss"])
        acc.eval.append((float(e.get("step", acc.get("step"))), float(e["eval_loss"])))


def _checkpoint(acc: _Acc, e: Event) -> None:
    acc.checkpoints.append(str(e.get("path", "")))


def _system(acc: _Acc, e: Event) -> None:
    acc.set(system=e)


def _warning(acc: _Acc, e: Event) -> None:
    acc.warnings.append(str(e.get("message", "")))


def _terminal(acc: _Acc, e: Event) -> None:
    acc.set(terminal=e, phase="", eta_s=None, warnings_at_end=len(acc.warnings))
    if isinstance(e.get("step"), int):
        acc.set(step=e["step"])


_HANDLERS = {
    p.RUN_STARTED: _run_started,
    p.PHASE: _phase,
    p.LOG: _log,
    p.EVAL: _eval,
    p.CHECKPOINT: _checkpoint,
    p.SYSTEM: _system,
    p.WARNING: _warning,
    p.RUN_FINISHED: _terminal,
    p.RUN_STOPPED: _terminal,
    p.RUN_FAILED: _terminal,
}
