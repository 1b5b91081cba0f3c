"""Word on the user's own terminal when the run an attached app shows ends: the bell, and a desktop notification
escape that common terminals show through SSH and tmux passthrough (OSC 9: iTerm2, WezTerm, Ghostty, kitty, Windows
Terminal; OSC 777: foot, VTE terminals, urxvt, WezTerm). Which, the settings file's ``notify.terminal`` says
(engine.notify.settings.TERMINAL_MODES)."""

from __future__ import annotations

import re

from engine.notify.settings import TERMINAL_MODES

BELL = "\a"


def notice_escape(mode: str, title: str, body: str) -> str:
    """What to write to the terminal for ``mode`` (of TERMINAL_MODES): the bell, after it an OSC 9 or OSC 777
    notification of ``title`` and ``body`` (control characters and ``;`` in OSC 777's title taken out, so a run's
    name cannot end the sequence early); nothing for ``off``."""
    if mode not in TERMINAL_MODES or mode == "off":
        return ""
    title, body = _clean(title), _clean(body)
    if mode == "osc9":
        return BELL + f"\x1b]9;{title}: {body}\x07"
    if mode == "osc777":
        return BELL + f"\x1b]777;notify;{title.replace(';', ',')};{body}\x07"
    return BELL


def _clean(text: str) -> str:
    return re.sub(r"[\x00-\x1f\x7f-\x9f]", " ", text)[:200]
