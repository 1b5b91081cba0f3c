"""The chat-template doctor on a run's config, before the run exists. No Textual here.

The doctor needs the model's tokenizer (the ML stack), so it runs as ``python -m engine data`` on up to
:data:`SAMPLE` records of the run's data with the run's model, stage, cutoff and system prompt: the same
report ``tuitune data check --model`` prints, of which only the ``verdict`` events are kept. ``tuitune
train`` refuses a run with an error verdict unless ``--force``; the new-run review shows the errors and asks
before it starts such a run.
"""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass, field

from engine.config import RunConfig
from engine.data.report_events import FAILED, VERDICT
from engine.data.verdicts import Verdict
from engine.services import jsonlines

SAMPLE = 64
"""Records of the run's data the doctor renders (the report reads no further)."""
TIMEOUT_S = 300
"""Loading a large tokenizer can take a while; longer than this, the check is given up (and said so)."""


@dataclass
class TemplateCheck:
    """What the doctor said about a run's chat template, or why it could not say."""

    verdicts: list[Verdict] = field(default_factory=list)
    not_checked: str = ""
    """Why there are no verdicts (the tokenizer could not be loaded offline, the check took too long); empty when
    the check ran."""

    @property
    def errors(self) -> list[Verdict]:
        """The verdicts that stop a run unless forced."""
        return [v for v in self.verdicts if v.is_error]

    @property
    def warnings(self) -> list[Verdict]:
        """The verdicts worth knowing that do not stop a run."""
        return [v for v in self.verdicts if v.severity == "warning"]


def judged(config: RunConfig) -> tuple:
    """What of ``config`` the doctor's verdicts depend on: a new check is needed only when this changes."""
    data = config.data
    return (config.model.name_or_path, tuple(data.train), data.format, config.stage, data.cutoff_len,
            data.system_prompt)


def doctor_command(config: RunConfig) -> list[str]:
    """``python -m engine data`` over the first records of the run's data, tokenised as the run will."""
    data = config.data
    command = [sys.executable, "-m", "engine", "data", *data.train, "--format", data.format, "--stage", config.stage,
               "--model", config.model.name_or_path, "--cutoff", str(data.cutoff_len), "--limit", str(SAMPLE)]
    return command + (["--system-prompt", data.system_prompt] if data.system_prompt else [])


def check_template(config: RunConfig) -> TemplateCheck:
    """The doctor's verdicts on ``config``'s model and data (see the module docstring)."""
    try:
        done = subprocess.run(doctor_command(config), stdin=subprocess.DEVNULL, capture_output=True, text=True,
                              encoding="utf-8", errors="surrogateescape", timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        return TemplateCheck(not_checked=f"the tokenizer took over {TIMEOUT_S} s to load")
    found = TemplateCheck()
    for message in jsonlines.read_messages(done.stdout.splitlines()):
        if isinstance(message, jsonlines.BadLine):
            continue
        if message.get("type") == VERDICT:
            found.verdicts.append(Verdict.from_dict(message))
        elif message.get("type") == FAILED:
            found.not_checked = message.get("message", "")
    return found
