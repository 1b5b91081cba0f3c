"""Delivering a notification: ``python -m engine notify FACTS``, started detached by engine.notify.announce.

FACTS is the JSON of one event's facts (engine.notify.announce: run_facts, queue_empty_facts). The settings file's
``notify`` section is read again here, and the webhook and the command go at once, side by side, so one that
hangs does not hold up the other:

* the **webhook** gets the facts as one JSON POST (``run``, ``event``, ``state``, ``step``, ``loss``,
  ``duration_s``, ``text`` …; ``text`` is what Slack-compatible endpoints show, and an ``X-Title`` header names
  the event for ntfy). Each try has a short timeout; a refused, failed or hanging POST is tried again a few
  times, then given up and logged: a webhook never fails a run.
* the **command** runs through the shell with the facts in ``TUITUNE_*`` environment variables
  (``TUITUNE_EVENT``, ``TUITUNE_RUN``, ``TUITUNE_STATE`` …; empty when unknown), its output in the same log.

Everything this says goes to its stdout, appended to the run's engine.log (the queue's queue.log for
``queue_empty``). It imports the standard library and PyYAML only: it starts in a blink.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from typing import Any

from engine.notify.settings import NotifySettings, load_notify

WEBHOOK_TRIES = 3
"""POSTs tried before a webhook is given up."""
WEBHOOK_TIMEOUT_S = 5.0
"""Seconds one POST may take (connecting and the answer)."""
RETRY_WAIT_S = 2.0
"""Seconds before the second try, doubled before each later one."""
COMMAND_TIMEOUT_S = 600.0
"""Seconds the command may run before it is ended (a shutdown command returns at once)."""


def log(message: str) -> None:
    """One line in the log this sender writes to."""
    print(f"[notify {time.strftime('%H:%M:%S')}] {message}", flush=True)


def body(facts: dict[str, Any]) -> bytes:
    """The webhook's JSON body: every fact, ``text`` the human line; a loss that is not a number is null (JSON has
    no NaN)."""
    finite = {key: None if isinstance(value, float) and not math.isfinite(value) else value
              for key, value in facts.items()}
    return json.dumps(finite, allow_nan=False, default=str).encode()


def post(url: str, facts: dict[str, Any], tries: int = WEBHOOK_TRIES, timeout: float = WEBHOOK_TIMEOUT_S) -> bool:
    """POST the facts to ``url``; tried ``tries`` times with a growing wait between. Returns whether it got a 2xx."""
    title = f"tuitune: {facts.get('run') or 'queue'} {facts.get('event')}"
    request = urllib.request.Request(url, data=body(facts), method="POST",
                                     headers={"Content-Type": "application/json", "X-Title": title,
                                              "User-Agent": "tuitune-notify"})
    wait = RETRY_WAIT_S
    for attempt in range(1, tries + 1):
        try:
            with urllib.request.urlopen(request, timeout=timeout) as answer:
                log(f"webhook: {facts.get('event')} sent ({answer.status})")
                return True
        except urllib.error.HTTPError as exc:
            why = f"HTTP {exc.code} {exc.reason}"
        except (urllib.error.URLError, OSError, ValueError) as exc:
            why = str(getattr(exc, "reason", None) or exc)
        log(f"webhook: try {attempt} of {tries} for {facts.get('event')} failed: {why}")
        if attempt < tries:
            time.sleep(wait)
            wait *= 2
    log(f"webhook: {facts.get('event')} not sent after {tries} tries")
    return False


def environment(facts: dict[str, Any]) -> dict[str, str]:
    """Our environment with every fact as ``TUITUNE_<NAME>`` (empty when unknown)."""
    env = dict(os.environ)
    for key, value in facts.items():
        env[f"TUITUNE_{key.upper()}"] = "" if value is None else str(value)
    return env


def run_command(command: str, facts: dict[str, Any], timeout: float = COMMAND_TIMEOUT_S) -> int | None:
    """Run ``command`` through the shell with the facts in its environment; its exit status, None if it was ended
    for running past ``timeout``."""
    child = subprocess.Popen(command, shell=True, env=environment(facts), stdin=subprocess.DEVNULL)
    try:
        code = child.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        child.kill()
        child.wait()
        log(f"command for {facts.get('event')} ended after {timeout:.0f} s: {command}")
        return None
    log(f"command for {facts.get('event')} exited with {code}: {command}")
    return code


def send(facts: dict[str, Any], settings: NotifySettings) -> None:
    """Deliver the facts to the webhook and the command the settings name, side by side; returns when both are done."""
    if not settings.wants(str(facts.get("event"))):
        return
    jobs = [threading.Thread(target=post, args=(settings.webhook, facts))] if settings.webhook else []
    jobs += [threading.Thread(target=run_command, args=(settings.command, facts))] if settings.command else []
    for job in jobs:
        job.start()
    for job in jobs:
        job.join()


def main(argv: list[str]) -> int:
    """``python -m engine notify FACTS``: send one event's facts where the settings file says."""
    if len(argv) != 1:
        print("usage: python -m engine notify FACTS_JSON", file=sys.stderr)
        return 2
    try:
        facts = json.loads(argv[0])
    except ValueError as exc:
        log(f"not the facts of an event: {exc}")
        return 2
    settings, problems = load_notify()
    for problem in problems:
        log(f"settings: {problem}")
    send(facts if isinstance(facts, dict) else {}, settings)
    return 0
