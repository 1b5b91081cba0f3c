"""The bridge from transformers' Trainer to the run folder: events, and stop/save requests.

``EventsCallback`` turns the Trainer's hooks into ``run_started``, ``log``, ``step``, ``eval`` and
``checkpoint`` events. ``RunFlags`` (engine.recipes.attempt) holds what signal handlers ask for
(stop, save now); the callback answers at the next optimizer step end, the only place where stopping leaves
a consistent checkpoint behind. With several processes the ranks first agree on the requests
(one small all-reduce per step), so all stop or save at the same step, whichever of them was
told first, and none waits in a collective for a rank that has left.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from transformers import TrainerCallback, TrainerControl, TrainerState, TrainingArguments

from engine.checkpoints import mark_complete
from engine.protocol import (
    CHECKPOINT,
    EVAL,
    LOG,
    RUN_STARTED,
    STEP,
    TRAINER_SUMMARY,
)
from engine.recipes.attempt import Events, RunFlags
from engine.recipes.saving import check_room, folder_bytes

STEP_EVERY_S = 1.0
"""Least seconds between two ``step`` events: a slow step is said as it ends, while a run of fast steps writes
at most one line a second (about 100 bytes), however many steps it takes."""


class EventsCallback(TrainerCallback):
    """Writes the run's training events and answers stop/save requests.

    Args:
        events: Where events go.
        run_dir: The run folder (checkpoint paths are reported relative to it).
        flags: Stop/save requests from signal handlers.
        started: Fields of ``run_started`` known before training (model facts, data counts...);
            ``total_steps`` and ``resumed_from_step`` are added from the Trainer's state.
        resumed: Whether this ``train()`` call resumes from a checkpoint.

    Throughput comes from the Trainer's ``state.num_input_tokens_seen`` (non-padding tokens,
    counted as each micro-batch is trained), measured over the window since the last log.
    """

    def __init__(self, events: Events, run_dir: Path, flags: RunFlags, started: dict[str, Any],
                 resumed: bool) -> None:
        self.events = events
        self.run_dir = Path(run_dir)
        self.flags = flags
        self.started = started
        self.resumed = resumed
        self.last_checkpoint: str | None = None
        self.checkpoint_bytes = 0
        """Size of the last checkpoint written (or, before the first, an estimate): what the next needs."""
        self._t0 = self._t_last = self._t_step = time.time()
        self._step0 = 0
        self._tokens_last = 0

    def on_train_begin(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any):
        """Emit ``run_started`` now that total steps and the resumed step are known."""
        self._t0 = self._t_last = self._t_step = time.time()
        self._step0 = state.global_step
        self._tokens_last = state.num_input_tokens_seen
        model = kwargs.get("model")
        if model is not None:  # trained weights plus AdamW's two moments, before a real size is known
            self.checkpoint_bytes = 3 * sum(p.numel() * p.element_size() for p in model.parameters() if p.requires_grad)
        if state.is_local_process_zero:  # rank 0 for the run; the first process of another node for its folder
            self.events.emit(RUN_STARTED, **self.started, total_steps=state.max_steps,
                             resumed_from_step=state.global_step if self.resumed else None, pid=os.getpid())

    def on_step_end(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any):
        """Turn pending stop/save requests into Trainer control flags; log the last step too."""
        stop, save = self.flags.agree()
        if save:
            self.flags.save = False
            control.should_save = True
        if stop:
            control.should_save = True
            control.should_training_stop = True
        if control.should_training_stop or state.global_step >= state.max_steps:
            control.should_log = True  # the chart gets its final point even off the logging grid
        now = time.time()
        if control.should_log:
            self._t_step = now  # the log event says the step
        elif state.is_world_process_zero and now - self._t_step >= STEP_EVERY_S:
            self._t_step = now
            elapsed, eta = self._timing(state, now)
            self.events.emit(STEP, step=state.global_step, total_steps=state.max_steps, elapsed_s=elapsed, eta_s=eta)
        if control.should_save and state.is_world_process_zero:
            # A checkpoint that fills the disk would leave a torn one and no room to say why.
            check_room(Path(args.output_dir), self.checkpoint_bytes, "the checkpoint")
        return control

    def on_log(self, args: TrainingArguments, state: TrainerState, control: TrainerControl,
               logs: dict[str, float] | None = None, **kwargs: Any):
        """Emit ``log`` for training logs and ``eval`` for evaluation results."""
        logs = logs or {}
        if not state.is_world_process_zero:
            return
        if "loss" in logs:
            self.events.emit(LOG, **self._log_fields(state, logs))
        if "eval_loss" in logs:
            metrics = {key.removeprefix("eval_"): value for key, value in logs.items()
                       if key.startswith("eval_") and key not in EVAL_FIELDS and _is_number(value)}
            self.events.emit(EVAL, step=state.global_step, epoch=_round(state.epoch), eval_loss=logs["eval_loss"],
                             **({"metrics": metrics} if metrics else {}))

    def on_save(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any):
        """Mark the folder the Trainer just wrote as complete, and emit ``checkpoint``."""
        folder = Path(args.output_dir) / f"checkpoint-{state.global_step}"
        if state.is_world_process_zero:
            mark_complete(folder, state.global_step)
            self.checkpoint_bytes = folder_bytes(folder)
        try:
            self.last_checkpoint = str(folder.relative_to(self.run_dir))
        except ValueError:
            self.last_checkpoint = str(folder)
        if state.is_world_process_zero:
            self.events.emit(CHECKPOINT, step=state.global_step, path=self.last_checkpoint)

    def _log_fields(self, state: TrainerState, logs: dict[str, float]) -> dict[str, Any]:
        """One ``log`` event: loss and lr from the Trainer, throughput and ETA measured here."""
        now = time.time()
        tokens = state.num_input_tokens_seen
        window = max(now - self._t_last, 1e-9)
        tokens_per_s = (tokens - self._tokens_last) / window
        self._t_last, self._tokens_last = now, tokens
        elapsed, eta = self._timing(state, now)
        return {
            "step": state.global_step, "total_steps": state.max_steps, "epoch": _round(state.epoch),
            "loss": logs["loss"], "lr": logs.get("learning_rate"), "grad_norm": logs.get("grad_norm"),
            "tokens_per_s": round(tokens_per_s, 1), "elapsed_s": elapsed, "eta_s": eta,
            **({"metrics": metrics} if (metrics := stage_metrics(logs)) else {}),
        }


    def _timing(self, state: TrainerState, now: float) -> tuple[float, float | None]:
        """Seconds since this attempt began, and the seconds left at its pace so far (None before a step)."""
        elapsed = now - self._t0
        done = state.global_step - self._step0
        eta = (state.max_steps - state.global_step) * elapsed / done if done > 0 else None
        return round(elapsed, 2), round(eta, 1) if eta is not None else None


LOG_FIELDS = frozenset({"loss", "learning_rate", "grad_norm", "epoch", "num_input_tokens_seen"})
"""Trainer log keys that ``log`` events carry as fields of their own; every other number goes under ``metrics``."""
EVAL_FIELDS = frozenset({"eval_loss", "eval_runtime", "eval_samples_per_second", "eval_steps_per_second"})


def stage_metrics(logs: dict[str, Any]) -> dict[str, float]:
    """The stage's own metrics in a Trainer log, under TRL's names (``rewards/margins``, ``kl``, …)."""
    return {key: value for key, value in logs.items()
            if key not in LOG_FIELDS and key not in TRAINER_SUMMARY and _is_number(value)}


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _round(value: float | None, digits: int = 4) -> float | None:
    return None if value is None else round(float(value), digits)
