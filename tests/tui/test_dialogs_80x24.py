"""Dialogs at 80x24 show their whole text, wrapped, never cut mid-word (issue 25, item 6)."""

from __future__ import annotations

from textual.app import App
from textual.widgets import Input, Static

from tuitune.dialogs.rename_run import RenameRunDialog

LONG_NAME = "smollm2-135m-instruct-dpo-lora-dec07-0151-with-a-longer-note"
PROBLEM = (f"{LONG_NAME}-x is taken: another run folder in /root/tuitune/runs has that name; choose another, or "
           "delete that run first")


def shown(widget: Static) -> str:
    """The widget's text as it is on screen, lines joined and spaces collapsed."""
    return " ".join(" ".join(widget.render_line(y).text for y in range(widget.region.height)).split())


class Host(App):
    def on_mount(self) -> None:
        self.push_screen(RenameRunDialog(LONG_NAME, lambda name: PROBLEM if name != LONG_NAME else None))


async def test_the_rename_dialog_wraps_its_title_and_its_problem() -> None:
    app = Host()
    async with app.run_test(size=(80, 24)) as pilot:
        app.screen.query_one("#name", Input).value = LONG_NAME + "-x"
        await pilot.pause()
        head = app.screen.query_one("#rename-head", Static)
        problem = app.screen.query_one("#name-problem", Static)
        assert shown(head) == f"Rename run {LONG_NAME} (its folder is renamed)"
        assert shown(problem) == PROBLEM
        assert problem.region.right <= 80 and head.region.right <= 80


async def test_a_toast_at_80x24_keeps_a_run_folders_path_whole(make_app, runs_dir) -> None:
    from textual.widgets._toast import Toast, ToastRack

    path = "/root/tuitune/runs/smollm2-135m-instruct-dpo-lora-dec07-0151/engine.log"
    message = f"the engine stopped at once with exit 2; see {path} for what it said about the configuration"
    app = make_app(runs_dir)
    async with app.run_test(size=(80, 24), notifications=True) as pilot:
        app.notify(message, title="cannot start the run", severity="error", timeout=30)
        await pilot.pause(0.3)
        [toast] = app.screen.get_child_by_type(ToastRack).query(Toast)
        lines = [toast.render_line(y).text.strip() for y in range(toast.region.height)]
    assert any(path in line for line in lines), lines
    assert " ".join(" ".join(lines[1:]).split()) == message
