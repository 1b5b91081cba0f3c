"""The Export dialog at 80x24: its choices come back as the export job's settings, the space it needs is
shown against the destination's free space, and it refuses what cannot be exported."""

from __future__ import annotations

from pathlib import Path

from textual.app import App
from textual.widgets import Button, Checkbox, Input, Static

from engine.export.plan import free_bytes
from tuitune.dialogs.export import ExportDialog, ExportRequest

DEMO_PARAMS = 134_515_008
"""SmolLM2-135M's weights, stored as float32."""


class Host(App):
    """An empty app that opens the dialog and keeps its answer."""

    def __init__(self, dialog: ExportDialog) -> None:
        super().__init__()
        self.dialog = dialog
        self.answer: object = "unanswered"

    def on_mount(self) -> None:
        self.push_screen(self.dialog, self._answered)

    def _answered(self, answer: ExportRequest | None) -> None:
        self.answer = answer


def dialog(tmp_path: Path, params: int | None = DEMO_PARAMS, architecture: str = "LlamaForCausalLM") -> ExportDialog:
    return ExportDialog("demo", tmp_path / "exports" / "new", params, "float32", architecture)


async def test_the_choice_comes_back_as_the_jobs_settings(tmp_path: Path) -> None:
    """You should see the merged model chosen, GGUF types and Ollama to tick, the destination, the space line."""
    app = Host(dialog(tmp_path))
    async with app.run_test(size=(80, 24)) as pilot:
        screen = app.dialog
        for widget in screen.query("Checkbox, Input, Button, #space"):  # everything fits the smallest terminal
            assert widget.region.bottom <= 24 and widget.region.right <= 80 and widget.region.height, widget
        space = str(screen.query_one("#space", Static).render())
        assert space.startswith("Needs about 577 MiB · ") and "free there" in space  # 513 MiB fp32 + the reserve
        await pilot.click("#gguf-f16")
        await pilot.click("#ollama")
        screen.query_one("#destination", Input).value = str(tmp_path / "served")
        await pilot.pause()
        assert str(screen.query_one("#space", Static).render()).startswith("Needs about 834 MiB")  # + 2 bytes a weight
        await pilot.click("#export")
        await pilot.pause()
    assert app.answer == ExportRequest(merged=True, gguf=("f16",), ollama=True, to=str(tmp_path / "served"))
    assert app.answer.settings("checkpoints/checkpoint-30") == {
        "weights": "checkpoints/checkpoint-30", "merged": True, "gguf": ["f16"], "ollama": True,
        "to": str(tmp_path / "served"), "adapter_only": None, "push": None, "private": False}


async def test_ollama_alone_picks_q8_0_and_the_default_folder_stays_the_jobs(tmp_path: Path) -> None:
    app = Host(dialog(tmp_path))
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.click("#merged")
        assert app.dialog.query_one("#export", Button).disabled  # nothing chosen
        await pilot.click("#ollama")
        assert app.dialog.query_one("#gguf-q8_0", Checkbox).value
        assert not app.dialog.query_one("#export", Button).disabled
        await pilot.click("#export")
        await pilot.pause()
    assert app.answer == ExportRequest(merged=False, gguf=("q8_0",), ollama=True, to=None)


async def test_an_export_larger_than_the_free_space_cannot_be_started(tmp_path: Path) -> None:
    """A model of a hundred trillion weights does not fit on this disk: the line says so in red and
    Export stays disabled."""
    app = Host(dialog(tmp_path, params=10**14))
    async with app.run_test(size=(80, 24)) as pilot:
        space = app.dialog.query_one("#space", Static)
        assert "not enough disk space" in str(space.render()) and space.has_class("-short")
        assert (f"{free_bytes(tmp_path) / 1024**3:.1f} GiB free" in str(space.render())
                or "TiB free" in str(space.render()))
        assert app.dialog.query_one("#export", Button).disabled
        await pilot.press("escape")
        await pilot.pause()
    assert app.answer is None


async def test_gguf_is_not_offered_for_an_architecture_the_writer_does_not_know(tmp_path: Path) -> None:
    app = Host(dialog(tmp_path, architecture="GPT2LMHeadModel"))
    async with app.run_test(size=(80, 24)):
        screen = app.dialog
        assert all(box.disabled for box in screen.query("Checkbox") if box.id != "merged")
        notes = " ".join(str(note.render()) for note in screen.query(".note"))
        assert "GPT2LMHeadModel" in notes and "supported: llama, qwen2, qwen3, mistral" in notes
        assert not screen.query_one("#export", Button).disabled  # the merged model still can be exported


async def test_a_hub_repo_alone_pushes_the_adapter_and_private_applies_to_it(tmp_path: Path) -> None:
    """You should see "private" disabled until a repo is typed, then Export enabled for the repo alone."""
    app = Host(dialog(tmp_path))
    async with app.run_test(size=(80, 24)) as pilot:
        screen = app.dialog
        await pilot.click("#merged")
        assert screen.query_one("#export", Button).disabled and screen.query_one("#private", Checkbox).disabled
        screen.query_one("#push", Input).value = "me/tuned"
        await pilot.pause()
        assert str(screen.query_one("#space", Static).render()) == "The adapter alone is pushed to me/tuned."
        for widget in screen.query("Checkbox, Input, Button, #space"):
            assert widget.region.bottom <= 24 and widget.region.right <= 80 and widget.region.height, widget
        await pilot.click("#private")
        await pilot.click("#export")
        await pilot.pause()
    assert app.answer == ExportRequest(merged=False, gguf=(), ollama=False, to=None, push="me/tuned", private=True)
    assert app.answer.settings()["push"] == "me/tuned" and app.answer.settings()["private"] is True
