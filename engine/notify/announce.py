"""Saying that a run ended: what a notification says (its facts), and starting the sender that delivers it.

The sending (retries, timeouts, the command) is ``python -m engine notify FACTS`` (engine.notify.send),
started detached by :func:`announce`: a webhook that hangs or a slow command never holds up the run that ended,
its supervisor, or the queue. Standard library and PyYAML only.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from engine.notify.settings import load_notify
from engine.protocol import ALERT, LOG, RUN_FAILED, RUN_FINISHED, RUN_STARTED, RUN_STOPPED
from engine.units import fmt_duration

EVENT_OF = {RUN_FINISHED: "finished", RUN_FAILED: "failed", RUN_STOPPED: "stopped", ALERT: "alert"}
"""The notification event of each run event that has one."""
FACTS = ("run", "event", "state", "step", "loss", "duration_s", "text", "run_dir", "runs_dir", "cause")
"""What every notification says (null where it does not apply): the webhook's JSON fields, and the command's
environment as ``TUITUNE_RUN``, ``TUITUNE_EVENT`` …"""


def run_facts(folder: Path, event: dict[str, Any], attempt: list[dict[str, Any]]) -> dict[str, Any]:
    """What a notification says of ``event`` (a terminal event or an alert) of the run in ``folder``, given the
    events of its attempt so far: the last logged step and loss (the terminal event's when none was logged), how long
    the attempt lasted, the cause of a failure, the alert's kind and message."""
    kind = EVENT_OF[event["type"]]
    logs = [e for e in attempt if e.get("type") == LOG]
    step = event.get("step") if isinstance(event.get("step"), int) else (logs[-1].get("step") if logs else None)
    loss = logs[-1].get("loss") if logs else event.get("train_loss")
    first = attempt[0].get("t") if attempt else None
    started = next((e.get("t") for e in attempt if e.get("type") == RUN_STARTED), first)
    duration = round(event["t"] - started, 1) if isinstance(started, (int, float)) and "t" in event else None
    facts: dict[str, Any] = dict.fromkeys(FACTS)
    facts.update(run=folder.name, event=kind, state="running" if kind == "alert" else kind, step=step, loss=loss,
                 duration_s=duration, run_dir=str(folder), runs_dir=str(folder.parent),
                 cause=event.get("cause") if kind == "failed" else None)
    if kind == "alert":
        facts.update(alert=event.get("kind"), message=event.get("message"))
        facts["text"] = f"tuitune: {folder.name}: alert {event.get('kind')} at step {step}: {event.get('message')}"
        return facts
    said = f"tuitune: {folder.name} {kind} " + (f"at step {step}" if step is not None else "before the first step")
    said += f", loss {loss:.4g}" if isinstance(loss, (int, float)) else ""
    said += f" after {fmt_duration(duration)}" if duration is not None else ""
    facts["text"] = said + (f": {facts['cause']}" if facts["cause"] else "")
    return facts


def queue_empty_facts(runs_dir: Path, started: int, duration_s: float) -> dict[str, Any]:
    """What the queue's runner says when its queue is empty and the runs it started have ended: the machine can be
    given back."""
    facts: dict[str, Any] = dict.fromkeys(FACTS)
    facts.update(event="queue_empty", runs_dir=str(runs_dir), duration_s=round(duration_s, 1), started=started,
                 text=f"tuitune: the queue of {runs_dir} is empty: {started} run(s) started in "
                      f"{fmt_duration(duration_s)} have ended")
    return facts


def announce(facts: dict[str, Any], log_path: Path) -> subprocess.Popen[bytes] | None:
    """Send ``facts`` (run_facts or queue_empty_facts) where the settings say, from a detached
    ``python -m engine notify`` whose output is appended to ``log_path``; returns the sender, or None when the
    settings send nothing for this event.

    The sender runs in its own session with stdin from /dev/null and holds no lock, so the caller goes on at once
    and may exit; it reads the settings again itself.
    """
    settings, _ = load_notify()
    if not settings.wants(str(facts.get("event"))):
        return None
    env = dict(os.environ)
    package_root = str(Path(__file__).resolve().parents[2])  # `python -m engine` from a source checkout too
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH")) if p)
    with open(log_path, "ab") as log:
        return subprocess.Popen([sys.executable, "-m", "engine", "notify", json.dumps(facts)], env=env,
                                stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True,
                                close_fds=True)
