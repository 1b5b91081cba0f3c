"""TuituneApp: the modes (runs, models, data, presets), global keys, and routing between screens."""

from __future__ import annotations

import sys
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.screen import Screen

from engine import paths
from tuitune import signals
from tuitune.dialogs.confirm import ConfirmDialog
from tuitune.messages import DataChosen, ModelChosen, PresetChosen
from tuitune.screens import modes
from tuitune.screens.base import binding_commands
from tuitune.settings import Settings, default_preset, load_settings

if TYPE_CHECKING:
    from tuitune.runs.draft import RunDraft
    from tuitune.screens.new_run import NewRunScreen


class Editor(Protocol):
    """A screen whose edits are lost when the app quits."""

    def unsaved_edits(self) -> str | None:
        """What would be lost ("unsaved edits to preset default"), or None."""

class TuituneApp(App[None]):
    """Fine-tune LLMs from the terminal: runs, new-run flow and live dashboards.

    Args:
        runs_dir: Folder of run folders (default: $TUITUNE_RUNS_DIR, then the settings file, then XDG data).
        attach: A run folder whose dashboard opens first.
        settings: Settings to start from (default: read the settings file).
        chat: A run folder (or a checkpoint folder of one) whose Chat screen opens first.
        compare: Run folders (two or more) whose Compare opens first.
    """

    CSS_PATH = "theme.tcss"
    TITLE = "tuitune"
    MODES = modes.MODES
    SCREENS_KEYS = Binding.Group("screens ", compact=True)  # 1234 runs, models, data, presets
    BINDINGS = [
        Binding("1", "switch_mode('runs')", "Runs", group=SCREENS_KEYS),
        Binding("2", "switch_mode('models')", "Models", group=SCREENS_KEYS),
        Binding("3", "switch_mode('data')", "Data", group=SCREENS_KEYS),
        Binding("4", "switch_mode('presets')", "Presets", group=SCREENS_KEYS),
        Binding("n", "new_run", "New run"),
        Binding("question_mark", "toggle_help", "Keys", show=False),
    ]

    def __init__(self, runs_dir: str | Path | None = None, attach: str | Path | None = None,
                 settings: Settings | None = None, chat: str | Path | None = None,
                 compare: list[Path] | None = None) -> None:
        super().__init__()
        self.settings = settings or load_settings()
        self.runs_dir = paths.runs_dir(runs_dir, self.settings.runs_dir)
        """Where run folders are listed and created."""
        self.attach = Path(attach) if attach else None
        self.chat = Path(chat) if chat else None
        self.compare = list(compare or [])
        self._draft: RunDraft | None = None
        self.editors: list[Editor] = []
        """Screens that hold edits not saved yet (the presets editor); quitting asks before dropping them."""

    @property
    def draft(self) -> RunDraft:
        """The new run being set up, shared by every screen that picks for it (built on first use)."""
        if self._draft is None:
            from tuitune.runs.draft import RunDraft

            draft, settings = RunDraft(), self.settings
            draft.preset = default_preset(settings)
            draft.model, draft.data = settings.model or draft.model, list(settings.data or draft.data)
            self._draft = draft
        return self._draft

    def _new_run_open(self) -> NewRunScreen | None:
        """The new-run flow when it is the screen on show (its module is imported only once opened)."""
        module, screen = sys.modules.get("tuitune.screens.new_run"), self.screen
        return screen if module is not None and isinstance(screen, module.NewRunScreen) else None

    def on_mount(self) -> None:
        signals.install(self.exit)
        self.switch_mode("runs")
        if self.attach is not None:
            self.open_dashboard(self.attach)
        if self.chat is not None:
            self.open_chat(self.chat)
        if self.compare:
            self.open_compare(self.compare)
        if self.settings.problem:
            self.notify(self.settings.problem, title="settings ignored", severity="warning")

    def on_unmount(self) -> None:
        signals.remove()

    def action_toggle_help(self) -> None:
        """? shows (or hides) every key of the current screen, with what it does, beside it."""
        if self.screen.query("HelpPanel"):
            self.action_hide_help_panel()
        else:
            self.action_show_help_panel()

    async def action_quit(self) -> None:
        """Quit; with unsaved edits somewhere, ask first (ctrl+q dropped them without a word)."""
        unsaved = [what for editor in self.editors if (what := editor.unsaved_edits())]
        if not unsaved:
            self.exit()
            return

        def answered(ok: bool | None) -> None:
            if ok:
                self.exit()

        self.push_screen(ConfirmDialog(f"Quit and lose {'; '.join(unsaved)}?", "Quit"), answered)

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        """The palette offers every key's action of the current screen and the app, by name."""
        builtin = list(super().get_system_commands(screen))
        yield from builtin
        yield from binding_commands(self, screen, skip={command.title.lower() for command in builtin})

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Hide the keys of modes whose screens are not installed and of new-run while it is open."""
        if action == "switch_mode":
            return parameters[0] in self.MODES
        if action == "new_run":
            return self._new_run_open() is None
        return True

    def open_dashboard(self, run_dir: Path) -> None:
        """Open a run's dashboard over the runs screen."""
        from tuitune.screens.train import TrainScreen

        if self.current_mode != "runs":
            self.switch_mode("runs")
        self.push_screen(TrainScreen(run_dir))

    def open_chat(self, run: Path) -> None:
        """Open the Chat screen of a run (or of a checkpoint of one) over the current screen."""
        from tuitune.screens.chat import ChatScreen

        self.push_screen(ChatScreen(run))

    def open_compare(self, runs: list[Path]) -> None:
        """Open Compare on two or more run folders over the runs screen."""
        from tuitune.screens.compare import CompareScreen

        if self.current_mode != "runs":
            self.switch_mode("runs")
        self.push_screen(CompareScreen(runs))

    def open_evals(self, run_dir: Path) -> None:
        """Open the Evaluations of a run (its RUN/evals/ jobs, predictions record by record)."""
        from tuitune.screens.evals import EvalsScreen

        self.push_screen(EvalsScreen(run_dir))

    def action_new_run(self, review: bool = False) -> None:
        """Open the new-run flow (or bring it back, choices kept); with ``review``, at its review step (the draft
        took a run's config: its settings are the run's, not a preset's to pick)."""
        if self.current_mode != "runs":
            self.switch_mode("runs")
        if (flow := self._new_run_open()) is not None:
            flow.take_draft(review)
        else:
            from tuitune.screens.new_run import NewRunScreen

            self.push_screen(NewRunScreen(review))

    def run_launched(self, run_dir: Path) -> None:
        """A run started from the new-run flow: swap the flow for the run's dashboard."""
        if self._new_run_open() is not None:
            self.pop_screen()
        self.open_dashboard(run_dir)

    def on_model_chosen(self, message: ModelChosen) -> None:
        """A model picked elsewhere goes into the new run."""
        self.draft.model = message.name_or_path
        self._back_to_new_run(f"model: {message.name_or_path}")

    def on_data_chosen(self, message: DataChosen) -> None:
        """Data picked elsewhere goes into the new run."""
        self.draft.data, self.draft.format = list(message.paths), message.format
        self._back_to_new_run(f"data: {', '.join(message.paths)}")

    def on_preset_chosen(self, message: PresetChosen) -> None:
        """A preset picked elsewhere goes into the new run."""
        self.draft.preset = message.name
        self._back_to_new_run(f"preset: {message.name}")

    def _back_to_new_run(self, what: str) -> None:
        self.action_new_run()
        self.notify(what, title="new run")
