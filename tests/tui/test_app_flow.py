"""Pilot tests of the app on canned run folders: runs list, dashboards, new-run flow, errors."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from textual.widgets import DataTable, Input, Static

from engine.stages import STAGES
from tuitune.dialogs.confirm import ConfirmDialog
from tuitune.dialogs.error import ErrorModal
from tuitune.messages import DataChosen, ModelChosen, PresetChosen
from tuitune.screens.new_run import NewRunScreen
from tuitune.screens.runs import RunsScreen
from tuitune.screens.train import TrainScreen
from tuitune.settings import has_nvidia_gpu


async def open_runs(pilot, wait_for) -> RunsScreen:
    screen = pilot.app.screen
    assert isinstance(screen, RunsScreen)
    await wait_for(pilot, lambda: screen.scans >= 1, what="the first scan of the runs folder")
    return screen


async def open_dashboard(pilot, wait_for) -> TrainScreen:
    await wait_for(pilot, lambda: isinstance(pilot.app.screen, TrainScreen), what="the dashboard")
    screen = pilot.app.screen
    await wait_for(pilot, lambda: screen.state.events_seen > 0 and screen.alive is not None and screen.repaints > 0,
                   what="the run's history")
    return screen


async def test_runs_list_shows_every_run_with_state_and_failed_cause(
    make_app,
    wait_for,
    runs_dir: Path,
    alive_runs: set[str],
) -> None:
    alive_runs.add("running")
    async with make_app(runs_dir).run_test(size=(120, 40)) as pilot:
        screen = await open_runs(pilot, wait_for)
        table = screen.query_one(DataTable)
        rows = [[str(cell) for cell in table.get_row_at(i)] for i in range(table.row_count)]
        assert [r[0] for r in rows] == ["running", "failed", "stopped", "finished"]
        assert rows[0][1:6] == ["…a/Llama-3.2-1B-Instruct", "lora", "running", "45/120", "1.374"]
        assert rows[2][2:5] == ["dora", "stopped", "40/200"]
        assert rows[3][3:5] == ["finished", "60/60"]
        assert rows[3][6:] == ["11-25 12:00", "1m53s"]  # from event times (UTC), not the clock
        await pilot.press("down")
        detail = str(screen.query_one("#detail", Static).render())
        assert "CUDA out of memory" in detail and "hint: lower train.batch_size" in detail


async def test_enter_opens_dashboard_and_back_returns_without_stopping(
    make_app,
    wait_for,
    runs_dir: Path,
    alive_runs: set[str],
) -> None:
    alive_runs.add("running")
    async with make_app(runs_dir).run_test(size=(120, 40)) as pilot:
        await open_runs(pilot, wait_for)
        await pilot.press("enter")
        dash = await open_dashboard(pilot, wait_for)
        assert dash.run_dir.name == "running" and dash.status == "running"
        assert dash.state.step == 45 and len(dash.state.train_series) == 9
        assert dash.has_class("-running")
        assert dash.chart.redraws == 1
        system = str(dash.system.render())
        assert "NVIDIA H100" in system and "20.0 GiB/79.6 GiB" in system and "RSS 1.8 GiB" in system
        assert "step 45/120" in str(dash.stats.render()) and "ETA 2m15s" in str(dash.stats.render())
        await pilot.press("escape")
        assert isinstance(pilot.app.screen, RunsScreen)


@pytest.mark.parametrize("name, status, shown", [
    ("finished", "finished", "step 60/60"),
    ("stopped", "stopped", "step 40/200"),
    ("failed", "failed", "CUDA out of memory"),
    ("running", "lost", "The engine is gone"),
])
async def test_dashboard_of_each_canned_run(
    make_app,
    wait_for,
    runs_dir: Path,
    name: str,
    status: str,
    shown: str,
) -> None:
    async with make_app(runs_dir, attach=runs_dir / name).run_test(size=(100, 30)) as pilot:
        dash = await open_dashboard(pilot, wait_for)
        assert dash.status == status and dash.has_class(f"-{status}")
        text = str(dash.stats.render()) + str(dash.failure.render())
        assert shown in text
        # stop, save and kill only make sense for a live engine: not offered
        assert all(dash.check_action(a, ()) is False for a in ("stop", "save", "kill"))
        assert all(key not in dash.active_bindings for key in ("s", "c", "k"))
        # the last system sample of an ended run is history; a run without one does not wait for one
        assert "waiting" not in str(dash.system.render())
        if status == "failed":
            assert "hint: lower train.batch_size" in str(dash.failure.render())
            assert "OutOfMemoryError" in str(dash.log_view.render())
        if name == "finished":
            assert len(dash.state.eval_series) == 3 and "no GPU: no NVIDIA driver" in str(dash.system.render())


async def test_dashboard_follows_new_events_and_a_torn_line(
    make_app,
    wait_for,
    runs_dir: Path,
    alive_runs: set[str],
) -> None:
    alive_runs.add("running")
    events = runs_dir / "running" / "events.jsonl"
    async with make_app(runs_dir, attach=runs_dir / "running").run_test(size=(120, 40)) as pilot:
        dash = await open_dashboard(pilot, wait_for)
        assert dash.state.step == 45  # the torn last line (step 50) is held back
        with open(events, "a") as file:
            file.write('ss": 1.25, "eta_s": 126.0}\n')
            file.write(json.dumps({"v": 1, "seq": 20, "t": 1764162102.5, "type": "log", "step": 55,
                                   "loss": 1.2, "eta_s": 117.0}) + "\n")
        await wait_for(pilot, lambda: dash.state.step == 55, what="appended events")
        await wait_for(pilot, lambda: "step 55/120" in str(dash.stats.render()), what="the throttled repaint")
        assert dash.state.train_series[-2:] == ((50.0, 1.25), (55.0, 1.2))
        with open(events, "a") as file:
            file.write(json.dumps({"v": 1, "seq": 21, "t": 1764162110.0, "type": "run_failed", "cause": "killed",
                                   "exit_code": -9, "signal": "SIGKILL", "hint": None, "log_tail": []}) + "\n")
        alive_runs.discard("running")
        await wait_for(pilot, lambda: dash.status == "failed", what="the failure")
        await wait_for(pilot, lambda: "killed" in str(dash.failure.render()), what="the cause on screen")
        assert "SIGKILL" in str(dash.failure.render())


async def test_new_run_flow_defaults_review_and_choices_from_other_screens(make_app, wait_for, runs_dir: Path) -> None:
    app = make_app(runs_dir)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("n")
        flow = app.screen
        assert isinstance(flow, NewRunScreen)
        assert flow.query_one("#model", Input).value == "smollm2-135m-instruct"
        await pilot.press("enter")
        assert flow.step == "stage" and flow.draft.stage == "sft"
        await pilot.press("enter")
        assert flow.query_one("#data", Input).value == "builtin:identity"
        await pilot.press("enter")
        await wait_for(pilot, lambda: flow.query_one("#presets").option_count > 1, what="the preset list")
        await pilot.press("enter")
        await wait_for(pilot, lambda: flow.config is not None, what="the resolved config")
        assert flow.step == "review" and flow.config.model.name_or_path == "smollm2-135m-instruct"
        assert flow.config.data.train == ["builtin:identity"]
        assert "name_or_path: smollm2-135m-instruct" in flow.yaml_view.text
        assert re.fullmatch(r"smollm2-135m-instruct-lora-[a-z]{3}\d\d-\d{4}", flow.query_one("#name", Input).value)
        flow.query_one("#cutoff", Input).value = "4"
        await wait_for(pilot, lambda: flow.config is None, what="the bad cutoff to be refused")
        assert "data.cutoff_len" in str(flow.errors_view.render())
        await pilot.press("ctrl+s")
        assert isinstance(app.screen, NewRunScreen) and not flow.starter.starting
        flow.query_one("#cutoff", Input).value = "64"
        flow.query_one("#max_steps", Input).value = "3"
        await wait_for(pilot, lambda: flow.config is not None and flow.config.train.max_steps == 3, what="steps")
        # picks made on the models, data and presets screens land in the flow
        app.post_message(ModelChosen("/models/my-llama"))
        app.post_message(DataChosen(["/data/a.jsonl", "/data/b.json"], "alpaca"))
        app.post_message(PresetChosen("dora"))
        await wait_for(pilot, lambda: app.draft.preset == "dora", what="the chosen preset")
        await wait_for(pilot, lambda: flow.config is not None and flow.config.adapter.method == "dora",
                       what="the re-resolved config")
        assert flow.config.model.name_or_path == "/models/my-llama"
        assert flow.config.data.train == ["/data/a.jsonl", "/data/b.json"] and flow.config.data.format == "alpaca"
        assert flow.config.train.max_steps == 3 and flow.config.data.cutoff_len == 64
        await pilot.press("escape", "escape", "escape", "escape", "escape")
        assert isinstance(app.screen, RunsScreen)


async def test_engine_signals_ask_first_and_worker_errors_open_a_modal(make_app, wait_for, runs_dir: Path,
                                                                       alive_runs: set[str],
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    from tuitune.runs import launch

    alive_runs.add("running")
    calls: list[tuple[str, bool]] = []
    def fake_stop(run_dir: Path, kill: bool = False) -> bool:
        calls.append((Path(run_dir).name, kill))
        return True

    monkeypatch.setattr(launch, "stop_run", fake_stop)

    def broken_save(run_dir: Path) -> bool:
        raise PermissionError("operation not permitted: pid 4242")

    monkeypatch.setattr(launch, "request_save", broken_save)
    app = make_app(runs_dir, attach=runs_dir / "running")
    async with app.run_test(size=(120, 40)) as pilot:
        dash = await open_dashboard(pilot, wait_for)
        await pilot.press("s")
        assert isinstance(app.screen, ConfirmDialog)
        await pilot.press("n")
        assert calls == [] and app.screen is dash
        await pilot.press("s")
        await pilot.press("y")
        await wait_for(pilot, lambda: calls == [("running", False)], what="stop_run")
        # a step can take a minute on CPU: the title says the stop is under way, not RUNNING
        await wait_for(pilot, lambda: "STOPPING" in str(dash.title_bar.render()), what="the stopping badge")
        assert "finishing step" in str(dash.title_bar.render())
        await pilot.press("k", "y")
        await wait_for(pilot, lambda: calls[-1] == ("running", True), what="kill")
        await pilot.press("c")
        await wait_for(pilot, lambda: isinstance(app.screen, ErrorModal), what="the error modal")
        assert "operation not permitted" in app.screen.details
        await pilot.press("escape")
        assert app.screen is dash and app.is_running


async def test_keys_typed_into_a_field_go_into_it_and_esc_gives_them_back(make_app, runs_dir: Path) -> None:
    """The Data path field, focused on entry, took '24' meant for the screens; now no screen opens
    in a field, the screen keys show as unavailable while one has focus, and esc leaves it."""
    from textual.widgets import Input

    app = make_app(runs_dir)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("3")
        await pilot.pause()
        data = app.screen
        assert type(data).__name__ == "DataScreen" and not isinstance(data.focused, Input)
        await pilot.press("ctrl+o", "2", "4")
        assert isinstance(data.focused, Input) and data.focused.value == "24" and app.screen is data
        shown = data.active_bindings
        assert all(shown[key].enabled is False for key in ("1", "2", "3", "4"))
        await pilot.press("escape")
        assert data.focused is None and data.active_bindings["2"].enabled
        await pilot.press("2")
        await pilot.pause()
        assert type(app.screen).__name__ == "ModelsScreen"
        assert not isinstance(app.screen.focused, Input)


async def test_command_palette_offers_every_screen_key_by_name(make_app, wait_for, runs_dir: Path) -> None:
    app = make_app(runs_dir, attach=runs_dir / "finished")
    async with app.run_test(size=(120, 40)) as pilot:
        await open_dashboard(pilot, wait_for)
        titles = [command.title for command in app.get_system_commands(app.screen)]
        assert {"Chat", "Back", "Runs", "New run", "Quit"} <= set(titles)
        assert not {"Stop & save", "Save now", "Kill"} & set(titles)  # the run has ended
        assert titles.count("Quit") == 1
        await pilot.press("ctrl+p", *"new run")
        await pilot.pause(0.3)
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, NewRunScreen), what="the new-run flow from the palette")


def test_attach_to_a_missing_run_says_where_it_looked(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import argparse

    from tuitune.cli.app import run

    code = run(argparse.Namespace(command="attach", run="nope", runs_dir=str(tmp_path)))
    assert code == 2
    err = capsys.readouterr().err
    assert f"tuitune attach: no run named 'nope' in {tmp_path} and no folder 'nope' in" in err


def offers(screen, key: str) -> bool:
    """Whether ``screen``'s footer offers ``key`` (where it does not, the key may still say why)."""
    active = screen.active_bindings.get(key)
    return active is not None and active.binding.show and active.enabled


def add_checkpoint(run_dir: Path, step: int) -> None:
    """A complete checkpoint folder as the engine leaves it (engine.checkpoints says what complete is)."""
    from engine.checkpoints import mark_complete

    folder = run_dir / "checkpoints" / f"checkpoint-{step}"
    folder.mkdir(parents=True)
    (folder / "trainer_state.json").write_text(json.dumps({"global_step": step}))
    (folder / "adapter_model.safetensors").write_bytes(b"weights")
    (folder / "optimizer.pt").write_bytes(b"moments")
    mark_complete(folder, step)


@pytest.fixture()
def resumed(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Names of the runs resume_run was called for (the real resume is covered by the engine tests)."""
    from tuitune.runs import launch

    calls: list[str] = []
    monkeypatch.setattr(launch, "resume_run", lambda run_dir: calls.append(Path(run_dir).name) or 4242)
    return calls


async def test_resume_key_on_the_runs_list_only_for_ended_runs_with_a_checkpoint(
        make_app, wait_for, runs_dir: Path, alive_runs: set[str], resumed: list[str]) -> None:
    alive_runs.add("running")
    for name in ("running", "failed", "finished"):  # stopped has none: R must not show for it
        add_checkpoint(runs_dir / name, 10)
    app = make_app(runs_dir)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_runs(pilot, wait_for)
        await wait_for(pilot, lambda: screen.scans >= 2, what="the scan with liveness")
        offered = []
        for _ in range(4):  # rows: running, failed, stopped, finished
            offered.append(offers(screen, "R"))
            await pilot.press("down")
        assert offered == [False, True, False, False]
        add_checkpoint(runs_dir / "stopped", 40)
        await wait_for(pilot, lambda: str(runs_dir / "stopped") in screen.resumable, what="the new checkpoint")
        await pilot.press("up")  # finished → stopped
        assert offers(screen, "R")
        await pilot.press("R")
        await wait_for(pilot, lambda: isinstance(app.screen, TrainScreen), what="the resumed run's dashboard")
        assert resumed == ["stopped"] and app.screen.run_dir == runs_dir / "stopped"


async def test_resume_from_the_dashboard_follows_the_new_attempt(
        make_app, wait_for, runs_dir: Path, alive_runs: set[str], resumed: list[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    from tuitune.widgets.loss_chart import LossChart

    drawn: list[tuple] = []
    set_series = LossChart.set_series
    monkeypatch.setattr(LossChart, "set_series", lambda self, train, evals=(), resumes=(): drawn.append(tuple(train))
                        or set_series(self, train, evals, resumes))
    run = runs_dir / "failed"
    add_checkpoint(run, 10)
    app = make_app(runs_dir, attach=run)
    async with app.run_test(size=(120, 40)) as pilot:
        dash = await open_dashboard(pilot, wait_for)
        await wait_for(pilot, lambda: offers(dash, "R"), what="R offered on the failed run")
        await pilot.press("R")
        await wait_for(pilot, lambda: resumed == ["failed"], what="resume_run")
        assert not offers(dash, "R") and app.screen is dash  # not twice while it starts
        # FAILED stayed on show for the minute the model loads: the title says it is resuming
        assert "RESUMING" in str(dash.title_bar.render())
        alive_runs.add("failed")  # what the resumed engine does: a new run_started, then logs
        t = 1764109000.0
        new = [{"type": "run_started", "run_name": "failed", "resumed_from_step": 10, "total_steps": 100},
               {"type": "log", "step": 15, "loss": 1.85, "total_steps": 100},
               {"type": "log", "step": 20, "loss": 1.71, "total_steps": 100}]
        with open(run / "events.jsonl", "a") as file:
            for seq, event in enumerate(new, 10):
                file.write(json.dumps({"v": 1, "seq": seq, "t": t + seq, **event}) + "\n")
        await wait_for(pilot, lambda: dash.status == "running" and dash.state.step == 20, what="the new attempt")
        await wait_for(pilot, lambda: drawn and drawn[-1][-1] == (20.0, 1.71), what="the chart going on")
        assert drawn[-1] == ((5.0, 2.1983), (10.0, 2.0112), (15.0, 1.85), (20.0, 1.71))  # step 15 logged anew
        assert dash.state.resume_steps == (10,)  # the chart marks where the resumed attempt took over
        assert "resumed at  step 10" in str(dash.stats.render()) and "RUNNING" in str(dash.title_bar.render())
        assert not offers(dash, "R") and dash.check_action("stop", ()) is True


@pytest.mark.parametrize("name, alive, checkpoint, offered", [
    ("stopped", False, True, True),
    ("stopped", False, False, False),
    ("running", False, True, True),  # lost: no final event, no engine
    ("running", True, True, False),
    ("finished", False, True, False),
])
async def test_resume_key_on_the_dashboard(make_app, wait_for, runs_dir: Path, alive_runs: set[str],
                                           resumed: list[str], name: str, alive: bool, checkpoint: bool,
                                           offered: bool) -> None:
    if alive:
        alive_runs.add(name)
    if checkpoint:
        add_checkpoint(runs_dir / name, 20)
    async with make_app(runs_dir, attach=runs_dir / name).run_test(size=(100, 30)) as pilot:
        dash = await open_dashboard(pilot, wait_for)
        await pilot.pause(0.1)
        assert dash.has_checkpoint == checkpoint and (offers(dash, "R")) == offered
        await pilot.press("R")
        await pilot.pause(0.1)
        assert resumed == ([name] if offered else [])


async def test_a_failed_resume_opens_the_error_and_offers_r_again(make_app, wait_for, runs_dir: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    from tuitune.runs import launch

    def refuse(run_dir: Path) -> int:
        raise RuntimeError(f"{run_dir} is still running")

    monkeypatch.setattr(launch, "resume_run", refuse)
    add_checkpoint(runs_dir / "stopped", 40)
    app = make_app(runs_dir, attach=runs_dir / "stopped")
    async with app.run_test(size=(100, 30)) as pilot:
        dash = await open_dashboard(pilot, wait_for)
        await wait_for(pilot, lambda: offers(dash, "R"), what="R offered")
        await pilot.press("R")
        await wait_for(pilot, lambda: isinstance(app.screen, ErrorModal), what="the error modal")
        assert "is still running" in app.screen.details
        await pilot.press("escape")
        assert app.screen is dash and offers(dash, "R") and dash.resuming is None


async def test_review_step_checks_the_data_and_the_cutoff_before_a_run_folder_exists(
        make_app, wait_for, runs_dir: Path, tmp_path: Path) -> None:
    """Bad data was found 15 s after start, a cutoff past the model's context passed unflagged, and
    'max steps' said 'from epochs' under a preset that sets them."""
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"instruction": "Hi", "output": "Hello"}) + "\n"
                   + json.dumps({"instruction": "Hi", "output": 3}) + "\n")
    app = make_app(runs_dir)
    app.draft.preset, app.draft.data = "cpu-first-try", [str(bad)]
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("n")
        flow = app.screen
        await pilot.press("ctrl+s")  # from an earlier step: review first
        await wait_for(pilot, lambda: flow.config is not None, what="the resolved config")
        assert flow.query_one("#max_steps", Input).placeholder == "30 (preset)"
        await wait_for(pilot, lambda: flow.starter.verdict is not None, timeout=60, what="the review")
        refusal = str(flow.refusal_view.render())
        assert f"data: {bad}:2" in refusal and "problems training refuses" not in refusal  # one problem: one line
        runs_before = sorted(p.name for p in runs_dir.iterdir())
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert app.screen is flow and not flow.starter.starting
        assert sorted(p.name for p in runs_dir.iterdir()) == runs_before  # no run folder was made
        app.draft.data = ["builtin:identity"]
        flow.take_draft()
        flow.query_one("#cutoff", Input).value = "100000"
        await wait_for(pilot, lambda: "above the model's context of 8192" in str(flow.refusal_view.render()),
                       timeout=60, what="the cutoff warning")
        assert "problem" not in str(flow.refusal_view.render())


def test_quitting_with_live_runs_says_they_keep_running_and_how_to_come_back(runs_dir: Path,
                                                                              alive_runs: set[str]) -> None:
    from tuitune.cli.app import still_running_line

    assert still_running_line(runs_dir) is None
    alive_runs.add("running")
    assert still_running_line(runs_dir) == \
        "running keeps training in the background: tuitune attach running to come back"
    alive_runs.add("stopped")
    assert still_running_line(runs_dir).startswith("2 runs keep training in the background (")


async def test_question_mark_lists_the_screens_keys(make_app, wait_for, runs_dir: Path) -> None:
    from textual.widgets import HelpPanel

    app = make_app(runs_dir, attach=runs_dir / "stopped")
    async with app.run_test(size=(120, 40)) as pilot:
        dash = await open_dashboard(pilot, wait_for)
        await pilot.press("question_mark")
        await pilot.pause()
        assert dash.query(HelpPanel)
        await pilot.press("question_mark")
        await pilot.pause()
        assert not dash.query(HelpPanel)


async def test_review_step_edits_any_setting_shows_the_diff_and_saves_a_preset(
        make_app, wait_for, runs_dir: Path) -> None:
    """Rank or learning rate meant leaving the flow for the Presets screen."""
    from engine.presets import user_presets_dir
    from tuitune.dialogs.run_settings import RunSettingsDialog
    from tuitune.dialogs.save_preset import SavePresetDialog

    app = make_app(runs_dir)
    app.draft.preset = "cpu-first-try"
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("n", "ctrl+s")
        flow = app.screen
        await wait_for(pilot, lambda: flow.config is not None, what="the resolved config")
        rank = flow.config.adapter.r
        await pilot.press("ctrl+t")
        dialog = app.screen
        assert isinstance(dialog, RunSettingsDialog)
        box = dialog.query_one("#field-adapter-r", Input)
        box.focus()
        await pilot.pause()
        await pilot.press("backspace", *str(rank * 2))
        await pilot.pause()
        assert f"adapter.r {rank} → {rank * 2}" in str(dialog.diff_line.render())
        await pilot.press("ctrl+s")
        assert isinstance(app.screen, SavePresetDialog)
        app.screen.name_input.value = "wide-rank"
        await pilot.press("enter")
        await wait_for(pilot, lambda: (user_presets_dir() / "wide-rank.yaml").is_file(), what="the saved preset")
        await pilot.press("ctrl+t")
        await wait_for(pilot, lambda: flow.config is not None and flow.config.adapter.r == rank * 2,
                       what="the edited rank in the run")
        assert f"adapter.r {rank} → {rank * 2}" in str(flow.edits_view.render())
        assert f"r: {rank * 2}" in flow.yaml_view.text


async def test_the_stage_step_explains_each_stage_and_filters_presets_and_data(make_app, wait_for,
                                                                               runs_dir: Path) -> None:
    app = make_app(runs_dir)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("n", "enter")
        flow = app.screen
        assert flow.step == "stage" and flow.stages.option_count == len(STAGES)
        assert "direct preference optimisation" in str(flow.stages.get_option("dpo").prompt)
        await wait_for(pilot, lambda: flow.presets.option_count > 1, what="the preset list")
        await pilot.press("down", "down", "down", "enter")  # sft, pt, rm, dpo
        assert flow.draft.stage == "dpo" and flow.step == "data"
        assert "preference pairs" in str(flow.data_help.render())
        offered = [flow.presets.get_option_at_index(i).id for i in range(flow.presets.option_count)]
        assert offered[:3] == ["cpu-first-try-dpo", "dpo-lora", "qlora-dpo"] and "kto-lora" not in offered
        assert "default" in offered
        # the stage's own preset is taken (without a GPU its CPU first try, issue 25 item 9); sft's are still offered
        assert flow.draft.preset == ("dpo-lora" if has_nvidia_gpu() else "cpu-first-try-dpo")
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: flow.config is not None, what="the resolved config")
        assert flow.config.stage == "dpo" and "stage: dpo" in flow.yaml_view.text


async def test_a_dpo_run_shows_its_reward_margin_beside_the_loss_or_as_a_view_at_80(
        make_app, wait_for, runs_dir: Path) -> None:
    events = [json.loads(line) for line in (runs_dir / "finished" / "events.jsonl").read_text().splitlines()]
    for event in events:
        if event["type"] == "log":
            event["metrics"] = {"rewards/margins": 0.05 * event["step"], "rewards/accuracies": 0.5}
    (runs_dir / "finished" / "events.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))
    app = make_app(runs_dir, attach=runs_dir / "finished")
    async with app.run_test(size=(120, 40)) as pilot:
        dash = await open_dashboard(pilot, wait_for)
        await wait_for(pilot, lambda: dash.stage_chart.display, what="the stage chart beside the loss")
        assert dash.chart.view == "loss" and dash.stage_chart.border_title == "stage metrics"
    app = make_app(runs_dir, attach=runs_dir / "finished")
    async with app.run_test(size=(80, 24)) as pilot:
        dash = await open_dashboard(pilot, wait_for)
        await pilot.pause()
        assert not dash.stage_chart.display and dash.chart.border_title == "loss · v: lr/stage"
        await pilot.press("v", "v")
        assert dash.chart.view == "stage" and dash.chart.border_title.startswith("stage metrics")


async def test_a_paused_run_with_alerts_offers_continue_and_shows_them(make_app, wait_for, runs_dir: Path,
                                                                       alive_runs: set[str],
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    from tuitune.runs import launch

    sent: list[str] = []
    monkeypatch.setattr(launch, "continue_run", lambda run_dir: sent.append("continue") or True)
    monkeypatch.setattr(launch, "pause_run", lambda run_dir: sent.append("pause") or True)
    from tests.tui.canned import add_events

    alive_runs.add("running")
    add_events(runs_dir / "running",
               {"type": "alert", "kind": "nan", "message": "the loss is not a number at step 45",
                "action": "lower train.learning_rate", "step": 45, "severity": "critical", "stops": False},
               {"type": "paused"})
    app = make_app(runs_dir)
    async with app.run_test(size=(120, 40)) as pilot:
        runs = await open_runs(pilot, wait_for)
        await wait_for(pilot, lambda: any("paused ⚠" in str(runs.table.get_row(key)[3]) for key in runs.table.rows),
                       what="the runs list marking the alert")
        app.open_dashboard(runs_dir / "running")
        dash = await open_dashboard(pilot, wait_for)
        assert dash.status == "paused" and "PAUSED" in str(dash.title_bar.render())
        assert "⚠ nan the loss is not a number" in str(dash.alerts_view.render()) and dash.alerts_view.display
        assert dash.check_action("continue_run", ()) and not dash.check_action("pause", ())
        assert dash.check_action("stop", ()) and dash.check_action("kill", ()) and not dash.check_action("save", ())
        await pilot.press("p")
        await wait_for(pilot, lambda: sent == ["continue"], what="the continue request")


async def test_a_kill_on_request_shows_as_killed_with_the_checkpoint_a_resume_uses(make_app, wait_for,
                                                                                    runs_dir: Path) -> None:
    from tests.tui.canned import add_events

    add_events(runs_dir / "running", {"type": "run_stopped", "killed": True, "step": 45, "adapter_path": None,
                                      "checkpoint_path": "checkpoints/checkpoint-40"})
    app = make_app(runs_dir, attach=runs_dir / "running")
    async with app.run_test(size=(120, 40)) as pilot:
        dash = await open_dashboard(pilot, wait_for)
        await wait_for(pilot, lambda: "KILLED" in str(dash.failure.render()), what="the killed band")
        assert (f"killed on request at step 45; nothing saved, a resume starts from "
                f"{runs_dir / 'running' / 'checkpoints' / 'checkpoint-40'}") in str(dash.failure.render())


async def test_the_new_run_flow_opens_a_llamafactory_config(make_app, wait_for, runs_dir: Path, tmp_path: Path,
                                                             demo_model_dir: Path) -> None:
    """Issue 16: the app's 'open config' takes a LLaMA-Factory training YAML: its model, data and knobs."""
    from tuitune.dialogs.open_config import OpenConfigDialog

    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "dataset_info.json").write_text(json.dumps({"tuito": {"file_name": "t.json"}}))
    (tmp_path / "data" / "t.json").write_text(json.dumps([{"instruction": "Who are you?", "output": "Tuito."}]))
    lf = tmp_path / "lf.yaml"
    lf.write_text(f"model_name_or_path: {demo_model_dir}\nstage: sft\nfinetuning_type: lora\nlora_rank: 6\n"
                  f"dataset: tuito\ndataset_dir: {tmp_path / 'data'}\ntemplate: qwen\ncutoff_len: 96\n"
                  "output_dir: saves/x\nper_device_train_batch_size: 2\nlearning_rate: 1.0e-4\n")
    app = make_app(runs_dir)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("n", "ctrl+o")
        assert isinstance(app.screen, OpenConfigDialog)
        app.screen.path_input.value = str(lf)
        await pilot.press("enter")
        flow = app.screen
        await wait_for(pilot, lambda: isinstance(flow, NewRunScreen) and flow.config is not None
                       and flow.config.adapter.r == 6, what="the imported config")
        assert flow.config.model.name_or_path == str(demo_model_dir) and flow.config.data.cutoff_len == 96
        assert flow.config.train.gradient_checkpointing is True  # LLaMA-Factory's default, kept
        assert "Factory lf.yaml" in str(flow.steps_view.render())  # long values show their end


async def test_the_log_says_it_is_being_read_not_empty_and_shows_at_once(make_app, wait_for, runs_dir: Path,
                                                                          alive_runs: set[str],
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """'(engine.log is empty)' showed for 2-5 s while the log held kilobytes: the first read shows at once."""
    import threading

    from tuitune.screens.train import TrainScreen

    gate = threading.Event()
    real = TrainScreen._log_tail

    def slow_tail(self) -> list[str]:
        gate.wait(10)  # the first read of a big log on a slow disk
        return real(self)

    monkeypatch.setattr(TrainScreen, "_log_tail", slow_tail)
    alive_runs.add("running")
    app = make_app(runs_dir, attach=runs_dir / "running")
    async with app.run_test(size=(120, 40)) as pilot:
        dash = await open_dashboard(pilot, wait_for)
        await pilot.pause(0.5)
        assert str(dash.log_view.render()) == "(reading engine.log…)"
        gate.set()
        # at once, not on the big panels' next turn (3 s)
        await wait_for(pilot, lambda: "'loss': 1.374" in str(dash.log_view.render()), timeout=2.5,
                       what="the log right away")


async def test_the_review_shows_a_python_reward_in_red_and_still_lets_the_run_start(
        make_app, wait_for, runs_dir: Path, tmp_path: Path) -> None:
    (tmp_path / "reward.py").write_text("def short(prompts, completions, **kw):\n"
                                        "    return [-len(c) / 100 for c in completions]\n")
    config = tmp_path / "rl.yaml"
    config.write_text(f"stage: grpo\nrl:\n  allow_code: true\n  rewards:\n"
                      f"    - {{kind: python, function: {tmp_path / 'reward.py'}:short}}\n")
    app = make_app(runs_dir)
    app.draft.start_from_config(config)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("n")
        flow = app.screen
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: flow.starter.verdict is not None, timeout=60, what="the review")
        shown = flow.refusal_view.render()
        line = f"this run executes your Python code as a reward: rl.rewards[0] {tmp_path / 'reward.py'}:short"
        assert line in str(shown)
        start = str(shown).index(line)
        (span,) = [span for span in shown.spans if span.start <= start < span.end]
        assert span.style.foreground.ansi == 1  # red
        assert not any(s.style.bold for s in shown.spans)  # bold red is what refuses the start: nothing does


async def test_review_step_refuses_a_mistyped_hub_id_before_a_run_folder_exists(
        make_app, wait_for, runs_dir: Path, fake_hub, monkeypatch: pytest.MonkeyPatch) -> None:
    """The new-run flow asks the Hub about a hub id not in the cache, as tuitune train does: a typo is one line."""
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)  # as read when first imported
    app = make_app(runs_dir)
    app.draft.preset, app.draft.model, app.draft.data = "cpu-first-try", "org/tiyn", ["builtin:identity"]
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("n")
        flow = app.screen
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: flow.starter.verdict is not None, timeout=60, what="the review")
        assert "no model org/tiyn on the Hub" in str(flow.refusal_view.render())
        runs_before = sorted(p.name for p in runs_dir.iterdir())
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert app.screen is flow and not flow.starter.starting
        assert sorted(p.name for p in runs_dir.iterdir()) == runs_before  # no run folder was made
