"""AppScreen: what every screen of the app does alike, and the palette's commands for keys.

Every screen of the app shows a failed worker (they run with ``exit_on_error=False``) in the
``ErrorModal``, as Harlequin routes its worker errors; detail screens keep the app's mode keys
out of their footer; and all reach the app typed through ``tuitune_app``.

Text fields and keys: no screen opens with a text field focused (a screen focuses what it lists
instead, or a field only where typing is the one thing to do there); while a field has focus,
printable keys go into it and the footer shows the screen's one-character keys as unavailable;
``esc`` leaves the field and they work again.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator
from functools import partial
from typing import TYPE_CHECKING, ClassVar, cast

from textual import on
from textual.actions import parse as parse_action
from textual.app import App, SystemCommand
from textual.binding import ActiveBinding, Binding
from textual.dom import DOMNode
from textual.keys import key_to_character
from textual.screen import Screen
from textual.widgets import Input
from textual.worker import Worker, WorkerState

from tuitune.dialogs.error import ErrorModal, describe_worker_error

if TYPE_CHECKING:
    from tuitune.app import TuituneApp

GLOBAL_ACTIONS = ("switch_mode", "new_run")
"""App actions the runs screen's footer shows but a detail screen's footer leaves out."""


class AppScreen(Screen[None]):
    """A screen of the app: worker errors open the error dialog; the footer lists the screen's keys."""

    AUTO_FOCUS = "DataTable, OptionList.-focus-first"
    """What a screen focuses when it opens: its first list, never a text field (Textual's
    default takes the first focusable widget, often a field). A screen marks the list it opens
    on with the class ``-focus-first``."""
    BINDINGS = [Binding("escape", "leave_field", "Leave field", show=False, priority=True)]

    APP_KEYS_IN_FOOTER: ClassVar[bool] = False
    """Whether the footer lists the app's mode and new-run keys too. At 80 columns a footer
    holding both overflows, so only the home screens show them; the keys keep working and
    the command palette lists them."""

    @property
    def tuitune_app(self) -> TuituneApp:
        """The app, typed (its runs folder, draft and routing)."""
        return cast("TuituneApp", self.app)

    @property
    def active_bindings(self) -> dict[str, ActiveBinding]:
        """The screen's active bindings, without the app's mode and new-run keys unless APP_KEYS_IN_FOOTER."""
        bindings = super().active_bindings
        if self.typing:
            bindings.update(self._keys_typed_into_field(bindings))
        if not self.APP_KEYS_IN_FOOTER:
            bindings = {key: active for key, active in bindings.items()
                        if not (active.node is self.app and active.binding.action.startswith(GLOBAL_ACTIONS))}
        if "escape" in bindings:  # bound first here (leave a field), shown last (Back) as before
            action = bindings["escape"].binding.action
            bindings = {key: active for key, active in bindings.items() if active.binding.action != action} | {
                key: active for key, active in bindings.items() if active.binding.action == action}
        return bindings

    def _keys_typed_into_field(self, shown: dict[str, ActiveBinding]) -> dict[str, ActiveBinding]:
        """The screen's and app's printable keys that the focused field takes, as unavailable
        (Textual leaves them out of the footer; a user should see they are there, but not now)."""
        taken: dict[str, ActiveBinding] = {}
        for node in (self, self.app):
            for key, binding in node._bindings:
                character = key_to_character(key)
                if key in shown or key in taken or character is None or not character.isprintable():
                    continue
                if self.app._check_action_state(binding.action, node) is not False:
                    taken[key] = ActiveBinding(node, binding, False, binding.tooltip)
        return taken

    @property
    def typing(self) -> bool:
        """Whether a text field has the focus (printable keys go into it)."""
        # TextArea (and its themes, about 0.1 s) loads with the first screen that has one, not at start; until
        # then no focused widget can be one.
        text_area = sys.modules.get("textual.widgets._text_area")
        return isinstance(self.focused, (Input, text_area.TextArea) if text_area else Input)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """``esc`` leaves a text field; elsewhere it is the screen's own (or nothing)."""
        if action == "leave_field":
            return self.typing
        return True

    def action_leave_field(self) -> None:
        """Take the focus out of the text field, so the screen's keys work again."""
        self.set_focus(None)

    @on(Worker.StateChanged)
    def show_worker_error(self, event: Worker.StateChanged) -> None:
        """Open the error dialog for a worker that failed."""
        if event.state is WorkerState.ERROR:
            title, details = describe_worker_error(event.worker)
            self.app.push_screen(ErrorModal(title, details))


def declared_bindings(node: DOMNode) -> Iterator[Binding]:
    """The bindings ``node``'s class and its bases declare in ``BINDINGS``, merged as Textual merges them."""
    by_key: dict[str, Binding] = {}
    for cls in reversed(type(node).__mro__):
        for binding in Binding.make_bindings(cls.__dict__.get("BINDINGS", [])):
            by_key[binding.key] = binding
    return iter(by_key.values())


def binding_commands(app: App, screen: Screen, skip: set[str]) -> Iterable[SystemCommand]:
    """A palette command for each described key of ``screen`` and ``app`` that is enabled now.

    Args:
        app: The app (its keys come after the screen's).
        screen: The screen the palette was opened from.
        skip: Lower-case titles or actions already offered (the built-in commands).
    """
    seen = {"command_palette", *skip}
    for node, binding in [(screen, b) for b in declared_bindings(screen)] + [(app, b) for b in declared_bindings(app)]:
        _, name, params = parse_action(binding.action)
        if binding.description and seen.isdisjoint({binding.action, name, binding.description.lower()}) \
                and node.check_action(name, params) is not False:
            seen.add(binding.action)
            run = partial(app.run_action, binding.action, node)
            yield SystemCommand(binding.description, f"key: {binding.key}", run)
