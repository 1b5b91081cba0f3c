"""The run's health, watched from its events: what the best training monitors alert on.

Two watch each attempt, each for what it alone can see. The trainer's event writer
(:class:`engine.recipes.attempt.Events`) feeds every event it writes to a :class:`Watchdog` and writes the
``alert`` events that event gives rise to right after it (a loss that is not a number or spikes, exploding
gradients, answers that all score alike, GPU memory or temperature, host memory), so they always come
before the attempt's terminal event. The supervisor feeds the same events to its own Watchdog, read
from the file, only to ask :meth:`Watchdog.stalled` on a timer: a stall is the absence of events,
which a trainer that hangs (a stuck collective, a stopped process) cannot report itself. Standard
library only, below both layers so both may import it.
"""

from __future__ import annotations

import math
import statistics
from collections import deque
from dataclasses import dataclass
from typing import Any

from engine import protocol as p
from engine.stages import STAGES

WINDOW = 20
"""Recent steps a loss or gradient norm is compared with."""
LEAST_HISTORY = 5
"""Steps seen before a spike can be told from the first noisy steps."""
SPIKE_FACTOR = 2.0
"""A loss above this many times the recent median is a spike."""
GRAD_FACTOR = 10.0
"""A gradient norm above this many times the recent median is an explosion."""
STALL_FACTOR = 10.0
"""No step for this many times the usual step time is a stall…"""
STALL_FLOOR_S = 120.0
"""…and never less than this (``train.stall_after_s``), so a slow checkpoint save is not one."""
GPU_MEMORY_SHARE = 0.95
GPU_TEMPERATURE_C = 85
HOST_MEMORY_SHARE = 0.95
REPEAT_STEPS = 50
"""An alert of a kind already raised is raised again only this many steps later (or once cleared)."""
STALL = "stall"
"""The kind of alert only the supervisor raises: the trainer cannot report its own silence."""
NO_SIGNAL_LOGS = 3
"""Logged steps in a row in which every sampled answer of every prompt scored alike (TRL's
``frac_reward_zero_std`` 1) before the run is told it learns nothing: its advantages are all zero."""


@dataclass(frozen=True)
class Alert:
    """One finding: what, at which step, and what to do about it."""

    kind: str
    message: str
    action: str
    step: int | None
    severity: str = "warning"

    def fields(self) -> dict[str, Any]:
        """The ``alert`` event's fields."""
        return {"kind": self.kind, "message": self.message, "action": self.action, "step": self.step,
                "severity": self.severity}


class Watchdog:
    """Alerts for one attempt of a run, from its events in order.

    Args:
        stall_after_s: Least seconds without a step before a stall (``train.stall_after_s``).
    """

    def __init__(self, stall_after_s: float = STALL_FLOOR_S) -> None:
        self.stall_after_s = stall_after_s
        self.losses: deque[float] = deque(maxlen=WINDOW)
        self.grad_norms: deque[float] = deque(maxlen=WINDOW)
        self.step_times: deque[float] = deque(maxlen=WINDOW)
        """Seconds per step between recent logs."""
        self.last_log: tuple[float, int] | None = None
        """(time, step) of the latest log event."""
        self.flat_logs = 0
        """Logs in a row whose sampled answers all scored alike within each prompt."""
        self.raised: dict[str, int] = {}
        """Step at which each kind was last raised (-1: before any step)."""
        self.paused = False
        self.ended = False
        self.spikes = True
        """Whether a loss far above its recent median means something (not for the RL stages)."""

    def feed(self, event: dict[str, Any]) -> list[Alert]:
        """The alerts ``event`` gives rise to."""
        kind = event.get("type")
        if kind == p.RUN_STARTED:
            self.__init__(self.stall_after_s)  # a resumed attempt starts its own history
            # An RL loss is no error to minimise: it sits near 0 and changes sign as the policy moves, so a
            # ratio to its recent median says nothing (the reward chart is what to watch there).
            stage = event.get("stage")  # anything, in a file anyone can edit
            row = STAGES.get(stage) if isinstance(stage, str) else None
            self.spikes = row is None or row.loss_spikes
            return []
        if kind in p.TERMINAL_TYPES:
            self.ended = True
        elif kind == p.PAUSED:
            self.paused = True
        elif kind == p.CONTINUED:
            self.paused = False
            if self.last_log is not None:  # the pause is not a slow step
                self.last_log = (float(event.get("t") or self.last_log[0]), self.last_log[1])
        elif kind == p.LOG:
            return self._log(event)
        elif kind == p.SYSTEM:
            return self._system(event)
        return []

    def stalled(self, now: float) -> Alert | None:
        """A stall alert when no step came for far longer than usual (None while paused or ended)."""
        if self.paused or self.ended or self.last_log is None or not self.step_times:
            return None
        usual = statistics.median(self.step_times)
        limit = max(STALL_FACTOR * usual, self.stall_after_s)
        waited = now - self.last_log[0]
        if waited < limit:
            self.raised.pop(STALL, None)
            return None
        step = self.last_log[1]
        return self._raise(Alert(
            STALL, f"no training step for {waited:.0f} s after step {step} (a step usually takes {usual:.1f} s)",
            "look at engine.log for what the trainer is doing; stop it (s) if it hangs: the checkpoint is kept",
            step, "critical"))

    def _log(self, event: dict[str, Any]) -> list[Alert]:
        step = event.get("step") if isinstance(event.get("step"), int) else None
        t = event.get("t")
        if isinstance(t, (int, float)) and step is not None:
            if self.last_log is not None and step > self.last_log[1]:
                self.step_times.append((t - self.last_log[0]) / (step - self.last_log[1]))
            self.last_log = (float(t), step)
            self.raised.pop(STALL, None)
        alerts: list[Alert] = []
        if "loss" in event:
            loss = event["loss"]
            if not isinstance(loss, (int, float)) or not math.isfinite(loss):  # NaN and inf are written as null
                alerts.append(Alert("nan", f"the loss is not a number at step {step}",
                                    "lower train.learning_rate, check the data for empty or broken records; "
                                    "the last checkpoint before this step is good", step, "critical"))
            else:
                if self.spikes and len(self.losses) >= LEAST_HISTORY:
                    median = statistics.median(self.losses)
                    if median > 0 and loss > SPIKE_FACTOR * median:
                        alerts.append(Alert("spike", f"loss {loss:.4g} at step {step} is {loss / median:.1f}x the "
                                            f"recent median {median:.4g}",
                                            "a one-off is often one odd batch; if it keeps rising, lower "
                                            "train.learning_rate or raise warmup", step))
                self.losses.append(float(loss))
        flat = (event.get("metrics") or {}).get("frac_reward_zero_std")
        if isinstance(flat, (int, float)):
            self.flat_logs = self.flat_logs + 1 if flat >= 1 else 0
            if self.flat_logs >= NO_SIGNAL_LOGS:
                alerts.append(Alert("no_signal", f"nothing is being learned: for {self.flat_logs} logged steps every "
                                    "answer of every prompt scored alike (frac_reward_zero_std 1), so each answer's "
                                    "advantage, and the loss, is 0",
                                    "check that the rewards tell answers apart (rl.rewards, and the prompts' reference "
                                    "answers for exact_match); more answers per prompt (rl.num_generations) or a "
                                    "higher rl.temperature make differing answers likelier", step, "critical"))
        norm = event.get("grad_norm")
        if norm is not None:
            if not isinstance(norm, (int, float)) or not math.isfinite(norm):
                alerts.append(Alert("grad_norm", f"the gradient norm is not finite at step {step}",
                                    "lower train.learning_rate; gradients are clipped at train.max_grad_norm",
                                    step, "critical"))
            else:
                if len(self.grad_norms) >= LEAST_HISTORY:
                    median = statistics.median(self.grad_norms)
                    if median > 0 and norm > GRAD_FACTOR * median:
                        alerts.append(Alert("grad_norm", f"gradient norm {norm:.4g} at step {step} is "
                                            f"{norm / median:.0f}x the recent median {median:.4g}",
                                            "lower train.learning_rate or train.max_grad_norm", step))
                self.grad_norms.append(float(norm))
        return [alert for alert in (self._raise(a) for a in alerts) if alert is not None]

    def _system(self, event: dict[str, Any]) -> list[Alert]:
        step = self.last_log[1] if self.last_log else None
        found: dict[str, Alert] = {}
        for gpu in event.get("gpus") or []:
            used, total, temp = gpu.get("mem_used_bytes"), gpu.get("mem_total_bytes"), gpu.get("temp_c")
            name = f"GPU {gpu.get('index', '?')}"
            if isinstance(used, (int, float)) and isinstance(total, (int, float)) and total > 0 \
                    and used / total >= GPU_MEMORY_SHARE:
                found["gpu_memory"] = Alert("gpu_memory", f"{name} memory is {100 * used / total:.0f}% full",
                                            "an out-of-memory stop is near: lower train.batch_size or data.cutoff_len, "
                                            "or turn on train.gradient_checkpointing (then resume)", step)
            if isinstance(temp, (int, float)) and temp >= GPU_TEMPERATURE_C:
                found["gpu_temperature"] = Alert("gpu_temperature", f"{name} is at {temp:.0f} °C",
                                                 "check the server's cooling; the GPU will slow itself down", step)
        used, total = event.get("host_mem_used_bytes"), event.get("host_mem_total_bytes")
        if isinstance(used, (int, float)) and isinstance(total, (int, float)) and total > 0 \
                and used / total >= HOST_MEMORY_SHARE:
            found["host_memory"] = Alert("host_memory", f"host memory is {100 * used / total:.0f}% used",
                                         "the kernel may kill the trainer: lower data.num_workers or batch size, "
                                         "or stop other processes", step)
        for kind in ("gpu_memory", "gpu_temperature", "host_memory"):
            if kind not in found:
                self.raised.pop(kind, None)  # cleared: raise it again if it comes back
        return [alert for alert in (self._raise(a) for a in found.values()) if alert is not None]

    def _raise(self, alert: Alert) -> Alert | None:
        """``alert``, unless its kind was raised fewer than REPEAT_STEPS steps ago."""
        step = alert.step if alert.step is not None else -1
        last = self.raised.get(alert.kind)
        if last is not None and step - last < REPEAT_STEPS:
            return None
        self.raised[alert.kind] = step
        return alert
