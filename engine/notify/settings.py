"""The ``notify`` section of the settings file: where word of a run's end goes. Standard library and PyYAML only,
so the supervisor, the queue's runner and the app read it alike (tuitune.settings checks it with the rest).

```yaml
notify:
  webhook: https://ntfy.sh/my-topic   # a JSON POST per event (ntfy, Slack-compatible endpoints, your own)
  command: sudo shutdown -h +1         # run with the event's facts in TUITUNE_* environment variables
  events: [queue_empty]                # which events (default: finished, failed, stopped, queue_empty)
  terminal: osc9                       # what an attached app sends when its run ends: osc9, osc777, bell, off
```
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from engine.files import read_regular
from engine.paths import SETTINGS_LIMIT, settings_file

EVENTS = ("finished", "failed", "stopped", "alert", "queue_empty")
"""Every event a notification can be sent for: a run's end (three kinds), a watchdog alert, an empty queue."""
DEFAULT_EVENTS = ("finished", "failed", "stopped", "queue_empty")
"""Events sent when ``events`` is not set: alerts can come often, so they are asked for by name."""
TERMINAL_MODES = ("osc9", "osc777", "bell", "off")
"""What an attached app sends its terminal when the run it shows ends: the bell and the OSC 9 desktop notification
(iTerm2, WezTerm, Ghostty, kitty…), the bell and OSC 777 (foot, VTE, urxvt, WezTerm…), the bell alone, or nothing."""


@dataclass(frozen=True)
class NotifySettings:
    """The ``notify`` section of the settings file (nothing set: nothing is sent, the app rings its bell)."""

    webhook: str | None = None
    """An http(s) URL that gets a JSON POST per event (engine.notify.send.body)."""
    command: str | None = None
    """A shell command run per event, the event's facts in ``TUITUNE_*`` environment variables."""
    events: frozenset[str] = field(default_factory=lambda: frozenset(DEFAULT_EVENTS))
    """The events sent (of EVENTS)."""
    terminal: str = "osc9"
    """What an attached app sends when its run ends (of TERMINAL_MODES)."""

    def wants(self, event: str) -> bool:
        """Whether ``event`` is sent somewhere (it is chosen, and a webhook or command is set)."""
        return event in self.events and bool(self.webhook or self.command)


def parse_notify(value: Any, where: str = "notify") -> tuple[NotifySettings, list[str]]:
    """The ``notify`` section from the settings file's value, and what was wrong in it (``where`` names it in each
    problem). A wrong key or value is left at its default, never guessed."""
    if not isinstance(value, dict):
        return NotifySettings(), [f"{where}: expected a mapping (webhook, command, events, terminal)"]
    found: dict[str, Any] = {}
    problems: list[str] = []
    for key, item in value.items():
        if key is True:  # YAML 1.1 reads an unquoted `on:` key as the boolean true
            problems.append(f"{where}: `on:` reads as true in YAML; the events are listed under `events:`")
        elif key == "webhook" and isinstance(item, str) and item.startswith(("http://", "https://")):
            found["webhook"] = item
        elif key == "command" and isinstance(item, str) and item.strip():
            found["command"] = item
        elif key == "events" and isinstance(item, (list, str)):
            named = [item] if isinstance(item, str) else item
            unknown = [str(name) for name in named if name not in EVENTS]
            if unknown:
                problems.append(f"{where}.events: {', '.join(unknown)} unknown; events are {', '.join(EVENTS)}")
            found["events"] = frozenset(name for name in named if name in EVENTS)
        elif key == "terminal" and item in TERMINAL_MODES:
            found["terminal"] = item
        else:
            problems.append(f"{where}.{key}: {_expected(key)}")
    return NotifySettings(**found), problems


def _expected(key: Any) -> str:
    wants = {"webhook": "an http:// or https:// URL", "command": "a shell command",
             "events": f"a list of {', '.join(EVENTS)}", "terminal": f"one of {', '.join(TERMINAL_MODES)}"}
    return f"must be {wants[key]}" if key in wants else "unknown key; keys are webhook, command, events, terminal"


def load_notify(path: Path | None = None) -> tuple[NotifySettings, list[str]]:
    """The ``notify`` section of the settings file (``path``, default engine.paths.settings_file) and its
    problems; a missing file or section is the defaults, an unreadable file is the defaults and why."""
    path = path or settings_file()
    try:
        data = yaml.safe_load(read_regular(path, SETTINGS_LIMIT).decode("utf-8")) or {}
    except FileNotFoundError:
        return NotifySettings(), []
    except (OSError, UnicodeDecodeError, yaml.YAMLError, RecursionError) as exc:
        return NotifySettings(), [f"{path}: {exc}"]
    if not isinstance(data, dict) or "notify" not in data:
        return NotifySettings(), []
    return parse_notify(data["notify"], f"{path}: notify")
