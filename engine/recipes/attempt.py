"""One training attempt's shared state, light enough to exist before torch is imported: the events it writes
(:class:`Events`, which only the ranks that write a folder write, with the alerts the watchdog finds in them) and
the requests its signal handlers raise (:class:`RunFlags`, answered at the next step end). The trainer process
(engine.recipes.runner) makes both first, so a config or model that cannot be used fails in a second, before the ML
stack is loaded.
"""

from __future__ import annotations

import os
import threading
from typing import Any

from engine.health.watchdog import Alert, Watchdog
from engine.machine.place import place
from engine.protocol import (
    ALERT,
    PHASE,
    RUN_FAILED,
    RUN_FINISHED,
    RUN_STARTED,
    RUN_STOPPED,
    SYSTEM,
    TERMINAL_TYPES,
    WARNING,
    EventWriter,
)

NODE_TYPES = frozenset({PHASE, WARNING, SYSTEM, RUN_STARTED, RUN_FINISHED, RUN_STOPPED, RUN_FAILED})
"""What a node other than 0 writes into its own run folder: how far it got, its own GPUs and host, and how it
ended; never the training's figures or files (those are rank 0's, on node 0)."""


class Events:
    """A thread-safe ``emit`` over an EventWriter that only rank 0 actually writes.

    The system sampler thread and the training thread both emit; the lock keeps ``seq``
    strictly increasing and lines whole. Other ranks get a sink that drops everything, so
    the recipe can call ``emit`` without asking who it is. On a node other than 0, its first
    process keeps that node's folder readable: its phases, ``run_started`` and its end, marked
    with ``node_rank`` and with no adapter or checkpoint (those are written on node 0).

    Every event written is fed to the attempt's :class:`~engine.health.watchdog.Watchdog`, and the alerts it gives
    rise to are written right after it, under the same lock: an alert always precedes the attempt's terminal event.
    """

    def __init__(self, run_dir: str | os.PathLike[str]) -> None:
        self.lock = threading.Lock()
        here = place()
        self.node = here.node_rank
        self._writer = EventWriter(run_dir) if here.is_rank_zero or here.is_node_writer else None
        self.ended = False
        """Whether the attempt's terminal event is written: a ``system`` sample after it is dropped (the sampler
        runs for the whole process, and an ended run's panel is history)."""
        self.watchdog = Watchdog()
        """This attempt's watchdog (a process is one attempt: it starts fresh)."""
        self.stop_on: frozenset[str] = frozenset()
        """Alert kinds that stop the run (``train.stop_on``), once the config is read (:meth:`stop_when`)."""
        self._flags: RunFlags | None = None

    def stop_when(self, stop_on: frozenset[str], flags: RunFlags) -> None:
        """Stop the attempt as ``tuitune stop`` does (``flags``' stop request: saving first) when an alert of a kind
        in ``stop_on`` (``train.stop_on``) is raised."""
        self.stop_on, self._flags = stop_on, flags

    def emit(self, type: str, **fields: Any) -> dict[str, Any] | None:
        """Write one event (rank 0 only); returns it as written, or None elsewhere."""
        if self._writer is None:
            return None
        if self.node > 0:
            if type not in NODE_TYPES:
                return None
            fields = {**fields, "node_rank": self.node}
            for key in ("adapter_path", "checkpoint_path"):
                if key in fields:
                    fields[key] = None
        with self.lock:
            if self.ended and type == SYSTEM:
                return None
            self.ended = self.ended or type in TERMINAL_TYPES
            event = self._writer.emit(type, **fields)
            for alert in self.watchdog.feed(event):
                self._alert(alert)
            return event

    def _alert(self, alert: Alert) -> None:
        """Write ``alert`` (the lock held); ask for a stop when ``train.stop_on`` names its kind."""
        flags = self._flags
        stops = alert.kind in self.stop_on and flags is not None and not flags.stop
        extra = {"node_rank": self.node} if self.node > 0 else {}
        self._writer.emit(ALERT, **alert.fields(), stops=stops, **extra)
        if stops:
            flags.request_stop()

    def close(self) -> None:
        """Close the file."""
        if self._writer is not None:
            with self.lock:
                self._writer.close()


class StopBeforeTraining(Exception):
    """A stop request arrived while the model or data was still loading."""


class RunFlags:
    """Requests raised by signal handlers and read by the callback at the next step end.

    Attributes:
        stop: SIGTERM/SIGINT arrived: checkpoint, then end training (run_stopped).
        save: SIGUSR1 arrived: write a checkpoint now and go on.
    """

    def __init__(self) -> None:
        self.stop = False
        self.save = False
        self.loading = True
        """Until training starts, a stop ends the attempt at once (nothing is lost yet, and loading a large
        model takes minutes): the signal handler raises :class:`StopBeforeTraining` where the main thread is."""

    def agree(self) -> tuple[bool, bool]:
        """The requests to act on at this step end: with several processes, those any rank has (an
        all-reduce of the two flags, which every rank makes at every step end, so none waits on
        another); alone, our own. A request that arrives during the all-reduce counts at the next step."""
        from engine.recipes.distributed import agree

        stop, save = agree(self.stop, self.save)
        self.stop = self.stop or stop  # every rank ends with the same stop, for run_stopped vs run_finished
        return stop, save

    def request_stop(self, signum: int | None = None, frame: object = None) -> None:
        """Signal handler: stop at the next step end, or at once while loading. Called from another thread
        (without a signal number) it only asks: the main thread answers at its next check."""
        self.stop = True
        if self.loading and signum is not None:
            self.loading = False  # once: a second stop must not raise out of the answer to the first
            raise StopBeforeTraining()

    def request_save(self, *_: object) -> None:
        """Signal handler: checkpoint at the next step end."""
        self.save = True

    def check_stop(self) -> None:
        """Between the slow steps before training: end now if a stop was asked for.

        Raises:
            StopBeforeTraining: a stop request is pending.
        """
        if self.stop:
            raise StopBeforeTraining()
