"""What a run looks like, rebuilt from its events. No Textual, no filesystem.

``RunState`` is a plain value. ``apply(state, event)`` returns the state after one more
event and ``fold(state, events)`` after a batch; neither changes the state it is given,
so the dashboard can replay a whole history or add one batch the same way.

Folding never raises on a JSON object: ``events.jsonl`` is a file anyone can edit, and one
line with a field of the wrong type (``"step": "abc"``, ``"type": ["log"]``) must not take
the runs list down. Each event is checked against the field types the engine writes them with
(``engine.protocol.EVENT_FIELDS``) first; a field of the wrong type is dropped (and counted in
``bad_fields``), the rest kept.
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine import protocol as p
from engine.protocol import DOWNLOAD
from engine.units import fmt_transfer

Event = dict[str, Any]
Point = tuple[float, float]

RUNNING, FINISHED, STOPPED, FAILED, LOST = "running", "finished", "stopped", "failed", "lost"
PAUSED = "paused"
LIVE = frozenset({RUNNING, PAUSED})
"""Statuses of a run whose trainer is alive (it can be stopped or killed)."""
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
    stage: str = ""
    """The training stage (sft, dpo, grpo …) from ``run_started``, else config.yaml; empty when unknown."""
    device: str = ""
    """Where the trainer runs (cuda, cpu …)."""
    processes: str = ""
    """``2 processes on GPU 0, 1`` for a run of several processes (see :func:`describe_processes`); empty for one."""
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
    lr_series: tuple[Point, ...] = ()
    """(step, learning rate) of every log event that has one."""
    metric_series: dict[str, tuple[Point, ...]] = field(default_factory=dict)
    """(step, value) of each stage metric logged under ``metrics`` (TRL's names: ``rewards/margins``…)."""
    log_series: dict[str, tuple[Point, ...]] = field(default_factory=dict)
    """(step, value) of the log events' other numbers: ``grad_norm``, ``tokens_per_s`` (a chart can draw them)."""
    resume_steps: tuple[int, ...] = ()
    """Steps where a resumed attempt took over, oldest first (the chart marks them)."""
    checkpoints: tuple[str, ...] = ()
    """Checkpoint paths, relative to the run folder, oldest first."""
    warnings: tuple[str, ...] = ()
    """Warning messages of the latest attempt, oldest first."""
    paused: bool = False
    """Whether the trainer is paused (``paused`` without a later ``continued``)."""
    alerts: tuple[Event, ...] = ()
    """The watchdog's ``alert`` events of the latest attempt, oldest first."""
    samples: Event | None = None
    """The latest ``samples`` event of a run that samples answers: the answers with their rewards."""
    warnings_at_end: int = 0
    """How many warnings there were at the latest terminal event: later ones belong to the next attempt."""
    last_seq: int = 0
    """Highest ``seq`` seen."""
    events_seen: int = field(default=0, compare=False)
    """How many events were folded in."""
    bad_fields: int = field(default=0, compare=False)
    """Fields (and events that are not objects) ignored because their type was wrong."""

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
    if alive is False:
        return LOST
    return PAUSED if state.paused else RUNNING


def apply(state: RunState, event: Event) -> RunState:
    """The state after ``event``; ``state`` itself is left unchanged."""
    return fold(state, (event,))


def fold(state: RunState, events: Iterable[Event]) -> RunState:
    """The state after every event of ``events`` in order; ``state`` itself is left unchanged.

    Never raises: a field of the wrong type is ignored and counted in ``bad_fields``.
    """
    acc = _Acc(state)
    for raw in events:
        event = acc.clean(raw)
        acc.common(event)
        handler = _HANDLERS.get(event.get("type"))
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
        self.lr = list(state.lr_series)
        self.metrics = {name: list(points) for name, points in state.metric_series.items()}
        self.fields = {name: list(points) for name, points in state.log_series.items()}
        self.resumes = list(state.resume_steps)
        self.alerts = list(state.alerts)
        self.checkpoints = list(state.checkpoints)
        self.warnings = list(state.warnings)
        self.count = state.events_seen
        self.bad = state.bad_fields

    def clean(self, event: Any) -> Event:
        """``event`` without its fields of the wrong type (counted); anything but an object reads as ``{}``."""
        if not isinstance(event, dict):
            self.bad += 1
            return {}
        event, wrong = p.checked_fields(event)
        self.bad += len(wrong)
        return event

    def get(self, name: str) -> Any:
        return self.changes.get(name, getattr(self.base, name))

    def set(self, **changes: Any) -> None:
        self.changes.update(changes)

    def common(self, event: Event) -> None:
        self.count += 1
        t = event.get("t")
        if t is not None:
            if self.get("started_t") is None:
                self.set(started_t=float(t))
            self.set(last_t=float(t))
        seq = event.get("seq")
        if seq is not None and seq > self.get("last_seq"):
            self.set(last_seq=seq)

    def build(self) -> RunState:
        return dataclasses.replace(
            self.base,
            **self.changes,
            train_series=tuple(self.train),
            eval_series=tuple(self.eval),
            lr_series=tuple(self.lr),
            metric_series={name: tuple(points) for name, points in self.metrics.items()},
            log_series={name: tuple(points) for name, points in self.fields.items()},
            resume_steps=tuple(self.resumes),
            alerts=tuple(self.alerts),
            checkpoints=tuple(self.checkpoints),
            warnings=tuple(self.warnings),
            events_seen=self.count,
            bad_fields=self.bad,
        )


def _run_started(acc: _Acc, e: Event) -> None:
    after_an_end = acc.get("terminal") is not None
    model = e.get("model") or {}
    data = e.get("data") or {}
    acc.set(
        name=acc.get("name") or e.get("run_name") or "",  # the folder's name: a renamed run keeps its new one
        model=model.get("name_or_path") or acc.get("model"),
        method=e.get("method") or acc.get("method"),
        stage=e.get("stage") or acc.get("stage"),
        device=e.get("device") or "",
        processes=describe_processes(e),
        params_trainable=model.get("params_trainable", acc.get("params_trainable")),
        params_total=model.get("params_total", acc.get("params_total")),
        train_records=data.get("train_records", acc.get("train_records")),
        total_steps=e.get("total_steps", acc.get("total_steps")),
        resumed_from_step=e.get("resumed_from_step"),
        terminal=None,
        phase="training",
        phase_message="",
        paused=False,
    )
    acc.alerts.clear()  # a new attempt: the earlier one's alerts are history
    if after_an_end or e.get("resumed_from_step") is not None:
        # A new attempt logs again from its checkpoint (or from 0 when it found none): its points
        # replace the earlier attempt's after that step. Warnings written since the earlier
        # attempt ended (e.g. about the data) are already the new attempt's own.
        start = e.get("resumed_from_step") or 0
        acc.set(step=start)
        acc.train[:] = [p for p in acc.train if p[0] <= start]
        acc.eval[:] = [p for p in acc.eval if p[0] <= start]
        acc.lr[:] = [p for p in acc.lr if p[0] <= start]
        for points in [*acc.metrics.values(), *acc.fields.values()]:
            points[:] = [p for p in points if p[0] <= start]
        acc.resumes[:] = [s for s in acc.resumes if s < start] + [start]
        del acc.warnings[:acc.get("warnings_at_end")]


def _phase(acc: _Acc, e: Event) -> None:
    acc.set(phase=e.get("name") or "", phase_message=e.get("message") or "")


def _progress(acc: _Acc, e: Event) -> None:
    if e.get("phase") == DOWNLOAD:  # the run's download phase: its bytes, rate and time left are the phase's message
        acc.set(phase_message=describe_download(e))


def describe_download(event: Event) -> str:
    """``1.2 GiB of 3.4 GiB (35%), 12 MiB/s, 2m03s left`` for a download ``progress`` event (of a pull, or of a run's
    download phase: one shape)."""
    done, total = event.get("done"), event.get("total")
    return fmt_transfer(done if isinstance(done, int) else 0, total if isinstance(total, int) else 0,
                        event.get("rate_bytes_per_s"), event.get("eta_s"))


def _step(acc: _Acc, e: Event) -> int:
    """The event's step, or the last one known when it has none."""
    step = e.get("step")
    return acc.get("step") if step is None else step


def _log(acc: _Acc, e: Event) -> None:
    step = _step(acc, e)
    changes = {k: _float(e[k]) for k in ("epoch", "loss", "lr", "grad_norm", "tokens_per_s", "eta_s") if k in e}
    acc.set(step=step, **changes)
    if e.get("total_steps"):
        acc.set(total_steps=e["total_steps"])
    if e.get("loss") is not None:
        acc.train.append((float(step), float(e["loss"])))
    if e.get("lr") is not None:
        acc.lr.append((float(step), float(e["lr"])))
    for name in ("grad_norm", "tokens_per_s"):
        if e.get(name) is not None:
            acc.fields.setdefault(name, []).append((float(step), float(e[name])))
    _metrics(acc, step, e.get("metrics"))


def _between_logs(acc: _Acc, e: Event) -> None:
    """A ``step`` event: where the trainer is between logs (no point for the charts)."""
    acc.set(step=_step(acc, e), **({"eta_s": _float(e["eta_s"])} if "eta_s" in e else {}))
    if e.get("total_steps"):
        acc.set(total_steps=e["total_steps"])


def _metrics(acc: _Acc, step: int, metrics: Any) -> None:
    """Keep the finite numbers of a ``metrics`` object, each under its own name."""
    if not isinstance(metrics, dict):
        return
    for name, value in metrics.items():
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) \
                and name not in p.TRAINER_SUMMARY:  # folders written before the engine left them out
            acc.metrics.setdefault(str(name), []).append((float(step), float(value)))


def _eval(acc: _Acc, e: Event) -> None:
    if e.get("eval_loss") is not None:
        acc.set(eval_loss=float(e["eval_loss"]))
        acc.eval.append((float(_step(acc, e)), float(e["eval_loss"])))


def _checkpoint(acc: _Acc, e: Event) -> None:
    acc.checkpoints.append(e.get("path") or "")


def _system(acc: _Acc, e: Event) -> None:
    acc.set(system=e)


def _warning(acc: _Acc, e: Event) -> None:
    if e.get("message") is not None:
        acc.warnings.append(e["message"])


def _terminal(acc: _Acc, e: Event) -> None:
    acc.set(terminal=e, phase="", eta_s=None, warnings_at_end=len(acc.warnings), paused=False)
    if e.get("step") is not None:
        acc.set(step=e["step"])


def _float(value: int | float | None) -> float | None:
    return None if value is None else float(value)


def _samples(acc: _Acc, e: Event) -> None:
    if e.get("samples"):
        acc.set(samples=e)


def _alert(acc: _Acc, e: Event) -> None:
    if e.get("kind") and e.get("message"):
        acc.alerts.append(e)


_HANDLERS = {
    p.PAUSED: lambda acc, e: acc.set(paused=True),
    p.CONTINUED: lambda acc, e: acc.set(paused=False),
    p.ALERT: _alert,
    p.SAMPLES: _samples,
    p.RUN_STARTED: _run_started,
    p.PHASE: _phase,
    p.PROGRESS: _progress,
    p.LOG: _log,
    p.STEP: _between_logs,
    p.EVAL: _eval,
    p.CHECKPOINT: _checkpoint,
    p.SYSTEM: _system,
    p.WARNING: _warning,
    p.RUN_FINISHED: _terminal,
    p.RUN_STOPPED: _terminal,
    p.RUN_FAILED: _terminal,
}


def describe_processes(started: Event) -> str:
    """``2 processes on GPU 0, 1`` (``… on 2 nodes …``) from a ``run_started``; empty for a single process."""
    world, nodes, gpus = started.get("world_size"), started.get("nnodes"), started.get("gpus")
    if not isinstance(world, int) or world < 2:
        return ""
    where = f" on {nodes} nodes" if isinstance(nodes, int) and nodes > 1 else ""
    cards = (f" on GPU {', '.join(map(str, gpus))}" if isinstance(gpus, list) and gpus
             else " on the CPU" if gpus == [] else "")
    return f"{world} processes{where}{cards}"


def describe_end(event: Event, run_dir: str | os.PathLike[str] | None = None) -> str:
    """One line saying how an attempt ended, for a terminal event; its paths rooted at ``run_dir``
    (absolute) when given ("adapter adapter" says nothing)."""
    def rooted(path: object) -> object:
        return Path(run_dir).absolute() / str(path) if run_dir is not None and path else path

    kind = event["type"]
    if kind == p.RUN_STOPPED and event.get("killed"):
        resume = rooted(event.get("checkpoint_path"))
        when = f"at step {event['step']}" if event.get("step") is not None else "before training started"
        return (f"killed on request {when}; nothing saved"
                + (f", a resume starts from {resume}" if resume else ", no checkpoint to resume from"))
    if kind == p.RUN_STOPPED and event.get("step") is None:
        return "stopped before training started (nothing saved)"
    if kind == p.RUN_STOPPED:
        return f"stopped at step {event.get('step')}; checkpoint {rooted(event.get('checkpoint_path'))}, " \
               f"adapter {rooted(event.get('adapter_path'))}"
    if kind == p.RUN_FINISHED:
        return f"finished at step {event.get('step')}, train loss {event.get('train_loss')}"
    if kind == p.JOB_STOPPED:  # a job's folder (a pull, an evaluation) given to tuitune stop
        return "killed on request" if event.get("killed") else "stopped on request"
    if kind == p.JOB_FINISHED:
        return "finished"
    signal_name = f" ({event['signal']})" if event.get("signal") else ""
    return f"failed{signal_name}: {event.get('cause')}"
