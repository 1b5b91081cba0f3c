"""Chat with what a run trained: headless answers and the Chat screen, on the session's demo run.

The demo run (tests/conftest.py ``demo_run``) is SmolLM2-135M-Instruct after the shipped identity
data: asked who it is, the tuned model names itself Tuito and the base model does not.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tuitune.screens.chat import ChatScreen

REPO = Path(__file__).resolve().parents[3]
SMALL, LARGE = (80, 24), (120, 40)


def chat(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", "tuitune", "chat", *args], env=env, capture_output=True, text=True,
                          timeout=300, stdin=subprocess.DEVNULL)


def test_once_answers_with_the_name_the_demo_taught_and_base_does_not(demo_run: Path) -> None:
    tuned = chat(str(demo_run), "--once", "Who are you?", "--max-new-tokens", "24")
    assert tuned.returncode == 0, tuned.stderr
    assert "Tuito" in tuned.stdout
    base = chat(str(demo_run), "--once", "Who are you?", "--base", "--max-new-tokens", "24")
    assert base.returncode == 0, base.stderr
    assert "Tuito" not in base.stdout and base.stdout.strip()


def test_a_run_with_nothing_trained_is_refused(tmp_path: Path) -> None:
    run_dir = tmp_path / "empty-run"
    run_dir.mkdir()
    (run_dir / "config.yaml").write_text("{}\n")
    done = chat(str(run_dir), "--once", "hello")
    assert done.returncode == 2
    assert "has no adapter and no complete checkpoint yet" in done.stderr and "Traceback" not in done.stderr


def chat_app(demo_run: Path):
    from tuitune.app import TuituneApp
    from tuitune.settings import Settings

    return TuituneApp(runs_dir=demo_run.parent, chat=demo_run, settings=Settings(preset="default"))


async def ask(pilot, wait_for, question: str, timeout: float = 240) -> ChatScreen:
    """Type ``question``, send it, and wait for every side's answer to end."""
    screen = pilot.app.screen
    await wait_for(pilot, lambda: screen.ready, timeout, "the model to load")
    screen.prompt.value = question
    await pilot.press("enter")
    await wait_for(pilot, lambda: screen.answering is None and screen.exchanges, timeout, "the answer")
    return screen


async def test_chat_screen_streams_stops_and_compares(demo_run: Path, wait_for) -> None:
    async with chat_app(demo_run).run_test(size=LARGE) as pilot:
        await wait_for(pilot, lambda: isinstance(pilot.app.screen, ChatScreen), what="the chat screen")
        screen = await ask(pilot, wait_for, "Who are you?")
        assert "Tuito" in screen.exchanges[0].answers["tuned"] and screen.exchanges[0].ended == {"tuned": "eos"}
        saved = screen.as_jsonl()  # finished answers only, in the SFT layout
        assert '"source": "tuned"' in saved and "Tuito" in saved and '"role": "assistant"' in saved

        # a long answer, stopped after its first pieces: the screen stays and says so
        screen.query_one("#set-max_new_tokens").value = "200"
        screen.prompt.value = "Tell me a long story about a dragon and a knight."
        await pilot.press("enter")
        await wait_for(pilot, lambda: screen.exchanges[1].answers["tuned"], 120, "the first pieces")
        await pilot.press("escape")
        await wait_for(pilot, lambda: screen.answering is None, 120, "the stop")
        assert screen.exchanges[1].ended == {"tuned": "stopped"} and isinstance(pilot.app.screen, ChatScreen)

        await pilot.press("ctrl+l", "ctrl+t")
        screen.query_one("#set-max_new_tokens").value = "24"
        await ask(pilot, wait_for, "Who are you?")
        answers = screen.exchanges[0].answers
        assert set(answers) == {"base", "tuned"} and "Tuito" in answers["tuned"] and "Tuito" not in answers["base"]
        service = screen.processes.running["chat"]
    assert service.wait(timeout=30) is not None  # the model's process never outlives the app


def compare_once(wait_for):
    async def run_before(pilot) -> None:
        await wait_for(pilot, lambda: isinstance(pilot.app.screen, ChatScreen), what="the chat screen")
        screen = pilot.app.screen
        screen.query_one("#set-max_new_tokens").value = "24"
        await pilot.press("ctrl+t")
        await ask(pilot, wait_for, "Who are you?")
        await pilot.pause()

    return run_before


def test_snapshot_compare_side_by_side_120x40(snap_compare, demo_run: Path, wait_for) -> None:
    """You should see the question, then the base answer and the tuned one (naming Tuito) side by side."""
    assert snap_compare(chat_app(demo_run), terminal_size=LARGE, run_before=compare_once(wait_for))


def test_snapshot_compare_stacked_80x24(snap_compare, demo_run: Path, wait_for) -> None:
    """You should see the base answer above the tuned one, and the footer's chat keys."""
    assert snap_compare(chat_app(demo_run), terminal_size=SMALL, run_before=compare_once(wait_for))
