"""The new-run flow's last step: judge whether the reviewed run fits and loads, ask if not, then launch.

The verdict is :func:`engine.estimate.fit.judge`, the same one ``tuitune estimate``, the Models
screen and ``tuitune train`` use. It reads the model's files, so it runs in a thread worker; a
start pressed before the verdict is in waits for it. The same worker checks the data as
``tuitune data check`` and training do (:func:`engine.data.checks.check_paths`): bad data is
caught here, before a run folder exists, not when the trainer reads it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from textual.screen import Screen

from engine.config import RunConfig
from engine.stages import STAGES
from engine.estimate.fit import Verdict, judge
from engine.machine.gpus import Gpu
from tuitune.dialogs.confirm import ConfirmDialog
from tuitune.messages import RunStarted
from tuitune.widgets.model_memory import devices_line


SHOWN_PROBLEMS = 3
"""Data problems listed on the review step (the count says how many there are)."""


@dataclass(frozen=True)
class Findings:
    """What the review found besides the memory verdict."""

    errors: list[str] = field(default_factory=list)
    """Why the run must not start (data training would refuse)."""
    warnings: list[str] = field(default_factory=list)
    """What the user should know (a cutoff past the model's context)."""
    danger: list[str] = field(default_factory=list)
    """What runs code the user must trust (a python reward): shown in red, but the run may start."""


def review_findings(config: RunConfig) -> Findings:
    """Check ``config``'s data as training will, and its cutoff against the model's context (reads files)."""
    from engine.data.checks import check_paths
    from engine.models.info import ModelError, read_model_info

    errors: list[str] = []
    summary = check_paths(config.data.train, config.data.format, stage=config.stage)
    if summary.errors:
        first = [str(p) for p in summary.problems if p.severity == "error"][:SHOWN_PROBLEMS]
        more = f" (and {summary.errors - len(first)} more: tuitune data check lists them)" \
            if summary.errors > len(first) else ""
        errors.append(f"data: {summary.errors} problem{'s' if summary.errors > 1 else ''} training refuses{more}")
        errors.extend(f"  {line}" for line in first)
    warnings: list[str] = []
    danger: list[str] = []
    if STAGES[config.stage].samples:
        rl_findings(config, errors, warnings, danger, data_ok=not summary.errors)
    try:
        context = read_model_info(config.model.name_or_path).context_length
    except (ModelError, OSError):
        context = None  # the verdict says why the model cannot be read
    if context and config.data.cutoff_len > context:
        warnings.append(f"cutoff {config.data.cutoff_len} is above the model's context of {context} tokens: "
                        f"longer records go where it was never trained")
    return Findings(errors, warnings, danger)


def rl_findings(config: RunConfig, errors: list[str], warnings: list[str], danger: list[str], data_ok: bool) -> None:
    """What an RL run's rewards need: references for exact_match (the default), their files, and trust for code."""
    from engine.data.problems import DataError
    from engine.data.prompts import missing_reward_files, read_prompts, reward_plan

    errors.extend(missing_reward_files(config.rl))
    for n, spec in enumerate(config.rl.rewards):
        if spec.kind == "python":
            danger.append(f"rl.rewards[{n}] runs your Python code: {spec.function} (rl.allow_code: true); "
                          "start only if you trust that file")
    if not data_ok:
        return
    try:
        plan = reward_plan(config.rl, read_prompts(config.data, config.stage), config.data.train)
    except DataError as exc:
        errors.extend(str(p) for p in exc.problems[:SHOWN_PROBLEMS])
        return
    if not config.rl.rewards:
        warnings.append(plan)


class RunStarter:
    """The fit verdict on the latest reviewed config, and the start it guards.

    Workers run on ``screen`` (so its error dialog shows their failures), which gets
    ``RunStarted`` once the run's engine is launched.

    Args:
        screen: The new-run screen.
        show: Called on the UI thread with each verdict, the line naming the GPUs found and the
            review's findings, and with None while a verdict is worked out.
        current: The config on review now (a question answered late must not start an older one).
        place: The runs folder and the run's name to start a config as, asked at launch.
    """

    def __init__(self, screen: Screen, show: Callable[[Verdict | None, str, Findings], None],
                 current: Callable[[], RunConfig | None], place: Callable[[RunConfig], tuple[Path, str]]) -> None:
        self.screen = screen
        self.show = show
        self.current = current
        self.place = place
        self.verdict: Verdict | None = None
        """The verdict on the latest config judged."""
        self.findings = Findings()
        """What the review of the latest config judged found."""
        self.starting = False
        """True from launching until the run is started or fails."""
        self._asked: RunConfig | None = None
        self._start_when_judged = False
        self._gpus: tuple[list[Gpu], str] | None = None

    def check(self, config: RunConfig) -> None:
        """Judge ``config`` in the background unless it is the one judged (or being judged) last."""
        if config != self._asked:
            self._asked = config
            self.show(None, "", Findings())
            self.screen.run_worker(lambda: self._judge(config), thread=True, exclusive=True, group="fit",
                                   exit_on_error=False, description="estimating memory")

    def start(self, config: RunConfig) -> None:
        """Start ``config`` once its verdict is in: refused, asked about, or launched."""
        verdict = self.verdict
        if verdict is None or verdict.config != config:
            self._start_when_judged = True
            self.screen.notify("checking that the run fits first…")
            return
        if verdict.refusal:
            self.screen.notify(verdict.refusal, title="cannot start", severity="error", timeout=10)
            return
        if self.findings.errors:
            self.screen.notify("\n".join(self.findings.errors), title="cannot start", severity="error", timeout=10)
            return
        if not verdict.fits:
            def answered(ok: bool | None) -> None:
                if ok and self.current() == config:
                    self._launch(config)

            self.screen.app.push_screen(ConfirmDialog(verdict.question(), "Start anyway"), answered)
            return
        self._launch(config)

    def _judge(self, config: RunConfig) -> None:
        """Estimate the run's memory and check that its model loads (reads the model's files)."""
        if self._gpus is None:
            from engine.machine import gpus

            self._gpus = gpus.list_gpus()
        found, note = self._gpus
        verdict = judge(config, found)
        self.screen.app.call_from_thread(self._judged, verdict, devices_line(found, note), review_findings(config))

    def _judged(self, verdict: Verdict, devices: str, findings: Findings) -> None:
        """Show a verdict (unless a newer one is on its way); a start that waited for it goes on."""
        if verdict.config != self._asked:
            return
        self.verdict, self.findings = verdict, findings
        self.show(verdict, devices, findings)
        if self._start_when_judged and verdict.config == self.current():
            self._start_when_judged = False
            self.start(verdict.config)

    def _launch(self, config: RunConfig) -> None:
        if not self.starting:
            self.starting = True
            runs_dir, name = self.place(config)
            self.screen.run_worker(lambda: self._start_run(config, runs_dir, name), thread=True, exclusive=True,
                                   group="launch", exit_on_error=False, description="starting the run")

    def _start_run(self, config: RunConfig, runs_dir: Path, name: str) -> None:
        """Make the run folder and start the detached engine."""
        from tuitune.runs import launch

        try:
            run_dir = launch.new_run_dir(runs_dir, name)
            launch.start_run(run_dir, config)
        finally:
            self.starting = False
        self.screen.post_message(RunStarted(run_dir))
