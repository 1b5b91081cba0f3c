"""The Data screen: pages of a file, problems that jump to their record, the tokenised record view."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from textual.app import App
from textual.pilot import Pilot
from textual.widgets import DataTable, Input, Select, Static, TabbedContent

from engine.config import DataSection
from tuitune.messages import DataChosen
from tuitune.path_suggester import DATA_SUFFIXES, PathSuggester
from tuitune.screens.data import DataScreen
from tuitune.widgets.record_view import TRAINED, RecordView

BAD_RECORD = 150


def chat_records(count: int = 250) -> list[dict]:
    """A two-turn record, a record with an unknown role at BAD_RECORD, and simple sums."""
    records = [{"messages": [{"role": "user", "content": f"What is {i} + {i}?"},
                             {"role": "assistant", "content": f"{i} + {i} = {2 * i}."}]} for i in range(count)]
    records[1] = {"messages": [{"role": "system", "content": "Answer briefly."},
                               {"role": "user", "content": "Capital of France?"},
                               {"role": "assistant", "content": "Paris."},
                               {"role": "user", "content": "And of Italy?"},
                               {"role": "assistant", "content": "Rome."}]}
    records[BAD_RECORD] = {"messages": [{"role": "user", "content": "Hello"}, {"role": "bot", "content": "Hi"}]}
    return records


@pytest.fixture()
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A folder holding chat.jsonl, made the working directory so paths shown are relative."""
    (tmp_path / "chat.jsonl").write_text("".join(json.dumps(r) + "\n" for r in chat_records()))
    (tmp_path / "sub").mkdir()
    monkeypatch.chdir(tmp_path)
    return tmp_path


class DataApp(App):
    """Pushes a DataScreen with the given arguments."""

    def __init__(self, **screen_args) -> None:
        super().__init__()
        self.screen_args = screen_args

    def on_mount(self) -> None:
        """Show the data screen."""
        self.push_screen(DataScreen(**self.screen_args))


async def until(pilot: Pilot, condition, timeout: float = 90.0) -> None:
    """Let the app run until ``condition()`` holds (engine subprocesses take seconds to start)."""
    started = time.monotonic()
    while not condition():
        assert time.monotonic() - started < timeout, "timed out waiting for the screen"
        await pilot.pause(0.05)


async def settle(pilot: Pilot) -> None:
    """Wait for the file workers and the report to finish (no encoder: model=None)."""
    await until(pilot, lambda: pilot.app.screen.report_done and pilot.app.screen.opened, timeout=30)
    await pilot.app.workers.wait_for_complete()
    await pilot.pause()


def text_of(pilot: Pilot, selector: str) -> str:
    return str(pilot.app.screen.query_one(selector, Static).render())


def first_row(pilot: Pilot) -> str:
    return str(pilot.app.screen.query_one("#data-table", DataTable).get_row_at(0)[0])


async def test_first_page_then_paging(data_dir: Path) -> None:
    app = DataApp(path="chat.jsonl", model=None)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        table = app.screen.query_one("#data-table", DataTable)
        assert table.row_count == 100 and first_row(pilot) == "0"
        assert text_of(pilot, "#data-page") == "records 0–99 of 250 · [ ] pages"
        assert text_of(pilot, "#data-info") == "chat.jsonl · format openai (detected) · for stage sft"
        await pilot.press("]", "]")
        await until(pilot, lambda: first_row(pilot) == "200")
        assert table.row_count == 50 and text_of(pilot, "#data-page") == "records 200–249 of 250 · [ ] pages"
        await pilot.press("]")  # past the end: stays
        await pilot.press("[")
        await until(pilot, lambda: first_row(pilot) == "100")
        await pilot.press("up")  # from the first row of a page: the previous page, cursor on its last row
        await until(pilot, lambda: first_row(pilot) == "0")
        assert table.cursor_row == 99
        await pilot.press("down")  # and back down from the last row
        await until(pilot, lambda: first_row(pilot) == "100")
        assert table.cursor_row == 0


async def test_problem_enter_jumps_to_its_record(data_dir: Path) -> None:
    app = DataApp(path="chat.jsonl", model=None)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        tabs = app.screen.query_one(TabbedContent)
        assert str(tabs.get_tab("tab-problems").label) == "Problems (1)"
        await pilot.press("p")
        assert tabs.active == "tab-problems"
        problems = app.screen.query_one("#data-problems", DataTable)
        assert app.screen.focused is problems
        # the row's text is cut after a whole word to the 72-cell pane; the line under the table has it whole
        assert [str(c) for c in problems.get_row_at(0)[1:]] == ["chat.jsonl:151 #150",
                                                                "messages[1].role: unknown role 'bot'…"]
        await until(pilot, lambda: "allowed: system, user, assistant"
                    in " ".join(text_of(pilot, "#data-problem").split()))
        await pilot.press("enter")
        await until(pilot, lambda: first_row(pilot) == "100")
        await pilot.pause()
        assert app.screen.query_one("#data-table", DataTable).cursor_row == BAD_RECORD - 100
        assert tabs.active == "tab-record"
        head = str(app.screen.query_one("#record-head", Static).render())
        assert head == f"record {BAD_RECORD} · line {BAD_RECORD + 1}"
        body = str(app.screen.query_one("#record-body", Static).render())
        assert "✗ messages[1].role: unknown role 'bot'" in body


async def test_missing_file_and_format_override(data_dir: Path) -> None:
    app = DataApp(model=None)
    async with app.run_test(size=(120, 40)) as pilot:
        path_box = app.screen.query_one("#data-path", Input)
        assert app.screen.focused is not path_box  # the screen's keys work until ctrl+o
        await pilot.press("ctrl+o", *"nope.jsonl", "enter")
        await settle(pilot)
        assert text_of(pilot, "#data-info") == "nope.jsonl: no such file or folder"
        path_box.value = "chat.jsonl"
        await pilot.press("enter")
        await settle(pilot)
        app.screen.query_one("#data-format", Select).value = "alpaca"
        await pilot.pause()
        await settle(pilot)
        assert text_of(pilot, "#data-info") == "chat.jsonl · format alpaca (chosen) · for stage sft"
        problems = app.screen.query_one("#data-problems", DataTable)
        assert problems.row_count == 500  # instruction and output missing in each of the 250 records
        assert [str(c) for c in problems.get_row_at(0)[1:]] == ["chat.jsonl:1 #0", "instruction: missing field"]
        assert [str(c) for c in problems.get_row_at(1)[1:]] == ["chat.jsonl:1 #0", "output: missing field"]


async def test_use_for_new_run_posts_data_chosen(data_dir: Path) -> None:
    seen: list = []
    app = DataApp(path="chat.jsonl", model=None)
    async with app.run_test(size=(120, 40), message_hook=seen.append) as pilot:
        await settle(pilot)
        await pilot.press("ctrl+n")
        await pilot.pause()
    chosen = list({id(m): m for m in seen if isinstance(m, DataChosen)}.values())  # seen again as it bubbles
    assert [(m.paths, m.format) for m in chosen] == [([str(data_dir / "chat.jsonl")], "auto")]


async def test_record_view_split_equals_engine_labels(data_dir: Path, demo_model_dir: Path) -> None:
    from transformers import AutoTokenizer

    from engine.recipes.datasets import build_datasets

    app = DataApp(path="chat.jsonl", model=str(demo_model_dir), cutoff=40)
    async with app.run_test(size=(120, 40)) as pilot:
        view = app.screen.query_one(RecordView)
        await until(pilot, lambda: view.encoded is not None)
        await pilot.press("down")
        await until(pilot, lambda: view.encoded is not None and "record 1" in text_of(pilot, "#record-head"))
        encoded = view.encoded
        shown = view.body
        highlighted = "".join(shown.plain[s.start:s.end] for s in shown.spans if s.style == TRAINED)
        app.screen.engine.stop_all()
    (data_dir / "one.jsonl").write_text(json.dumps(chat_records()[1]) + "\n")
    tokenizer = AutoTokenizer.from_pretrained(demo_model_dir)
    built = build_datasets(DataSection(train=["one.jsonl"], cutoff_len=40), tokenizer, seed=0)
    labels = built.train[0]["labels"]
    assert encoded["truncated"] and encoded["ids"][:40] == built.train[0]["input_ids"]
    assert encoded["trained"][:40] == [label != -100 for label in labels]
    trained = tokenizer.decode([label for label in labels if label != -100])
    assert view.trained_text == trained and trained.startswith("Paris.<|im_end|>")
    assert highlighted.endswith(trained) and "Rome.<|im_end|>" not in highlighted  # cut off at 40 tokens


def test_path_completion_offers_data_files_and_folders(data_dir: Path) -> None:
    complete_data_path = PathSuggester(DATA_SUFFIXES).complete
    assert complete_data_path("ch") == "chat.jsonl"
    assert complete_data_path("s") == "sub/"
    assert complete_data_path(f"{data_dir}/c") == f"{data_dir}/chat.jsonl"
    assert complete_data_path("zzz") is None and complete_data_path("builtin:") is None


def test_snapshot_statistics_120x40(data_dir: Path, snap_compare) -> None:
    """You should see the first page of chat.jsonl, and the Statistics tab with records and turns."""

    async def run_before(pilot: Pilot) -> None:
        await settle(pilot)
        pilot.app.screen.query_one(TabbedContent).active = "tab-stats"
        await pilot.pause()

    assert snap_compare(DataApp(path="chat.jsonl", model=None), terminal_size=(120, 40), run_before=run_before)


def test_snapshot_problems_80x24(data_dir: Path, snap_compare) -> None:
    """You should see the records table and the Problems tab listing the unknown role at line 151."""

    async def run_before(pilot: Pilot) -> None:
        await settle(pilot)
        pilot.app.screen.query_one(TabbedContent).active = "tab-problems"
        await pilot.pause()

    assert snap_compare(DataApp(path="chat.jsonl", model=None), terminal_size=(80, 24), run_before=run_before)


def test_snapshot_record_tokens_120x40(data_dir: Path, demo_model_dir: Path, snap_compare) -> None:
    """You should see record 1 rendered by the chat template, Paris. highlighted as trained, and the cutoff
    marker at token 40 with the rest (inside Rome.) struck through."""

    async def run_before(pilot: Pilot) -> None:
        view = pilot.app.screen.query_one(RecordView)
        await until(pilot, lambda: view.encoded is not None and pilot.app.screen.report_done)
        await pilot.press("down")
        await until(pilot, lambda: view.encoded is not None and "record 1" in text_of(pilot, "#record-head"))

    app = DataApp(path="chat.jsonl", model="smollm2-135m-instruct", cutoff=40)
    assert snap_compare(app, terminal_size=(120, 40), run_before=run_before)


async def test_screen_follows_the_model_chosen_for_the_new_run(data_dir: Path) -> None:
    """Coming back to the screen after a model was chosen tokenises with that model's template."""

    class DraftApp(DataApp):
        draft = type("Draft", (), {"model": "some-org/other-model"})()

    app = DraftApp(model="")
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, DataScreen)
        assert screen.model == "some-org/other-model"
        assert screen.query_one("#data-model", Input).value == "some-org/other-model"


async def test_preference_pairs_show_both_answers_side_by_side_with_their_trained_tokens(
        data_dir: Path, demo_model_dir: Path) -> None:
    """Issue 10: chosen and rejected shown side by side, each with its trained tokens (Chinese too)."""
    pairs = [{"prompt": "什么是光合作用？", "chosen": "植物把光变成养分。", "rejected": "不知道。"},
             {"prompt": "Capital of France?", "chosen": "Paris.", "rejected": "London."}]
    (data_dir / "pairs.jsonl").write_text("".join(json.dumps(p, ensure_ascii=False) + "\n" for p in pairs))
    app = DataApp(path="pairs.jsonl", model=str(demo_model_dir), cutoff=64)
    async with app.run_test(size=(120, 40)) as pilot:
        view = app.screen.query_one(RecordView)
        await until(pilot, lambda: view.encoded is not None)
        assert app.screen.fmt == "trl_pairs"
        rows = [str(app.screen.table.get_row_at(i)[3]) for i in range(2)]
        assert rows[1] == "Capital of France? → Paris. ≻ London."
        encoded = view.encoded
        assert encoded["rejected"] is not None
        head = text_of(pilot, "#record-head")
        assert f"chosen {encoded['full_length']} tokens" in head and "rejected" in head
        assert view.trained_text.startswith("植物把光变成养分。")  # only the answer is trained
        rejected = "".join(s["text"] for s in encoded["rejected"]["segments"] if s["trained"])
        assert rejected.startswith("不知道。")
        app.screen.engine.stop_all()


async def test_a_dataset_info_json_lists_its_datasets_and_opens_one_with_its_mapping(data_dir: Path) -> None:
    """Issue 16: open LLaMA-Factory's dataset_info.json, see its datasets (a ModelScope one says why it cannot
    be used, a Hugging Face Hub one names its hf: dataset), preview one with its column mapping applied."""
    from textual.widgets import OptionList

    from tuitune.dialogs.dataset_picker import DatasetPicker

    (data_dir / "dataset_info.json").write_text(json.dumps({
        "ms_set": {"ms_hub_url": "org/set"},
        "hub_set": {"hf_hub_url": "org/set"},
        "tuito": {"file_name": "t.json", "columns": {"prompt": "q", "response": "a"}}}))
    (data_dir / "t.json").write_text(json.dumps([{"q": "Who are you?", "a": "I am Tuito."},
                                                 {"q": "Capital of France?", "a": "Paris."}]))
    app = DataApp(path="dataset_info.json", model=None)
    async with app.run_test(size=(120, 40)) as pilot:
        await until(pilot, lambda: isinstance(app.screen, DatasetPicker))
        options = app.screen.query_one(OptionList)
        modelscope, hub, tuito = (options.get_option_at_index(n) for n in range(3))
        assert modelscope.disabled and "ModelScope" in str(modelscope.prompt) and not tuito.disabled
        assert not hub.disabled and "hf:org/set:train" in str(hub.prompt)
        options.highlighted = 2
        await pilot.press("enter")
        screen = app.screen
        await until(pilot, lambda: isinstance(screen, DataScreen) and screen.table.row_count == 2)
        assert screen.fmt == "alpaca" and str(screen.table.get_row_at(0)[3]) == "Who are you? → I am Tuito."
        screen.engine.stop_all()


@pytest.fixture()
def prompts_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    records = [{"prompt": "What is 2 + 2?", "answer": "4"},
               {"prompt": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "你好"}]},
               {"answer": "orphan"}]
    (tmp_path / "prompts.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))
    monkeypatch.chdir(tmp_path)
    return tmp_path


async def test_prompts_show_with_their_reference_answer(prompts_dir: Path) -> None:
    """Prompts for the RL stages ({prompt, answer}): the layout is recognised, and a record shows its prompt
    with its reference answer, or says that it has none."""
    app = DataApp(path="prompts.jsonl", model=None, cutoff=64)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = app.screen
        while not (screen.report_done and screen.opened):
            await pilot.pause(0.05)
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert screen.fmt == "prompts"
        body = str(screen.query_one("#record-body", Static).render())
        assert "What is 2 + 2?" in body and "reference answer\n4" in body
        assert str(screen.table.get_row_at(2)[3]) == "prompt: missing field"
        previews = [str(cell) for cell in screen.table.get_row_at(0) + screen.table.get_row_at(1)]
        assert "What is 2 + 2? → 4" in previews and "你好" in previews and not any("None" in p for p in previews)
        screen.table.move_cursor(row=1)
        await pilot.pause()
        await app.workers.wait_for_complete()
        await pilot.pause()
        body = str(screen.query_one("#record-body", Static).render())
        assert "Be brief." in body and "你好" in body and "(none: rewards without a reference score it)" in body


def phi3_model(folder: Path) -> Path:
    """Phi-3-mini's template (it drops system turns) on a byte-level tokenizer (tests/fixtures/templates)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("template_fixtures",
                                                  Path(__file__).parents[2] / "fixtures/templates/build.py")
    templates = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(templates)
    return templates.build(templates.family("phi3"), folder)


async def test_the_template_tab_shows_every_verdict_and_an_error_in_red(data_dir: Path) -> None:
    model = phi3_model(data_dir / "phi3")
    app = DataApp(path="chat.jsonl", model=str(model))
    async with app.run_test(size=(120, 40)) as pilot:
        await until(pilot, lambda: app.screen.report_done and app.screen.opened)
        await pilot.press("t")
        tabs = app.screen.query_one(TabbedContent)
        label = str(tabs.get_tab("tab-template").label)
        shown = app.screen.query_one("#data-template", Static).content
        app.screen.engine.stop_all()  # the encoder's reader would hold the app open
        assert tabs.active == "tab-template" and label == "Template (1 error)", label
        assert "error   system: the chat template silently drops the system turn; 1 of 64 sampled" in shown.plain
        assert "ok      end of turn: <|end|> (id 261) after every answer is trained (2 of 2)" in shown.plain
        red = [shown.plain[s.start:s.end] for s in shown.spans if s.style == "bold red"]
        assert len(red) == 1 and red[0].startswith("error   system:")
        assert "evidence: '<s><|user|>\\nProbeUserOneZq<|end|>" in shown.plain


def test_snapshot_template_120x40(data_dir: Path, snap_compare) -> None:
    """You should see the Template tab: Phi-3-mini's template dropping the system prompt one record has, in red
    with its fix and evidence, and every other verdict in green, each naming its token (<|end|>, <s>)."""
    model = phi3_model(data_dir / "phi3")

    async def run_before(pilot: Pilot) -> None:
        await until(pilot, lambda: pilot.app.screen.report_done and pilot.app.screen.opened)
        pilot.app.screen.query_one(TabbedContent).active = "tab-template"
        await pilot.pause()

    assert snap_compare(DataApp(path="chat.jsonl", model=str(model)), terminal_size=(120, 40), run_before=run_before)
