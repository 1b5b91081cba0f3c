"""AppScreen: what every screen of the app does alike, and the palette's commands for keys.

Every screen of the app shows a failed worker (they run with ``exit_on_error=False``) in the
``ErrorModal``, as Harlequin routes its worker errors; detail screens keep the app's mode keys
out of their footer; and all reach the app typed through ``tuitune_app``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from functools import partial
from typing import TYPE_CHECKING, ClassVar, cast

from textual import on
from textual.actions import parse as parse_action
from textual.app import App, SystemCommand
from textual.binding import ActiveBinding, Binding
from textual.dom import DOMNode
from textual.screen import Screen
from textual.worker import Worker, WorkerState

from tuitune.dialogs.error import ErrorModal, describe_worker_error

if TYPE_CHECKING:
    from tuitune.app import TuituneApp

GLOBAL_ACTIONS = ("switch_mode", "new_run")
"""App actions the runs screen's footer shows but a detail screen's footer leaves out."""


class AppScreen(Screen[None]):
    """A screen of the app: worker errors open the error dialog; the footer lists the screen's keys."""

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
        if self.APP_KEYS_IN_FOOTER:
            return bindings
        return {key: active for key, active in bindings.items()
                if not (active.node is self.app and active.binding.action.startswith(GLOBAL_ACTIONS))}

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
