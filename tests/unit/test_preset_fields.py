"""The preset editor's fields come from the config schema and check typed text with its rules."""

from __future__ import annotations

import pytest

from engine.config import RunConfig
from engine.presets import PRESET_SECTIONS, RUN_ONLY_FIELDS
from tuitune.widgets.preset_fields import preset_fields, unflatten

SPECS = {spec.dotted: spec for spec in preset_fields()}


def test_fields_are_the_schema_minus_run_only_ones() -> None:
    expected = ["description", "stage"] + [
        f"{section}.{name}"
        for section in PRESET_SECTIONS
        for name in RunConfig.model_fields[section].annotation.model_fields
        if f"{section}.{name}" not in RUN_ONLY_FIELDS
    ]
    assert list(SPECS) == expected
    assert all(spec.description for spec in SPECS.values()), "every knob has help from its docstring"


def test_kinds_choices_and_bounds_follow_the_annotations() -> None:
    assert (SPECS["adapter.r"].kind, SPECS["adapter.r"].bounds) == ("int", ">= 1, <= 1024")
    assert SPECS["adapter.dropout"].bounds == ">= 0, < 1"
    assert SPECS["quant.mode"].kind == "choice" and SPECS["quant.mode"].choices == ("none", "4bit", "8bit")
    assert SPECS["adapter.rslora"].kind == "bool"
    assert SPECS["adapter.target_modules"].kind == "list" and SPECS["adapter.target_modules"].choices == ("all-linear",)
    assert SPECS["train.max_steps"].optional and not SPECS["train.batch_size"].optional


@pytest.mark.parametrize(("field", "text", "value"), [
    ("adapter.r", " 32 ", 32),
    ("train.learning_rate", "2e-4", 2e-4),
    ("train.max_steps", "", None),
    ("data.system_prompt", "", None),
    ("description", "", ""),
    ("adapter.target_modules", "all-linear", "all-linear"),
    ("adapter.target_modules", "q_proj, v_proj,", ["q_proj", "v_proj"]),
])
def test_parse_accepts(field: str, text: str, value: object) -> None:
    assert SPECS[field].parse(text) == value


@pytest.mark.parametrize(("field", "text", "message"), [
    ("adapter.r", "0", "must be greater than or equal to 1"),
    ("adapter.r", "1.5", "must be a valid integer"),
    ("adapter.r", "2000", "must be less than or equal to 1024"),
    ("train.learning_rate", "5", "must be less than or equal to 1"),
    ("adapter.dropout", "1", "must be less than 1"),
    ("train.epochs", "", "a value is required"),
    ("adapter.target_modules", " ", "a value is required"),
])
def test_parse_refuses_with_the_schema_message(field: str, text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        SPECS[field].parse(text)


def test_format_and_unflatten_round_trip() -> None:
    spec = SPECS["adapter.target_modules"]
    assert spec.parse(spec.format(["q_proj", "v_proj"])) == ["q_proj", "v_proj"]
    assert SPECS["train.max_steps"].format(None) == ""
    assert unflatten({"description": "x", "adapter.r": 4, "adapter.alpha": 8.0}) == {
        "description": "x", "adapter": {"r": 4, "alpha": 8.0}}
