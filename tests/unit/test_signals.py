"""A hang-up ends the app even when its event loop is stuck (as it can be writing to a dead pty)."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

STUCK_APP = """
import sys, threading
from textual.app import App
from tuitune import signals

class Stuck(App):
    def on_mount(self):
        signals.install(self.exit)
        print("ready", flush=True)
        self.set_timer(0.2, lambda: threading.Event().wait())  # blocks the loop for ever

Stuck().run(headless=True)
print("exited cleanly", flush=True)
"""

RESPONSIVE_APP = STUCK_APP.replace("threading.Event().wait()", "None")


def run_and_hang_up(code: str) -> tuple[int, str, float]:
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert child.stdout is not None and child.stdout.readline().strip() == "ready"
    time.sleep(0.5)
    started = time.monotonic()
    child.send_signal(signal.SIGHUP)
    try:
        out, _ = child.communicate(timeout=30)
    finally:
        child.kill()
    return child.returncode, out, time.monotonic() - started


def test_hang_up_ends_a_stuck_app_after_the_grace_period() -> None:
    code, _, took = run_and_hang_up(STUCK_APP)
    assert code == 128 + signal.SIGHUP
    assert took < 15


def test_hang_up_lets_a_responsive_app_exit_in_order() -> None:
    code, out, _ = run_and_hang_up(RESPONSIVE_APP)
    assert code == 0 and "exited cleanly" in out
