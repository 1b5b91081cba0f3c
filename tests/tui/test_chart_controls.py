"""The chart's controls on the dashboard of a canned run: zoom, pan and follow along the steps, log y, the
cursor's reading, the metric list, the smoothing weight; and the dashboard at 60x20."""

from __future__ import annotations

import math
from pathlib import Path

from textual import events

from tests.tui.canned import add_events
from tuitune.screens.train import TrainScreen
from tuitune.widgets.loss_chart import LossChart, smoothed


async def open_dashboard(pilot, wait_for):
    await wait_for(pilot, lambda: isinstance(pilot.app.screen, TrainScreen), what="the dashboard")
    dash = pilot.app.screen
    await wait_for(pilot, lambda: dash.state.events_seen > 0 and dash.chart.redraws > 0, what="the run's history")
    dash.repaint_if_due(force=True)
    await pilot.pause()
    return dash, dash.query_one("#chart", LossChart)


async def test_zoom_pan_follow_log_and_cursor(make_app, wait_for, runs_dir: Path, alive_runs: set[str]) -> None:
    alive_runs.add("running")  # logs every 5 steps up to 45
    app = make_app(runs_dir, attach=runs_dir / "running")
    async with app.run_test(size=(80, 24)) as pilot:
        dash, chart = await open_dashboard(pilot, wait_for)
        assert app.focused is chart and chart.limits == (0.0, 45.0) and chart.following
        await pilot.press("plus", "plus")  # zoom in: the latest steps, still following
        low, high = chart.limits
        assert high == 45.0 and math.isclose(high - low, 45 / 1.5 / 1.5) and chart.following
        assert "zoom" in str(chart.border_title)
        await pilot.press("less_than_sign")  # pan back: the view stays put when new steps come
        panned = chart.limits
        assert panned[1] < 45.0 and not chart.following and "f: follow" in str(chart.border_title)
        add_events(runs_dir / "running", {"type": "log", "step": 50, "loss": 1.3, "lr": 1e-4})
        await wait_for(pilot, lambda: dash.state.step == 50, what="step 50")
        dash.paint_chart()
        assert chart.limits == panned
        await pilot.press("f")  # follow again: the view jumps to the latest step and keeps its zoom
        assert chart.following and chart.limits[1] == 50.0 and math.isclose(chart.limits[1] - chart.limits[0], 20.0)
        add_events(runs_dir / "running", {"type": "log", "step": 55, "loss": 1.25, "lr": 1e-4})
        await wait_for(pilot, lambda: dash.state.step == 55, what="step 55")
        dash.paint_chart()
        assert chart.limits[1] == 55.0
        await pilot.press("minus", "minus", "minus")  # zoomed out past everything: all steps from 0
        assert chart.limits == (0.0, 55.0) and chart.span is None

        await pilot.press("left_square_bracket")  # the cursor starts at the latest step and reads every line
        assert chart.cursor == 55.0
        await pilot.press("left_square_bracket")
        smooth = dict(smoothed(dash.state.train_series, chart.smoothing))
        assert chart.cursor == 50.0 and chart.values_at(50.0) == {"train": 1.3, "smoothed": smooth[50.0]}
        assert chart.reading.visible and str(chart.reading.render()).startswith(
            f"step 50  train 1.3  smoothed {smooth[50.0]:.4g}")
        await pilot.press("i")
        assert chart.cursor is None and not chart.has_class("-cursor")

        await pilot.press("l")  # log scale: the plot's y is log10 of the loss, labelled with the loss
        plot = chart.plot_widget
        assert chart.log_y and math.isclose(plot._y_max, math.log10(max(y for _, y in dash.state.train_series)))
        await pilot.press("l")
        assert not chart.log_y


async def test_an_sft_run_offers_no_stage_view_of_the_trainers_speed_figures(
        make_app, wait_for, runs_dir: Path) -> None:
    """After a resume the SFT stage view charted train_runtime and train_tokens_per_second: older engines
    wrote the Trainer's own figures under a log event's metrics."""
    add_events(runs_dir / "stopped", {"type": "run_started", "run_name": "stopped", "resumed_from_step": 40,
                                      "total_steps": 200},
               *({"type": "log", "step": step, "loss": 1.2, "metrics": {"train_runtime": step / 10,
                                                                      "train_tokens_per_second": 900.0 + step}}
                 for step in (45, 50)))
    app = make_app(runs_dir, attach=runs_dir / "stopped")
    async with app.run_test(size=(80, 24)) as pilot:
        dash, chart = await open_dashboard(pilot, wait_for)
        await wait_for(pilot, lambda: dash.state.step == 50, what="the resumed attempt")
        dash.paint_chart()
        assert dash.state.metric_series == {} and chart._offered() == ["loss", "lr"]
        await pilot.press("v", "v")
        assert chart.view == "loss"
        await pilot.press("m")
        assert "train_runtime" not in [str(chart.picker.get_option_at_index(i).prompt)
                                       for i in range(chart.picker.option_count)]
        await pilot.press("escape", "escape")  # the list closes, then the dashboard goes back
        assert not isinstance(app.screen, TrainScreen)


async def test_the_wheel_zooms_the_steps_under_the_mouse(make_app, wait_for, runs_dir: Path) -> None:
    app = make_app(runs_dir, attach=runs_dir / "finished")
    async with app.run_test(size=(80, 24)) as pilot:
        _, chart = await open_dashboard(pilot, wait_for)
        first = chart.limits
        canvas = chart.plot_widget.query_one("#plot")
        x, y = canvas.region.x + canvas.region.width // 4, canvas.region.y + 2
        # a wheel turn over the plot, as the terminal sends it (Pilot has no wheel of its own)
        canvas.post_message(events.MouseScrollDown(canvas, x - canvas.region.x, y - canvas.region.y, 0, 1, 0,
                                                   False, False, False, screen_x=x, screen_y=y))
        await pilot.pause()
        low, high = chart.limits
        assert high - low < first[1] - first[0] and low > 0 and high < first[1]  # around the mouse, not the end
        canvas.post_message(events.MouseScrollLeft(canvas, x - canvas.region.x, y - canvas.region.y, 0, 0, 0,
                                                   False, False, False, screen_x=x, screen_y=y))
        await pilot.pause()
        assert chart.limits[0] < low and math.isclose(chart.limits[1] - chart.limits[0], high - low)  # panned
        low, high = chart.limits
        await pilot.click(offset=(x, y))  # a click puts the cursor on the nearest step
        assert chart.cursor is not None and low <= chart.cursor <= high


async def test_any_logged_metric_and_the_smoothing_weight(make_app, wait_for, runs_dir: Path) -> None:
    app = make_app(runs_dir, attach=runs_dir / "finished")
    async with app.run_test(size=(80, 24)) as pilot:
        dash, chart = await open_dashboard(pilot, wait_for)
        await pilot.press("m")
        assert chart.has_class("-picking") and app.focused is chart.picker
        assert [str(chart.picker.get_option_at_index(i).prompt) for i in range(chart.picker.option_count)] == [
            "loss", "lr", "grad_norm", "tokens_per_s"]
        await pilot.press("down", "down", "enter")  # grad_norm
        assert chart.view == "metric" and chart.metric == "grad_norm" and app.focused is chart
        assert str(chart.border_title).startswith("grad_norm")
        assert chart._lines["grad_norm"] == dash.state.log_series["grad_norm"]
        await pilot.press("m", "escape")  # esc closes the list and stays on the dashboard
        assert not chart.has_class("-picking") and isinstance(app.screen, TrainScreen)

        await pilot.press("m", "home", "enter")  # back to the loss
        assert chart.view == "loss"
        await pilot.press("w")  # 0.8 → 0.9: the smoothed line is TensorBoard's at 0.9
        assert chart.smoothing == 0.9 and "smooth 0.9" in str(chart.border_title)
        assert chart._lines["smoothed"] == smoothed(dash.state.train_series, 0.9)
        await pilot.press("w", "w", "w")  # 0.95, 0.99, then none: the raw loss alone
        assert chart.smoothing == 0.0 and set(chart._lines) == {"train", "eval"}
        await pilot.press("W", "W")  # back round: 0.99, 0.95
        assert chart.smoothing == 0.95


def settled(wait_for, *keys: str):
    async def run_before(pilot) -> None:
        await open_dashboard(pilot, wait_for)
        await wait_for(pilot, lambda: pilot.app.screen.log_lines, what="the log")
        pilot.app.screen.repaint_if_due(force=True)
        await pilot.pause()
        await pilot.press(*keys)
        await pilot.pause()

    return run_before


def test_dashboard_at_60x20(snap_compare, make_app, wait_for, runs_dir: Path, alive_runs: set[str]) -> None:
    """You should see the running run's dashboard at 60x20 with its footer (Stop & save … esc Back, no ^p
    palette) on the last row, and the chart's steps labelled 0 20 40, apart (they read 0.00.20.40.60.1.0)."""
    alive_runs.add("running")
    app = make_app(runs_dir, attach=runs_dir / "running")
    assert snap_compare(app, terminal_size=(60, 20), run_before=settled(wait_for))


def test_dashboard_zoomed_with_a_cursor(snap_compare, make_app, wait_for, runs_dir: Path,
                                        alive_runs: set[str]) -> None:
    """You should see the loss over steps 25-45 on a log scale (title: loss · v: lr · log · zoom), a white
    line at step 40 and under the plot its reading: step 40  train 1.42  smoothed 1.601"""
    alive_runs.add("running")
    app = make_app(runs_dir, attach=runs_dir / "running")
    assert snap_compare(app, terminal_size=(80, 24), run_before=settled(
        wait_for, "plus", "plus", "l", "left_square_bracket", "left_square_bracket"))


async def test_the_controls_work_on_lines_pushed_by_another_screen() -> None:
    """Compare pushes one line per run with ``set_lines``: zoom, the cursor and the smoothing weight work on them."""
    from textual.app import App, ComposeResult

    class OneChart(App):
        picked: list[str] = []

        def compose(self) -> ComposeResult:
            yield LossChart(id="chart", cycles=False)

        def on_loss_chart_metric_picked(self, message: LossChart.MetricPicked) -> None:
            self.picked.append(message.name)

    a = [(float(s), 3.0 - s / 50) for s in range(1, 101)]
    b = [(float(s), 2.5 - s / 80) for s in range(1, 61)]
    app = OneChart()
    async with app.run_test(size=(80, 20)) as pilot:
        chart = app.query_one(LossChart)
        chart.focus()
        chart.set_lines({"run-a": a, "run-b": b}, smooth=True)
        await pilot.pause()
        assert chart.limits == (0.0, 100.0)
        assert chart._lines["run-a (smoothed)"] == smoothed(a, chart.smoothing)
        await pilot.press("plus", "left_square_bracket")
        low, high = chart.limits
        assert high == 100.0 and math.isclose(high - low, 100 / 1.5) and chart.cursor == 100.0
        assert set(chart.values_at(60.0)) == {"run-a", "run-a (smoothed)", "run-b", "run-b (smoothed)"}
        assert "run-b" not in chart.values_at(0.5)  # no value before a line's first point
        await pilot.press("w")
        assert chart._lines["run-b (smoothed)"] == smoothed(b, 0.9)
        chart.offer_metrics(["loss", "eval_loss", "rewards/margins"])
        await pilot.press("m", "end", "enter")  # the owner hears which, and pushes that metric's lines
        assert app.picked == ["rewards/margins"] and chart.metric == "rewards/margins"


async def test_a_footer_wider_than_the_screen_is_cut_not_blank(make_app, runs_dir: Path) -> None:
    """At 60 columns a footer with more keys than room showed only a scrollbar's thumb (the app's one-cell
    horizontal scrollbar took its only row): it shows its first keys, cut at the edge."""
    app = make_app(runs_dir)
    async with app.run_test(size=(60, 20)) as pilot:
        await pilot.press("4")  # Presets: its keys take more than 60 columns
        await pilot.pause()
        last_row = "".join(segment.text for segment in app.screen._compositor.render_strips()[-1])
        assert last_row.lstrip().startswith("^s Save as"), last_row
