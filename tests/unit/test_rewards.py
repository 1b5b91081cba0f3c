"""The RL stages without a model: the rl config, the rule rewards, prompts read from every layout, and
which rewards a run's prompts allow (the exact_match default, the refusal when nothing rewards)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from engine.config import ConfigError, RLSection, parse_config
from engine.data.checks import check_paths
from engine.data.formats import detect_format, to_prompt
from engine.data.problems import DataError
from engine.data.prompts import read_prompts, reward_plan
from engine.presets import load_preset
from engine.recipes.rewards import (
    Reward,
    RewardError,
    build_rewards,
    contains,
    exact_match,
    length,
    load_function,
    normalise,
    regex,
)


def test_exact_match_ignores_case_spaces_and_punctuation_and_scores_nothing_without_a_reference() -> None:
    assert normalise("  The  answer is: 42! ") == "the answer is 42"
    assert normalise("北京。") == "北京"
    assert exact_match(["the Answer is 42.", "41", "x"], ["The answer is 42", "42", None]) == [1.0, 0.0, None]
    assert contains(["So it is Paris, France."], ["paris"], None) == [1.0]
    assert contains(["no"], [None], "yes") == [0.0]


def test_regex_and_length_rewards() -> None:
    assert regex(["<answer>4</answer>", "4"], r"<answer>.*</answer>") == [1.0, 0.0]
    # 0 up to max_words, falling to -1 at twice as many, -1 beyond
    assert length(["a b c", "a b c d e f", "a " * 20], 4) == [0.0, -0.5, -1.0]


def test_rewards_are_named_as_trl_logs_them_and_weighted() -> None:
    rl = RLSection(rewards=[{"kind": "regex", "pattern": "x"}, {"kind": "regex", "pattern": "y", "weight": 0.5},
                            {"kind": "length", "max_words": 3, "weight": -1}])
    rewards, weights = build_rewards(rl)
    assert [r.__name__ for r in rewards] == ["regex", "regex_2", "length"] and weights == [1.0, 0.5, -1.0]
    default, weights = build_rewards(RLSection())
    assert [r.__name__ for r in default] == ["exact_match"] and weights == [1.0]
    # TRL passes conversational completions and the dataset's other columns
    scores = default[0](prompts=[[{"role": "user", "content": "2+2?"}]] * 2,
                        completions=[[{"role": "assistant", "content": "4."}], [{"role": "assistant", "content": "5"}]],
                        reference=["4", "4"], record=["a:1 (record 0)"] * 2, trainer_state=None)
    assert scores == [1.0, 0.0]


def test_a_reward_that_raises_names_its_last_line_its_code_line_and_the_record() -> None:
    def picky(p, answers, refs, kw):
        return [len(a) / (len(a) - 3) for a in answers]  # divides by zero on a 3-character answer

    reward = Reward("picky", picky)
    with pytest.raises(RewardError) as raised:
        reward(prompts=["q1", "q2"], completions=["long one", "abc"], reference=["", ""],
               record=["d.jsonl:1 (record 0)", "d.jsonl:2 (record 1)"])
    line = picky.__code__.co_firstlineno + 1
    assert str(raised.value) == (f"reward picky raised ZeroDivisionError: division by zero (test_rewards.py "
                                 f"line {line}, in <listcomp>) on the answer to d.jsonl:2 (record 1)")
    wrong = Reward("wrong", lambda p, a, r, kw: ["high"] * len(a))
    with pytest.raises(RewardError, match="returned str for the answer to x: it must return numbers"):
        wrong(prompts=["q"], completions=["a"], record=["x"])


def test_a_reward_that_hangs_or_backtracks_runs_out_of_time_naming_the_record() -> None:
    """A python reward that never returned hung the run for ever with no alert; so did a regex that backtracks
    ((a+)+$: 40 s on 27 characters)."""
    import time

    def hangs_on_b(p, answers, refs, kw):
        while any("b" in a for a in answers):
            try:
                time.sleep(10)
            except Exception:  # a reward that swallows every Exception still ends
                pass
        return [1.0] * len(answers)

    records = ["d.jsonl:1 (record 0)", "d.jsonl:2 (record 1)"]
    started = time.monotonic()
    with pytest.raises(RewardError) as raised:
        Reward("python_hangs", hangs_on_b, time_limit_s=0.3)(prompts=["q1", "q2"], completions=["a", "b"],
                                                             record=records)
    assert str(raised.value) == ("reward python_hangs took longer than rl.reward_time_limit_s (0.3 s) scoring the "
                                 "answer to d.jsonl:2 (record 1)")
    runaway = build_rewards(RLSection(rewards=[{"kind": "regex", "pattern": "(a+)+$"}], reward_time_limit_s=0.3))[0][0]
    with pytest.raises(RewardError, match=r"reward regex took longer than .* scoring the answer to d.jsonl:1"):
        runaway(prompts=["q1"], completions=["a" * 40 + "!"], record=records[:1])
    assert time.monotonic() - started < 10


def test_a_reward_that_is_not_a_finite_number_fails_naming_the_record() -> None:
    """NaN for every answer: the run finished having trained nothing (loss 0, grad norm 0) and said nothing."""
    nan = Reward("python_nan", lambda p, a, r, kw: [0.5, float("nan")])
    with pytest.raises(RewardError, match=r"reward python_nan returned nan for the answer to y: a score must be a "
                                          r"finite number \(or None to leave the answer unscored\)"):
        nan(prompts=["q", "q"], completions=["a", "b"], record=["x", "y"])
    assert Reward("unscored", lambda p, a, r, kw: [None, 1])(prompts=["q", "q"], completions=["a", "b"]) == [None, 1.0]


def test_a_python_reward_runs_only_when_the_run_config_allows_code(tmp_path: Path) -> None:
    text = "stage: grpo\nrl:\n  rewards:\n    - kind: python\n      function: r.py:score\n"
    with pytest.raises(ConfigError) as refused:
        parse_config(text, "run.yaml")
    assert str(refused.value) == ("run.yaml:3:3 rl: rewards[0] runs your Python code (r.py:score): set "
                                  "rl.allow_code: true in the run's own config to allow it")
    assert parse_config(text.replace("rl:\n", "rl:\n  allow_code: true\n")).rl.allow_code
    # a preset may never allow code, whatever it says
    (tmp_path / "p.yaml").write_text("stage: grpo\nrl:\n  allow_code: true\n")
    with pytest.raises(ConfigError, match="p.yaml:3:3 rl.allow_code: a preset may not set this"):
        load_preset(tmp_path / "p.yaml")
    (tmp_path / "r.py").write_text("def score(prompts, completions, references, **kw):\n    return [1.0]\n")
    with pytest.raises(ValueError, match="runs your code"):
        load_function(f"{tmp_path / 'r.py'}:score", allowed=False)
    assert load_function(f"{tmp_path / 'r.py'}:score", allowed=True)([], ["a"], [None]) == [1.0]
    with pytest.raises(ValueError, match="has no function nope"):
        load_function(f"{tmp_path / 'r.py'}:nope", allowed=True)


@pytest.mark.parametrize(("reward", "message"), [
    ("{kind: regex}", "rl.rewards.0: a regex reward needs pattern"),
    ("{kind: regex, pattern: '('}", "rl.rewards.0: pattern is not a valid regular expression"),
    ("{kind: length}", "rl.rewards.0: a length reward needs max_words"),
    ("{kind: python, function: score}", "rl.rewards.0: function must be FILE.py:FUNCTION"),
    ("{kind: bleu}", "rl.rewards.0.kind: must be one of 'exact_match', 'contains'"),
])
def test_bad_rewards_are_refused_with_file_line_and_field(reward: str, message: str) -> None:
    with pytest.raises(ConfigError) as refused:
        parse_config(f"stage: grpo\nrl:\n  allow_code: true\n  rewards:\n    - {reward}\n", "run.yaml")
    assert str(refused.value).startswith("run.yaml:5:") and message in str(refused.value), str(refused.value)


def test_prompts_come_from_prompt_records_and_from_instruction_data_with_the_answer_as_reference() -> None:
    assert detect_format({"prompt": "hi"}) == "prompts"
    example, problems = to_prompt({"prompt": "2+2?", "answer": "4"}, "prompts")
    assert not problems and example.prompt == [{"role": "user", "content": "2+2?"}] and example.chosen == "4"
    example, _ = to_prompt({"instruction": "Add", "input": "2+2", "output": "4"}, "alpaca")
    assert example.prompt == [{"role": "user", "content": "Add\n2+2"}] and example.chosen == "4"
    example, _ = to_prompt({"conversations": [{"from": "human", "value": "hi"}]}, "sharegpt")
    assert example.chosen is None
    assert to_prompt({"prompt": [{"role": "assistant", "content": "x"}]}, "prompts")[1] == [
        ("prompt[0].role", "expected a user turn here (user and assistant must alternate, starting with user), "
                           "got assistant")]


def test_which_rewards_the_prompts_allow(tmp_path: Path) -> None:
    path = tmp_path / "p.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in [{"prompt": "a", "answer": "1"}, {"prompt": "b"}]))
    data = parse_config(f"stage: grpo\ndata: {{train: [{path}]}}\n").data
    prompts = read_prompts(data, "grpo")
    assert prompts.rows[1] == {"prompt": [{"role": "user", "content": "b"}], "reference": "",
                               "record": f"{path}:2 (record 1)"}
    summary = check_paths([str(path)], stage="grpo")
    assert (summary.prompts, summary.references) == (2, 1)
    # the default exact_match needs every reference ...
    with pytest.raises(DataError) as refused:
        reward_plan(RLSection(), prompts, data.train)
    assert [str(p) for p in refused.value.problems] == [
        f"{path}:2 record 1: no reference answer, which exact_match (the default) compares with: add one or drop "
        "the record"]
    # ... a regex needs none; exact_match among the rewards does
    assert reward_plan(RLSection(rewards=[{"kind": "regex", "pattern": "x"}]), prompts, data.train) == (
        "rewards: regex x1")
    with pytest.raises(DataError):
        reward_plan(RLSection(rewards=[{"kind": "exact_match"}]), prompts, data.train)
    path.write_text(json.dumps({"prompt": "a", "answer": "1"}) + "\n")
    assert reward_plan(RLSection(), read_prompts(data, "grpo"), data.train).startswith(
        "no reward configured: exact_match against the reference answers (1 prompts)")


def test_the_review_says_the_default_reward_refuses_what_nothing_rewards_and_marks_code(tmp_path: Path) -> None:
    from engine.estimate.prestart import check_run

    def review_findings(config):  # the review step's check, as every door makes it
        return check_run(config, [], "")

    prompts = tmp_path / "p.jsonl"
    prompts.write_text(json.dumps({"prompt": "hi"}) + "\n")
    # builtin:identity: instruction data, answers as references
    reviewed = review_findings(parse_config("stage: grpo\n"))
    assert reviewed.refusals == [] and reviewed.dangers == []
    assert reviewed.warnings == ["no reward configured: exact_match against the reference answers (66 prompts), 1 when "
                                 "an answer equals its reference (case, spaces and punctuation ignored)"]
    reviewed = review_findings(parse_config(f"stage: grpo\ndata: {{train: [{prompts}]}}\n"))
    assert len(reviewed.refusals) == 1 and "nothing rewards the answers" in reviewed.refusals[0]
    (tmp_path / "r.py").write_text("def f(prompts, completions, references, **kw):\n    return [0.0] * len(prompts)\n")
    reviewed = review_findings(parse_config(
        f"stage: rloo\ndata: {{train: [{prompts}]}}\nrl:\n  allow_code: true\n  rewards:\n"
        f"    - {{kind: python, function: {tmp_path / 'r.py'}:f}}\n"
        f"    - {{kind: reward_model, path: {tmp_path / 'no'}}}\n"))
    assert reviewed.refusals == [f"rl.rewards[1] reward_model: {tmp_path / 'no'} does not exist"]
    assert reviewed.dangers == [f"this run executes your Python code as a reward: rl.rewards[0] {tmp_path / 'r.py'}:f "
                                "(rl.allow_code: true); start it only if you trust that file"]
