"""The driver of the app in a browser tab under ``tuitune serve``: Textual's web driver, which also ends the app
when serve goes away.

Textual's ``WebDriver`` quits when serve asks it to (the tab closed, or serve stopping in order), but when its
input simply ends (serve killed, or crashed) its input thread returns and the app lives on, an orphan drawing
for nobody. Here the end of the input ends the app too, as a hang-up ends the app in a terminal.
"""

from __future__ import annotations

from textual import messages
from textual.drivers.web_driver import WebDriver


class ServedDriver(WebDriver):
    """``WebDriver`` that exits the app when its input from serve ends without serve asking it to quit."""

    def run_input_thread(self) -> None:
        """Read serve's packets until it asks to quit or the stream ends; at the end, quit regardless."""
        super().run_input_thread()
        self._app.post_message(messages.ExitApp())  # after serve's own quit, a second one (as App.exit posts) is moot
