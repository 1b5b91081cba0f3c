"""SIGTERM and SIGHUP end the app cleanly, so the terminal is restored; training goes on.

After a hang-up (SSH dropped, tmux pane closed) the terminal is gone, and Textual's shutdown
can block for ever writing its last escape codes into the dead pty's output queue. Nothing the
app holds needs saving (it only reads run folders; its own writes are atomic), so a hang-up
gives the orderly exit a moment and then ends the process outright.
"""

from __future__ import annotations

import asyncio
import os
import signal
import threading
from collections.abc import Callable

HANGUP_GRACE_S = 2.0
"""Seconds an orderly exit gets after SIGHUP before the process ends regardless."""


def install(exit_app: Callable[[], object]) -> None:
    """Route SIGTERM to ``exit_app``, and SIGHUP to ``exit_app`` plus a hard-exit deadline.

    SIGHUP gets a plain Python handler rather than an event-loop one: when the pty dies the
    loop itself may already be stuck in a write, and only a Python handler still runs then.
    """
    loop = asyncio.get_running_loop()
    try:
        loop.add_signal_handler(signal.SIGTERM, exit_app)
        signal.signal(signal.SIGHUP, lambda signum, frame: _hang_up(loop, exit_app))
    except (NotImplementedError, RuntimeError, ValueError, AttributeError):
        pass  # not the main thread, or no such signals here


def remove() -> None:
    """Give SIGTERM and SIGHUP back to their default handling."""
    try:
        asyncio.get_running_loop().remove_signal_handler(signal.SIGTERM)
        signal.signal(signal.SIGHUP, signal.SIG_DFL)
    except (NotImplementedError, RuntimeError, ValueError, AttributeError):
        pass


def _hang_up(loop: asyncio.AbstractEventLoop, exit_app: Callable[[], object]) -> None:
    deadline = threading.Timer(HANGUP_GRACE_S, os._exit, args=(128 + signal.SIGHUP,))
    deadline.daemon = True  # an exit that does complete must not wait for it
    deadline.start()
    loop.call_soon_threadsafe(exit_app)
