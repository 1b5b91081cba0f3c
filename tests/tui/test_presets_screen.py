"""The presets screen: list, schema-built editor checked as you type, save-as, use for a new run."""

from __future__ import annotations

from pathlib import Path

from textual.app import App
from textual.pilot import Pilot
from textual.widgets import Input, OptionList, Select, Static
from textual.worker import WorkerCancelled

from engine.paths import user_presets_dir
from engine.presets import load_preset, preset_values, resolve
from tuitune.dialogs.save_preset import SavePresetDialog
from tuitune.messages import PresetChosen
from tuitune.screens.presets import PresetsScreen
from tuitune.widgets.preset_form import PresetForm

# SmolLM2-135M, LoRA on all 7 linear layers of 30 blocks: r * (in + out) summed per block
# = r * (2*(576+576) + 2*(576+192) + 3*(576+1536)) = r * 10,176 per block.
TRAINABLE_R16 = 16 * 10_176 * 30
TRAINABLE_R32 = 32 * 10_176 * 30


class PresetsApp(App):
    """Opens the PresetsScreen at once; Input cursors do not blink, so snapshots are stable."""

    def on_mount(self) -> None:
        """Show the presets screen."""
        self.push_screen(PresetsScreen())

    def on_descendant_focus(self) -> None:
        """Keep every Input's cursor solid."""
        for box in self.screen.query(Input):
            box.cursor_blink = False


async def settle(pilot: Pilot) -> None:
    """Wait until the presets screen's workers are done and their messages handled.

    Only its own workers (group ``presets-*``): the full app also runs pollers that never end.
    An exclusive worker replaced by a newer one ends cancelled, which is fine here.
    """
    for _ in range(3):
        await pilot.pause()
        ours = [w for w in pilot.app.workers if w.group.startswith("presets-")]
        try:
            if ours:  # an empty list would mean every worker
                await pilot.app.workers.wait_for_complete(ours)
        except WorkerCancelled:
            pass
    await pilot.pause()


async def type_into(pilot: Pilot, field_id: str, text: str) -> None:
    """Focus a form field (its text gets selected), delete it and type ``text`` key by key."""
    pilot.app.screen.query_one(f"#{field_id}", Input).focus()
    await pilot.pause()
    await pilot.press("backspace", *text)
    await pilot.pause()


def text_of(pilot: Pilot, selector: str) -> str:
    """The plain text a Static shows."""
    return str(pilot.app.screen.query_one(selector, Static).render())


def write_user_preset(name: str, text: str) -> Path:
    """A hand-written file in the user's presets folder."""
    path = user_presets_dir() / f"{name}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def load_preset_resolved(name: str) -> dict:
    """A shipped preset as the form holds it: every preset field resolved over the defaults."""
    return preset_values(resolve(load_preset(name)))


def names(screen: PresetsScreen) -> list[str]:
    """Preset names in list order."""
    return [entry.info.name for entry in screen.entries]


async def highlight(pilot: Pilot, name: str) -> None:
    """Move the preset list's highlight to ``name``."""
    screen = pilot.app.screen
    screen.query_one("#preset-list", OptionList).highlighted = names(screen).index(name)
    await pilot.pause()


async def test_opens_on_default_and_edits_update_values_diff_and_count() -> None:
    async with PresetsApp().run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        screen = pilot.app.screen
        assert isinstance(screen, PresetsScreen)
        assert names(screen)[0] == "default"
        assert {"qlora-4bit", "lora-8bit", "dora", "full", "cpu-first-try"} <= set(names(screen))
        form = screen.query_one(PresetForm)
        assert form.values == load_preset_resolved("default")
        assert f"{TRAINABLE_R16:,} trainable of 134,515,008 parameters" in text_of(pilot, "#estimate")
        assert "GiB on a GPU" in text_of(pilot, "#estimate")

        await type_into(pilot, "field-adapter-r", "32")
        assert form.values["adapter"]["r"] == 32 and not form.errors
        assert form.diff == [("adapter.r", 16, 32)]
        assert "adapter.r 16 → 32" in text_of(pilot, "#diff")
        assert screen.query_one("#row-field-adapter-r").has_class("-changed")
        assert "was 16" in text_of(pilot, "#row-field-adapter-r .field-base")
        assert f"{TRAINABLE_R32:,} trainable" in text_of(pilot, "#estimate")
        screen.query_one("#field-adapter-method", Select).value = "dora"
        await pilot.pause()
        dora = TRAINABLE_R32 + 30 * (2 * 576 + 2 * 192 + 2 * 1536 + 576)  # plus a magnitude per output row
        assert f"{dora:,} trainable" in text_of(pilot, "#estimate")


async def test_invalid_values_and_combinations_are_shown_and_saving_is_refused() -> None:
    async with PresetsApp().run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        await type_into(pilot, "field-adapter-r", "0")
        screen = pilot.app.screen
        form = screen.query_one(PresetForm)
        assert screen.query_one("#row-field-adapter-r").has_class("-invalid")
        assert "greater than or equal to 1" in text_of(pilot, "#row-field-adapter-r .field-error")
        assert screen.query_one("#field-adapter-r", Input).has_class("-invalid")
        await type_into(pilot, "field-train-learning_rate", "5")
        assert "less than or equal to 1" in text_of(pilot, "#row-field-train-learning_rate .field-error")
        assert set(form.errors) == {"adapter.r", "train.learning_rate"}
        assert "Cannot save" in text_of(pilot, "#diff")
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert pilot.app.screen is screen, "no name is asked for invalid values"
        assert any("adapter.r" in n.message for n in pilot.app._notifications)

        await highlight(pilot, "qlora-4bit")
        assert form.values["quant"]["mode"] == "4bit" and not form.errors
        screen.query_one("#field-adapter-method", Select).value = "full"
        await pilot.pause()
        assert "cannot train quantized weights" in text_of(pilot, "#form-problems")
        assert list(form.errors) == ["config"]
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert pilot.app.screen is screen
        assert not user_presets_dir().exists()


async def test_save_as_refuses_bad_names_then_writes_a_preset_that_round_trips() -> None:
    async with PresetsApp().run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        await type_into(pilot, "field-adapter-r", "32")
        await type_into(pilot, "field-adapter-target_modules", "q_proj, v_proj")
        values = pilot.app.screen.query_one(PresetForm).values
        await pilot.press("ctrl+s")
        await pilot.pause()
        dialog = pilot.app.screen
        assert isinstance(dialog, SavePresetDialog)
        assert dialog.query_one("#name", Input).value == "my-default"
        for bad, reason in (("default", "shipped preset and read-only"), ("a/b", "letters, digits")):
            dialog.query_one("#name", Input).value = bad
            await pilot.pause()
            await pilot.press("enter")
            await pilot.pause()
            assert pilot.app.screen is dialog
            assert reason in str(dialog.query_one("#name-problem", Static).render())
        dialog.query_one("#name", Input).value = "my-default"
        await pilot.pause()
        await pilot.press("enter")
        await settle(pilot)
        assert (user_presets_dir() / "my-default.yaml").is_file()
        assert load_preset("my-default") == values
        assert resolve(load_preset("my-default")).adapter.target_modules == ["q_proj", "v_proj"]
        screen = pilot.app.screen
        assert isinstance(screen, PresetsScreen)
        assert screen.current.info.name == "my-default" and screen.current.info.source == "user"
        assert screen.query_one(PresetForm).diff == []


async def test_saving_over_a_user_preset_asks_first() -> None:
    write_user_preset("mine", "description: old\nadapter:\n  r: 8\n")
    async with PresetsApp().run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        await highlight(pilot, "mine")
        await type_into(pilot, "field-adapter-r", "4")
        await pilot.press("ctrl+s")
        await pilot.pause()
        dialog = pilot.app.screen
        assert dialog.query_one("#name", Input).value == "mine"
        assert "exists" in str(dialog.query_one("#name-warning", Static).render())
        await pilot.press("enter")
        await pilot.pause()
        assert pilot.app.screen is dialog, "the first Enter only asks"
        assert "Overwrite your preset 'mine'?" in str(dialog.query_one("#name-warning", Static).render())
        assert load_preset("mine")["adapter"]["r"] == 8
        await pilot.press("escape")
        await settle(pilot)
        assert load_preset("mine")["adapter"]["r"] == 8, "cancel leaves the file alone"
        await pilot.press("ctrl+s")
        await pilot.pause()
        await pilot.press("enter", "enter")
        await settle(pilot)
        assert load_preset("mine")["adapter"]["r"] == 4


async def test_broken_user_preset_is_listed_and_use_for_new_run_posts_preset_chosen() -> None:
    path = write_user_preset("broken", "adapter:\n  r: 8\n  rank: 9\n")
    messages: list = []
    async with PresetsApp().run_test(size=(120, 40), message_hook=messages.append) as pilot:
        await settle(pilot)
        screen = pilot.app.screen
        entry = screen.entries[names(screen).index("broken")]
        assert entry.info.source == "user" and entry.data is None
        await highlight(pilot, "broken")
        assert screen.has_class("-broken")
        assert f"{path}:3:3 adapter.rank: unknown key" in text_of(pilot, "#preset-error")
        await pilot.press("ctrl+n")
        await pilot.pause()
        assert chosen(messages) == [], "a broken preset cannot be used"
        path.write_text("adapter:\n  r: 8\n", encoding="utf-8")
        await pilot.press("ctrl+l")
        await settle(pilot)
        assert screen.current.info.name == "broken" and screen.current.info.error is None
        assert not screen.has_class("-broken") and screen.query_one(PresetForm).values["adapter"]["r"] == 8

        await highlight(pilot, "cpu-first-try")
        assert not screen.has_class("-broken")
        await pilot.press("ctrl+n")
        await pilot.pause()
        assert [m.name for m in chosen(messages)] == ["cpu-first-try"]
        await type_into(pilot, "field-adapter-r", "4")
        await pilot.press("ctrl+n")
        await pilot.pause()
        assert len(chosen(messages)) == 1, "unsaved edits are not used"
        await pilot.press("ctrl+r")
        await pilot.pause()
        assert screen.query_one(PresetForm).diff == []


def chosen(messages: list) -> list[PresetChosen]:
    """The PresetChosen messages seen, once each (the hook sees one at every pump it bubbles through)."""
    return list({id(m): m for m in messages if isinstance(m, PresetChosen)}.values())


async def _edit_rank_badly(pilot: Pilot) -> None:
    await settle(pilot)
    await type_into(pilot, "field-adapter-r", "0")
    await type_into(pilot, "field-adapter-dropout", "0.1")


def test_snapshot_editor_80x24(snap_compare) -> None:
    """You should see the preset list (default highlighted), the form scrolled to adapter with dropout
    focused and changed (was 0.05), r marked invalid with its message, and the 'Cannot save' line."""
    assert snap_compare(PresetsApp(), terminal_size=(80, 24), run_before=_edit_rank_badly)


def test_snapshot_editor_120x40(snap_compare) -> None:
    """You should see the shipped presets, the default preset's form from its description down to the
    train section, the trainable count and memory estimate for smollm2-135m-instruct, and 'No changes'."""
    assert snap_compare(PresetsApp(), terminal_size=(120, 40), run_before=settle)


async def test_the_app_opens_the_presets_mode_despite_a_broken_preset_and_follows_the_chosen_model(
        demo_model_dir: Path, tmp_path: Path) -> None:
    from tuitune.app import TuituneApp

    write_user_preset("broken", "adapter: [\n")
    app = TuituneApp(runs_dir=tmp_path / "runs")
    async with app.run_test(size=(120, 40)) as pilot:
        app.draft.model = str(demo_model_dir)  # as a ModelChosen from the models screen leaves it
        await pilot.press("4")
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, PresetsScreen)
        broken = screen.entries[names(screen).index("broken")].info
        assert broken.error.startswith(f"{user_presets_dir() / 'broken.yaml'}:2:1: malformed YAML")
        assert screen.model_name == str(demo_model_dir)
        assert text_of(pilot, "#estimate").startswith(f"{demo_model_dir}: {TRAINABLE_R16:,} trainable")
        screen.model_name = "example-org/not-downloaded"
        await settle(pilot)
        assert "example-org/not-downloaded: estimate unavailable" in text_of(pilot, "#estimate")
        assert "downloaded" in text_of(pilot, "#estimate").split("unavailable", 1)[1]
        await highlight(pilot, "dora")
        await pilot.press("ctrl+n")
        await pilot.pause()
        assert app.draft.preset == "dora", "the app's new-run flow takes the PresetChosen"
        assert type(app.screen).__name__ == "NewRunScreen"


async def test_quit_asks_before_dropping_unsaved_preset_edits(tmp_path: Path) -> None:
    """ctrl+q threw away an edited preset without a word."""
    from tuitune.app import TuituneApp
    from tuitune.dialogs.confirm import ConfirmDialog

    app = TuituneApp(runs_dir=tmp_path / "runs")
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("4")
        await settle(pilot)
        await type_into(pilot, "field-adapter-r", "32")
        await pilot.press("ctrl+q")
        await pilot.pause()
        assert isinstance(app.screen, ConfirmDialog) and "unsaved edits to preset default" in app.screen.question
        await pilot.press("n")
        await pilot.pause()
        assert app.is_running and isinstance(app.screen, PresetsScreen)
        await pilot.press("ctrl+r")  # reverted: nothing to lose, quit at once
        await pilot.pause()
        await pilot.press("ctrl+q")
        await pilot.pause()
        assert not app.is_running


async def test_an_rl_presets_rewards_are_edited_as_yaml_and_kept_by_save_as() -> None:
    """The rl section was neither shown nor saved: 'Save as' of grpo-lora dropped its rewards."""
    async with PresetsApp().run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        await highlight(pilot, "grpo-lora")
        await settle(pilot)
        form = pilot.app.screen.query_one(PresetForm)
        assert "rewards" in form.values["rl"] and "allow_code" not in form.values["rl"]
        rewards = form.query_one("#field-rl-rewards", Input)
        rewards.value = "[{kind: length, max_words: 20}, {kind: regex, pattern: '^A'}]"  # typed key by key: 10 s
        await pilot.pause()
        await type_into(pilot, "field-rl-num_generations", "6")
        assert form.values["rl"]["rewards"] == [{"kind": "length", "max_words": 20}, {"kind": "regex", "pattern": "^A"}]
        await pilot.press("ctrl+s")
        await pilot.pause()
        pilot.app.screen.query_one("#name", Input).value = "my-grpo"
        await pilot.pause()
        await pilot.press("enter")
        await settle(pilot)
        saved = resolve(load_preset("my-grpo"))
        assert saved.stage == "grpo" and saved.rl.num_generations == 6
        assert [(r.kind, r.max_words, r.pattern) for r in saved.rl.rewards] == [
            ("length", 20, None), ("regex", None, "^A")]
        rewards.value = "[{kind: lengthy}]"
        await pilot.pause()
        assert not form.query_one("#field-rl-rewards", Input).is_valid
        assert form.values["rl"]["rewards"][0] == {"kind": "length", "max_words": 20}  # the last good value stays
