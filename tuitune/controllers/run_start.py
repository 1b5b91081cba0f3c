"""The new-run flow's last step: check the reviewed run as every door does, ask if it will not fit, then launch.

The check is :func:`engine.estimate.prestart.check_run`, the same one ``tuitune train`` and ``tuitune
estimate`` make: the fit verdict (as the Models screen shows it), and the refusals, warnings and dangers
of the config (the data checked as training will check it, an RL run's rewards, the model's context,
trackers, devices). It reads the model's files and every data record, so it runs in a thread worker; a
start pressed before the check is in waits for it. Bad data is caught here, before a run folder exists,
not when the trainer reads it.

The review also asks the chat-template doctor (:mod:`tuitune.runs.doctor`, as ``tuitune train`` does) in a
worker of its own: it loads the model's tokenizer in an engine process, so it runs again only when what it
judges changes (model, data, format, stage, cutoff, system prompt), not for every knob. Its errors are shown
in red on the review, and a start asks about them ("Start anyway", as ``tuitune train --force``).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from textual.screen import Screen

from engine.config import RunConfig
from engine.estimate.fit import Verdict
from engine.estimate.prestart import Prestart, check_run
from engine.machine.gpus import Gpu
from tuitune.dialogs.confirm import ConfirmDialog
from tuitune.messages import RunStarted
from tuitune.runs import doctor
from tuitune.runs.doctor import TemplateCheck
from tuitune.widgets.model_memory import devices_line


class RunStarter:
    """The fit verdict on the latest reviewed config, and the start it guards.

    Workers run on ``screen`` (so its error dialog shows their failures), which gets
    ``RunStarted`` once the run's engine is launched.

    Args:
        screen: The new-run screen.
        show: Called on the UI thread with each check, the line naming the GPUs found and the check
            again (its verdict first), and with None while a check is worked out.
        current: The config on review now (a question answered late must not start an older one).
        place: The runs folder and the run's name to start a config as, asked at launch.
    """

    def __init__(self, screen: Screen, show: Callable[[Verdict | None, str, Prestart | None], None],
                 current: Callable[[], RunConfig | None], place: Callable[[RunConfig], tuple[Path, str]],
                 show_template: Callable[[TemplateCheck | None], None] = lambda _: None) -> None:
        self.screen = screen
        self.show = show
        self.show_template = show_template
        """Called on the UI thread with the doctor's check of the config starting (None: being checked)."""
        self.template: tuple[tuple, TemplateCheck] | None = None
        """What the doctor judged last (:func:`tuitune.runs.doctor.judged`) and what it said."""
        self._template_asked: tuple | None = None
        self._start_when_template = False
        self.current = current
        self.place = place
        self.verdict: Verdict | None = None
        """The verdict on the latest config judged."""
        self.checked: Prestart | None = None
        """The check of the latest config judged."""
        self.starting = False
        """True from launching until the run is started or fails."""
        self._asked: RunConfig | None = None
        self._start_when_judged = False
        self._gpus: tuple[list[Gpu], str] | None = None

    def check(self, config: RunConfig) -> None:
        """Judge ``config`` in the background unless it is the one judged (or being judged) last."""
        if config != self._asked:
            self._asked = config
            self.show(None, "", None)
            self.screen.run_worker(lambda: self._judge(config), thread=True, exclusive=True, group="fit",
                                   exit_on_error=False, description="estimating memory")
        key = doctor.judged(config)
        if key != self._template_asked:
            self._template_asked = key
            self.show_template(None)
            self.screen.run_worker(lambda: self._check_template(config, key), thread=True, group="template",
                                   exit_on_error=False, description="checking the chat template")

    def start(self, config: RunConfig) -> None:
        """Start ``config`` once its verdict is in: refused, asked about, or launched."""
        verdict = self.verdict
        if verdict is None or verdict.config != config:
            self._start_when_judged = True
            self.screen.notify("checking that the run fits first…")
            return
        if self.checked is not None and self.checked.refusals:
            self.screen.notify("\n".join(self.checked.refusals), title="cannot start", severity="error", timeout=10)
            return
        if self.template is None or self.template[0] != doctor.judged(config):
            self._start_when_template = True
            self.screen.notify("checking the chat template first…")
            self.check(config)
            return
        errors = self.template[1].errors
        if errors:
            def forced(ok: bool | None) -> None:
                if ok and self.current() == config:
                    self._fit_or_ask(config)

            lines = "\n".join(f"- {v.line().split(maxsplit=1)[1]}" for v in errors)
            self.screen.app.push_screen(ConfirmDialog(f"The chat template has errors the tuned model will show:\n"
                                                      f"{lines}\nStart anyway?", "Start anyway"), forced)
            return
        self._fit_or_ask(config)

    def _check_template(self, config: RunConfig, key: tuple) -> None:
        """The doctor on ``config`` (an engine process loading the tokenizer)."""
        checked = doctor.check_template(config)
        self.screen.app.call_from_thread(self._template_checked, key, checked)

    def _template_checked(self, key: tuple, checked: TemplateCheck) -> None:
        """Show the doctor's check (unless a newer one is on its way); a start that waited for it goes on."""
        if key != self._template_asked:
            return
        self.template = (key, checked)
        self.show_template(checked)
        current = self.current()
        if self._start_when_template and current is not None and doctor.judged(current) == key:
            self._start_when_template = False
            self.start(current)

    def _fit_or_ask(self, config: RunConfig) -> None:
        """Launch ``config``, asking first when its verdict says it will not fit."""
        verdict = self.verdict
        if verdict is not None and not verdict.fits:
            def answered(ok: bool | None) -> None:
                if ok and self.current() == config:
                    self._launch(config)

            self.screen.app.push_screen(ConfirmDialog(verdict.question(), "Start anyway"), answered)
            return
        self._launch(config)

    def _judge(self, config: RunConfig) -> None:
        """Check the run as every door does (reads the model's and the data's files)."""
        if self._gpus is None:
            from engine.machine import gpus

            self._gpus = gpus.list_gpus()
        found, note = self._gpus
        self.screen.app.call_from_thread(self._judged, check_run(config, found, note), devices_line(found, note))

    def _judged(self, checked: Prestart, devices: str) -> None:
        """Show a check (unless a newer one is on its way); a start that waited for it goes on."""
        verdict = checked.verdict
        if verdict.config != self._asked:
            return
        self.verdict, self.checked = verdict, checked
        self.show(verdict, devices, checked)
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
