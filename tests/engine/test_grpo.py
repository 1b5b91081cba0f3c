"""The RL stages (grpo, rloo) on the real engine processes.

The demo model (SmolLM2-135M) learns a length reward it already earns sometimes: its answers run from a
few words to past the limit, so the group comparison has a signal, and the reward mean rises over six
steps. The tiny model checks the rest quickly: a reward model trained by an rm run in the test scores
the answers, RLOO with a user's Python reward trains and resumes from its checkpoint, and a Python reward
that raises ends the run with its traceback's last line and the record it was scoring.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from engine.protocol import read_events
from tuitune.runs.launch import is_alive, request_save, stop_run

SHORT = {"batch_size": 2, "logging_steps": 1, "save_steps": 100, "warmup_ratio": 0.0, "scheduler": "constant"}
PROMPTS = [{"prompt": "What is 2 plus 2?", "answer": "4"}, {"prompt": "Name a color.", "answer": "Blue"},
           {"prompt": "Say hello.", "answer": "Hello"}, {"prompt": "中国的首都是哪里？", "answer": "北京"}]
PAIRS = [{"prompt": "What is 2 plus 2?", "chosen": "4.", "rejected": "I don't know."},
         {"prompt": "Name a color.", "chosen": "Blue.", "rejected": "I don't know."}]


ANYTIME = frozenset({"system", "phase", "warning", "alert"})
"""Events that may come at any time; alerts too: the watchdog may call a GRPO loss near 0 a spike."""


def write_lines(path: Path, records: list[Any]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    return path


def make_run(eng, parent: Path, model: Path | str, data: Path | str, stage: str, name: str = "run",
             **sections: dict[str, Any]) -> Path:
    """eng.make_run's short run, for ``stage``."""
    run_dir = eng.make_run(parent, model, data, name=name, **sections)
    config = yaml.safe_load((run_dir / "config.yaml").read_text())
    (run_dir / "config.yaml").write_text(yaml.safe_dump({"stage": stage, **config}))
    return run_dir


def logs(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e for e in events if e["type"] == "log"]


def test_grpo_reward_mean_rises_on_the_demo_model_and_the_adapter_loads_back(eng, demo_model_dir: Path,
                                                                             tmp_path: Path) -> None:
    # builtin:identity (instruction data) read as prompts; the length reward needs no reference answer
    run_dir = make_run(eng, tmp_path, "smollm2-135m-instruct", "builtin:identity", stage="grpo",
                       train={**SHORT, "max_steps": 6, "batch_size": 4, "learning_rate": 1e-3},
                       rl={"max_completion_length": 24, "rewards": [{"kind": "length", "max_words": 8}]})
    events = eng.run_to_end(run_dir)

    assert eng.kinds(events, ANYTIME) == (["run_started"] + ["log", "samples"] * 6
                                          + ["checkpoint", "run_finished"]), events[-1]
    rewards = [e["metrics"]["reward"] for e in logs(events)]
    # Untrained, most answers run past 8 words (about -0.7); trained, they get shorter. Measured here: -0.62 over
    # the first three steps, -0.28 over the last three (seed 7, earlier: -0.94, -0.50); 2 prompts a step were too
    # noisy (seed 7: -0.70, -0.65).
    assert sum(rewards[3:]) / 3 > sum(rewards[:3]) / 3 + 0.1, rewards
    last = logs(events)[-1]["metrics"]
    for name in ("reward_std", "rewards/length/mean", "rewards/length/std", "completions/mean_length",
                 "completions/clipped_ratio"):
        assert name in last, last
    assert last["completions/mean_length"] <= 24
    phases = [e["message"] for e in events if e["type"] == "phase"]
    assert "rewards: length x1" in phases and any("answers sampled by the trainer (model.generate); 4 answers of up "
                                                  "to 24 tokens to each of 4 prompts a step" in m for m in phases)

    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(demo_model_dir), run_dir / "adapter")
    assert max(float(p.abs().max()) for n, p in model.named_parameters() if "lora_B" in n) > 0


def test_grpo_scored_by_an_rm_runs_adapter_logs_that_reward_and_the_kl(eng, tiny_model_dir: Path,
                                                                        tmp_path: Path) -> None:
    rm_dir = make_run(eng, tmp_path, tiny_model_dir, write_lines(tmp_path / "pairs.jsonl", PAIRS), stage="rm",
                      name="rm", train={**SHORT, "max_steps": 2})
    assert eng.run_to_end(rm_dir)[-1]["type"] == "run_finished"

    run_dir = make_run(eng, tmp_path, tiny_model_dir, write_lines(tmp_path / "prompts.jsonl", PROMPTS),
                       stage="grpo", train={**SHORT, "max_steps": 2},
                       rl={"max_completion_length": 8, "beta": 0.04,
                           "rewards": [{"kind": "reward_model", "path": str(rm_dir)},
                                       {"kind": "exact_match", "weight": 2.0}]})
    events = eng.run_to_end(run_dir)

    assert eng.kinds(events, ANYTIME) == ["run_started", "log", "samples", "log", "samples", "checkpoint",
                                           "run_finished"], events[-1]
    for log in logs(events):
        metrics = log["metrics"]
        assert {"rewards/reward_model/mean", "rewards/exact_match/mean", "kl", "reward"} <= set(metrics), metrics
        # the run's reward is the weighted sum of its rewards' means
        assert metrics["reward"] == pytest.approx(metrics["rewards/reward_model/mean"]
                                                  + 2 * metrics["rewards/exact_match/mean"], abs=1e-4)
    assert any(log["metrics"]["rewards/reward_model/mean"] != 0 for log in logs(events))
    assert "rewards: reward_model x1, exact_match x2" in [e["message"] for e in events if e["type"] == "phase"]
    assert (run_dir / "adapter" / "adapter_model.safetensors").is_file()
    assert not any(e["type"] == "warning" and e.get("code") == "default_reward" for e in events)
    samples = [e for e in events if e["type"] == "samples"]
    assert [e["step"] for e in samples] == [1, 2] and len(samples[-1]["samples"]) == 8
    assert set(samples[-1]["samples"][0]["rewards"]) == {"reward_model", "exact_match"}
    # A reward model scores answers: it is refused where a model must generate (chat), or be served (GGUF).
    out, err = eng.cli("chat", str(rm_dir), "--once", "Hi").communicate(timeout=120)
    assert "trained a reward model (stage rm): it scores answers and does not generate" in out + err, (out, err)
    exported = eng.cli("export", str(rm_dir), "--gguf", "q8_0", "--to", str(tmp_path / "gguf"))
    out, err = exported.communicate(timeout=120)
    assert exported.returncode != 0 and "has no GGUF or Ollama form" in out + err, (out, err)


REWARD_FILE = '''
def short(prompts, completions, references, **kw):
    """1 for answers of under 20 characters."""
    return [float(len(c) < 20) for c in completions]


def picky(prompts, completions, references, **kw):
    return [1 / 0 if "color" in p[-1]["content"] else 0.0 for p in prompts]


def hangs(prompts, completions, references, **kw):
    import time
    while True:
        time.sleep(1)


def nan(prompts, completions, references, **kw):
    return [float("nan")] * len(completions)


def flat(prompts, completions, references, **kw):
    return [0.0] * len(completions)
'''


def test_rloo_with_a_python_reward_saves_now_stops_and_resumes_from_the_checkpoint(eng, tiny_model_dir: Path,
                                                                                   tmp_path: Path) -> None:
    (tmp_path / "reward.py").write_text(REWARD_FILE, encoding="utf-8")
    run_dir = make_run(eng, tmp_path, tiny_model_dir, write_lines(tmp_path / "prompts.jsonl", PROMPTS),
                       stage="rloo", train={**SHORT, "max_steps": 1000},
                       rl={"max_completion_length": 8, "num_generations": 2, "allow_code": True,
                           "rewards": [{"kind": "python", "function": f"{tmp_path / 'reward.py'}:short"},
                                       {"kind": "regex", "pattern": "^[A-Z]", "weight": 0.5}]})
    eng.launch(run_dir)
    eng.wait_for(run_dir, eng.first("log"), what="the first log event")
    assert request_save(run_dir)  # SIGUSR1: a checkpoint at the next step end, training goes on
    saved = eng.wait_for(run_dir, eng.first("checkpoint"), what="the requested checkpoint")
    assert (run_dir / saved["path"] / "tuitune-complete.json").is_file()
    assert stop_run(run_dir)  # SIGTERM: checkpoint and adapter at the end of the step, then run_stopped
    stopped = eng.wait_for(run_dir, eng.terminal(), what="run_stopped")
    assert stopped["type"] == "run_stopped" and stopped["step"] >= saved["step"], stopped
    assert (run_dir / "adapter" / "adapter_model.safetensors").is_file()
    eng.wait_for(run_dir, lambda events: not is_alive(run_dir), what="the attempt to end")
    first = logs(read_events(run_dir))[-1]["metrics"]
    assert {"rewards/python_short/mean", "rewards/regex/mean", "reward"} <= set(first), first

    config = yaml.safe_load((run_dir / "config.yaml").read_text())
    config["train"]["max_steps"] = stopped["step"] + 1
    (run_dir / "config.yaml").write_text(yaml.safe_dump(config))
    after = [e for e in eng.run_to_end(run_dir, "--resume") if e["seq"] > stopped["seq"]]
    assert eng.kinds(after, ANYTIME) == ["run_started", "log", "samples", "checkpoint", "run_finished"], after[-1]
    assert after[[e["type"] for e in after].index("run_started")]["resumed_from_step"] == stopped["step"]
    assert [e["step"] for e in logs(after)] == [stopped["step"] + 1]


def test_a_python_reward_that_raises_fails_the_run_with_its_last_line_and_the_record(eng, tiny_model_dir: Path,
                                                                                    tmp_path: Path) -> None:
    (tmp_path / "reward.py").write_text(REWARD_FILE, encoding="utf-8")
    data = write_lines(tmp_path / "prompts.jsonl", PROMPTS)
    run_dir = make_run(eng, tmp_path, tiny_model_dir, data, stage="grpo", train={**SHORT, "max_steps": 3},
                       rl={"max_completion_length": 4, "num_generations": 2, "allow_code": True,
                           "rewards": [{"kind": "python", "function": f"{tmp_path / 'reward.py'}:picky"}]})
    events = eng.run_to_end(run_dir)

    failed = events[-1]
    assert failed["type"] == "run_failed", failed
    assert failed["cause"] == (f"RewardError: reward python_picky raised ZeroDivisionError: division by zero "
                               f"(reward.py line 8, in <listcomp>) on the answer to {data}:2 (record 1)"), failed


def test_a_reward_that_hangs_or_is_not_a_number_fails_the_run_and_answers_all_alike_raise_an_alert(
        eng, tiny_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A python reward that never returned hung the run for ever with no alert; one that returned NaN let the run
    'finish' having trained nothing; rewards all alike (all 0: loss 0, grad norm 0) said nothing either. Three runs
    at once, one torch thread each."""
    (tmp_path / "reward.py").write_text(REWARD_FILE, encoding="utf-8")
    data = write_lines(tmp_path / "prompts.jsonl", PROMPTS)
    runs = {name: make_run(eng, tmp_path, tiny_model_dir, data, stage="grpo", name=name,
                           train={**SHORT, "max_steps": 4},
                           rl={"max_completion_length": 4, "num_generations": 2, "allow_code": True,
                               "reward_time_limit_s": 2,
                               "rewards": [{"kind": "python", "function": f"{tmp_path / 'reward.py'}:{name}"}]})
            for name in ("hangs", "nan", "flat")}
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    for proc in [eng.launch(run_dir) for run_dir in runs.values()]:
        proc.wait(timeout=240)
    hung, nan, flat = (read_events(run_dir)[-1] for run_dir in runs.values())
    assert hung["type"] == "run_failed" and hung["cause"].startswith(
        f"RewardError: reward python_hangs took longer than rl.reward_time_limit_s (2 s) scoring the answer to {data}:"
    ), hung
    assert nan["type"] == "run_failed" and "reward python_nan returned nan for the answer to" in nan["cause"], nan
    assert flat["type"] == "run_finished", flat
    alerts = [e for e in read_events(runs["flat"]) if e["type"] == "alert"]
    assert [(a["kind"], a["step"]) for a in alerts] == [("no_signal", 3)], alerts


def test_an_alert_of_the_last_logged_step_comes_before_the_end_and_stop_on_stops_the_trainer_itself(
        eng, tiny_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The supervisor polled the events once a second, so an alert of the last steps was written after
    ``run_finished`` (or not at all once the trainer had exited): the trainer raises its own alerts now, each right
    after the log it comes from. Rewards all alike: no_signal at step 3, the last step of one run; the other,
    with ``train.stop_on: [no_signal]``, stops itself there, saving first. Two runs at once, one torch thread each."""
    (tmp_path / "reward.py").write_text(REWARD_FILE, encoding="utf-8")
    data = write_lines(tmp_path / "prompts.jsonl", PROMPTS)
    rl = {"max_completion_length": 4, "num_generations": 2, "allow_code": True,
          "rewards": [{"kind": "python", "function": f"{tmp_path / 'reward.py'}:flat"}]}
    last = make_run(eng, tmp_path, tiny_model_dir, data, stage="grpo", name="last", train={**SHORT, "max_steps": 3},
                    rl=rl)
    stops = make_run(eng, tmp_path, tiny_model_dir, data, stage="grpo", name="stops",
                     train={**SHORT, "max_steps": 100, "stop_on": ["no_signal"]}, rl=rl)
    said = tmp_path / "said.txt"  # the supervisor announces the trainer's alerts, each once
    settings = Path(os.environ["XDG_CONFIG_HOME"]) / "tuitune" / "settings.yaml"
    settings.parent.mkdir(parents=True, exist_ok=True)
    settings.write_text(yaml.safe_dump({"notify": {"command": f'echo "$TUITUNE_EVENT $TUITUNE_RUN" >> {said}',
                                                   "events": ["alert", "finished", "stopped"]}}), encoding="utf-8")
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    for proc in [eng.launch(run_dir) for run_dir in (last, stops)]:
        proc.wait(timeout=240)

    events = read_events(last)
    assert events[-1]["type"] == "run_finished", events[-3:]
    [alert] = [e for e in events if e["type"] == "alert"]
    assert (alert["kind"], alert["step"], alert["stops"]) == ("no_signal", 3, False), alert
    [log] = [e for e in events if e["type"] == "log" and e["step"] == 3]
    assert events[events.index(log) + 1] == alert  # right after the log it comes from
    assert "alert no_signal: nothing is being learned" in (last / "engine.log").read_text()  # the supervisor read it

    events = read_events(stops)
    alerts = [e for e in events if e["type"] == "alert"]
    assert [(a["kind"], a["step"], a["stops"]) for a in alerts] == [("no_signal", 3, True)], alerts
    end = events[-1]
    assert end["type"] == "run_stopped" and end["adapter_path"] == "adapter" and end["step"] <= 4, end
    assert (stops / "adapter" / "adapter_model.safetensors").is_file()

    expected = ["alert last", "alert stops", "finished last", "stopped stops"]
    deadline = time.monotonic() + 60  # the senders are detached: nobody waits for them
    while time.monotonic() < deadline and len(said.read_text().splitlines() if said.exists() else []) < 4:
        time.sleep(0.2)
    time.sleep(1)  # a fifth line (an alert said twice) would come within this
    assert sorted(said.read_text().splitlines()) == expected


def test_prompts_without_a_reward_or_a_reference_are_refused_before_training(eng, tiny_model_dir: Path,
                                                                             tmp_path: Path) -> None:
    data = write_lines(tmp_path / "prompts.jsonl", [{"prompt": p["prompt"]} for p in PROMPTS])
    events = eng.run_to_end(make_run(eng, tmp_path, tiny_model_dir, data, stage="grpo"))

    failed = events[-1]
    assert failed["type"] == "run_failed" and "run_started" not in eng.kinds(events), failed
    assert failed["errors"] == [f"{data}: nothing rewards the answers: no rl.rewards configured, and no prompt carries "
                                "a reference answer for the default exact_match; add rl.rewards (exact_match, "
                                "contains, regex, length, reward_model or python) or reference answers "
                                "({prompt, answer})"], failed


def test_a_samples_event_carries_the_newest_answers_with_their_weighted_reward() -> None:
    from collections import deque

    from engine.recipes.grpo import SAMPLES_SHOWN, write_samples

    emitted: list[tuple[str, dict[str, Any]]] = []
    events = type("Emitter", (), {"emit": lambda self, type, **fields: emitted.append((type, fields))})()
    count = SAMPLES_SHOWN + 2  # TRL keeps the whole generation batch; the event holds the newest answers
    prompts = deque([[{"role": "system", "content": "Be brief."}, {"role": "user", "content": f"q{n}"}]
                     for n in range(count)])
    completions = deque([[{"role": "assistant", "content": f"a{n}\n" + "x" * 1000}] for n in range(count)])
    logs = {"prompt": prompts, "completion": completions, "advantages": deque(range(count)),
            "rewards": {"exact_match": deque([1.0] * count), "length": deque([float("nan")] + [-0.5] * (count - 1))}}
    write_samples(events, 7, logs, [2.0, 1.0])

    [(kind, fields)] = emitted
    assert kind == "samples" and fields["step"] == 7 and len(fields["samples"]) == SAMPLES_SHOWN
    first = fields["samples"][0]
    assert first["prompt"] == "q2" and first["completion"].startswith("a2\nxxx") and len(first["completion"]) == 600
    assert first["rewards"] == {"exact_match": 1.0, "length": -0.5} and first["reward"] == 1.5
    assert first["advantage"] == 2
