"""The new-run flow's draft: what the user typed is checked, never rewritten behind their back."""

from __future__ import annotations

import pytest

from engine.config import ConfigError
from tuitune.runs.draft import RunDraft, load_preset_values, resolve_draft


def problems(**typed: str) -> list[str]:
    with pytest.raises(ConfigError) as refused:
        resolve_draft(RunDraft(**typed), load_preset_values("cpu-first-try"))
    return refused.value.problems


def test_a_run_name_that_is_not_a_folder_name_is_refused_not_rewritten() -> None:
    """'my run/with slash' became the folder my-run-with-slash without a word."""
    assert problems(name="my run/with slash") == [
        "run name: 'my run/with slash' cannot be a folder name here: use 1 to 100 letters, digits, '.', '_' or '-', "
        "starting with a letter or digit"]
    assert problems(name=".hidden")[0].startswith("run name: '.hidden'")
    config = resolve_draft(RunDraft(name="my-run_2.b"), load_preset_values("cpu-first-try"))
    assert config.model.name_or_path


def test_negative_and_zero_steps_say_too_small_and_words_say_not_a_number() -> None:
    """-5 was 'not a whole number' and 0 was refused by a message about a field name only."""
    assert problems(max_steps="-5") == ["max steps (train.max_steps): -5 is too small: it must be 1 or more"]
    assert problems(max_steps="0") == ["max steps (train.max_steps): 0 is too small: it must be 1 or more"]
    assert problems(max_steps="ten") == ["max steps (train.max_steps): 'ten' is not a whole number"]
    assert problems(cutoff="4") == ["cutoff (data.cutoff_len): 4 is too small: it must be 8 or more"]
