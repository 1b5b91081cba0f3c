"""The watchdog's rules on events written for the test: NaN, spike, gradient explosion, stall, hardware."""

from __future__ import annotations

from engine.health.watchdog import REPEAT_STEPS, STALL_FLOOR_S, Watchdog


def logs(dog: Watchdog, losses: list[float | None], start: int = 1, t0: float = 1000.0, dt: float = 2.0,
         norms: list[float] | None = None) -> list:
    alerts = []
    for i, loss in enumerate(losses):
        event = {"type": "log", "step": start + i, "t": t0 + dt * i, "loss": loss}
        if norms is not None:
            event["grad_norm"] = norms[i]
        alerts += dog.feed(event)
    return alerts


def test_a_loss_that_is_not_a_number_is_critical_once_per_window() -> None:
    dog = Watchdog()
    alerts = logs(dog, [2.0, 1.9, None, None])  # NaN and inf are written as null
    assert [(a.kind, a.step, a.severity) for a in alerts] == [("nan", 3, "critical")]
    assert logs(dog, [None], start=3 + REPEAT_STEPS)[0].kind == "nan"


def test_a_spike_against_the_recent_median_and_not_the_first_noisy_steps() -> None:
    dog = Watchdog()
    assert logs(dog, [9.0, 2.0, 1.9, 1.8]) == []  # too little history to call anything a spike
    assert logs(dog, [1.7, 1.7, 1.6], start=5) == []
    spike = logs(dog, [5.0], start=8)
    assert [a.kind for a in spike] == ["spike"] and "recent median" in spike[0].message


def test_no_spike_for_an_rl_loss_that_sits_near_zero_and_changes_sign() -> None:
    dog = Watchdog()
    dog.feed({"type": "run_started", "stage": "grpo"})
    assert logs(dog, [0.08, 0.05, 0.1, 0.07, 0.09, 0.19, 0.6]) == []
    dog.feed({"type": "run_started", "stage": "dpo"})
    assert [a.kind for a in logs(dog, [0.7, 0.69, 0.68, 0.68, 0.67, 3.0])] == ["spike"]


def test_exploding_and_non_finite_gradient_norms() -> None:
    dog = Watchdog()
    assert logs(dog, [1.0] * 6, norms=[0.5] * 6) == []
    alerts = logs(dog, [1.0], start=7, norms=[50.0])
    assert [a.kind for a in alerts] == ["grad_norm"] and "100x" in alerts[0].message


def test_a_stall_is_no_step_for_far_longer_than_usual_but_not_while_paused() -> None:
    dog = Watchdog()
    logs(dog, [1.0, 1.0, 1.0], t0=1000.0, dt=2.0)  # a step every 2 s: the floor decides
    assert dog.stalled(1004.0 + STALL_FLOOR_S - 1) is None
    stall = dog.stalled(1004.0 + STALL_FLOOR_S + 1)
    assert stall is not None and stall.kind == "stall" and "after step 3" in stall.message
    assert dog.stalled(1004.0 + STALL_FLOOR_S + 5) is None  # said once
    dog.feed({"type": "paused", "t": 1005.0})
    assert dog.stalled(1004.0 + 10 * STALL_FLOOR_S) is None
    dog.feed({"type": "continued", "t": 2000.0})
    assert dog.stalled(2000.0 + STALL_FLOOR_S - 1) is None  # the pause is not counted as a slow step


def test_gpu_memory_temperature_and_host_memory() -> None:
    dog = Watchdog()
    gpu = {"index": 0, "mem_used_bytes": 79, "mem_total_bytes": 80, "temp_c": 90}
    alerts = dog.feed({"type": "system", "gpus": [gpu], "host_mem_used_bytes": 97, "host_mem_total_bytes": 100})
    assert sorted(a.kind for a in alerts) == ["gpu_memory", "gpu_temperature", "host_memory"]
    assert dog.feed({"type": "system", "gpus": [gpu]}) == []  # still the same: not said again
    dog.feed({"type": "system", "gpus": [{**gpu, "mem_used_bytes": 10, "temp_c": 50}]})
    assert [a.kind for a in dog.feed({"type": "system", "gpus": [gpu]})] == ["gpu_memory", "gpu_temperature"]


def test_an_rl_run_whose_answers_all_score_alike_is_told_it_learns_nothing() -> None:
    """Rewards all 0, loss 0 and grad norm 0 for three steps, and no word: a new user thought it was training."""
    dog = Watchdog()
    dog.feed({"type": "run_started", "stage": "grpo"})

    def flat(step: int, share: float) -> list:
        return dog.feed({"type": "log", "step": step, "t": 1000.0 + step, "loss": 0.0, "grad_norm": 0.0,
                         "metrics": {"frac_reward_zero_std": share, "reward": 0.0}})

    assert flat(1, 1.0) + flat(2, 1.0) + flat(3, 0.5) + flat(4, 1.0) + flat(5, 1.0) == []  # a step with signal resets
    [alert] = flat(6, 1.0)
    assert (alert.kind, alert.step, alert.severity) == ("no_signal", 6, "critical")
    assert "every answer of every prompt scored alike" in alert.message and "rl.rewards" in alert.action
    assert flat(7, 1.0) == []  # said once, not at every step
