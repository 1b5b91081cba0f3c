"""The dashboard's widgets on their own: chart thinning, system panel and stats text."""

from __future__ import annotations

import pytest

from tuitune.runs.state import RunState
from tuitune.widgets.loss_chart import thin
from tuitune.widgets.run_stats import render_stats
from tuitune.widgets.system_panel import render_system


def test_thin_keeps_spikes_ends_and_order_within_budget() -> None:
    points = [(float(i), 1.0) for i in range(5000)]
    points[1234] = (1234.0, 9.0)
    points[4321] = (4321.0, -3.0)
    out = thin(points, 100)
    assert len(out) <= 201
    assert (1234.0, 9.0) in out and (4321.0, -3.0) in out
    assert out[0] == points[0] and out[-1] == points[-1]
    assert [x for x, _ in out] == sorted(x for x, _ in out)
    assert thin(points[:150], 100) == points[:150]


def test_system_panel_text_with_and_without_gpus() -> None:
    assert "no GPU: no NVIDIA driver" in render_system({"gpus": [], "gpu_note": "no NVIDIA driver", "rss_bytes": 2**30,
                                                        "cpu_pct": 99.5}).plain
    gpu = {"index": 1, "name": "NVIDIA A100", "mem_used_bytes": 40 * 2**30, "mem_total_bytes": 80 * 2**30,
           "util_pct": 88, "temp_c": 71}
    text = render_system({"gpus": [gpu, {**gpu, "index": 2}], "rss_bytes": 3 * 2**30, "cpu_pct": 101.0,
                          "host_mem_used_bytes": 8 * 2**30, "host_mem_total_bytes": 64 * 2**30}).plain
    assert text.count("NVIDIA A100") == 2 and "GPU2" in text
    assert "40.0 GiB/80.0 GiB" in text and "util 88%  temp 71°C" in text
    assert "RSS 3.0 GiB  CPU 101%" in text and "RAM 8.0 GiB/64.0 GiB" in text
    assert "waiting" in render_system(None).plain


def test_system_panel_of_an_ended_run_is_history() -> None:
    """A failed run said 'waiting for the first system sample…' for ever, and a finished one showed
    its dead trainer's RSS and CPU as if live."""
    sample = {"gpus": [], "gpu_note": "no NVIDIA driver", "rss_bytes": 2**30, "cpu_pct": 99.5}
    assert render_system(None, live=False).plain == "no system sample was recorded"
    ended = render_system(sample, live=False)
    assert ended.plain.startswith("last sample, before the run ended:") and "RSS 1.0 GiB" in ended.plain
    assert all("dim" in str(span.style) for span in ended.spans if "RSS" in ended.plain[span.start:span.end])


def test_stats_show_progress_eta_and_end_state() -> None:
    state = RunState(step=30, total_steps=120, eta_s=95.0, loss=1.2345, lr=1e-4, epoch=0.75, started_t=0.0, last_t=61.0)
    live = render_stats(state, "running", width=40).plain
    assert "step 30/120  25%  ETA 1m35s" in live and "loss        1.234" in live and "elapsed     1m01s" in live
    assert "ETA stopped" in render_stats(state, "stopped").plain


def test_smoothed_loss_is_a_debiased_moving_average() -> None:
    from tuitune.widgets.loss_chart import smoothed

    points = [(1.0, 2.0), (2.0, 1.0), (3.0, 1.0)]
    # raw averages 1.0, 1.0, 1.0 (the first pulled towards 0), divided by 1 - 0.5**n
    assert smoothed(points, 0.5) == pytest.approx([(1.0, 2.0), (2.0, 1.0 / 0.75), (3.0, 1.0 / 0.875)])
    assert smoothed([], 0.5) == []


def test_stage_view_prefers_the_reward_margin_and_accuracy() -> None:
    from tuitune.widgets.loss_chart import stage_metrics

    series = {"logps/chosen": [(1.0, -3.0)], "rewards/accuracies": [(1.0, 0.5)], "rewards/margins": [(1.0, 0.1)],
              "rewards/chosen": [(1.0, 0.2)], "zeta": [(1.0, 1.0)]}
    assert stage_metrics(series) == ["rewards/margins", "rewards/accuracies"]
    assert stage_metrics({"kl": [(1.0, 0.1)], "zeta": [(1.0, 1.0)], "alpha": [(1.0, 2.0)]}) == ["kl", "alpha"]
    assert stage_metrics({}) == []


def test_state_keeps_lr_stage_metrics_and_resume_marks() -> None:
    from tuitune.runs.state import RunState, fold

    events = [{"type": "run_started", "total_steps": 4},
              {"type": "log", "step": 1, "loss": 0.7, "lr": 1e-4, "metrics": {"rewards/margins": 0.1, "bad": "x"}},
              {"type": "log", "step": 2, "loss": 0.6, "lr": 2e-4, "metrics": {"rewards/margins": 0.3}},
              {"type": "run_stopped", "step": 2},
              {"type": "run_started", "resumed_from_step": 1, "total_steps": 4},
              {"type": "log", "step": 2, "loss": 0.65, "lr": 2e-4, "metrics": {"rewards/margins": 0.25}}]
    state = fold(RunState(), events)
    assert state.lr_series == ((1.0, 1e-4), (2.0, 2e-4))
    assert state.metric_series == {"rewards/margins": ((1.0, 0.1), (2.0, 0.25))}
    assert state.resume_steps == (1,)


def test_system_panel_gives_each_gpu_one_line_when_compact() -> None:
    """Eight GPUs at 80x24: one line each, with memory, use and temperature."""
    gpu = {"name": "NVIDIA H100", "mem_used_bytes": 61 * 2**30, "mem_total_bytes": 80 * 2**30, "util_pct": 97,
           "temp_c": 71}
    text = render_system({"gpus": [{**gpu, "index": i} for i in range(8)], "rss_bytes": 2**30, "cpu_pct": 9.0},
                         width=30, compact=True).plain
    lines = text.splitlines()
    assert len(lines) == 10 and all(len(line) <= 30 for line in lines), text
    assert lines[7].startswith("GPU7 ") and lines[7].endswith("61.0G/80.0G  97% 71°C")
