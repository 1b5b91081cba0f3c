"""The run config schema and its YAML loader: errors name the file, the line and the field."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.config import (
    ConfigError,
    RunConfig,
    config_to_yaml,
    deep_merge,
    load_config,
    parse_config,
    write_config,
)


def problems_of(text: str, source: str = "p.yaml") -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_config(text, source=source)
    return info.value.problems


def test_empty_file_gives_the_defaults() -> None:
    assert parse_config("") == RunConfig()


def test_unknown_key_names_line_field_and_allowed_keys() -> None:
    [problem] = problems_of("train:\n  epochs: 2\n  batchsize: 3\n")
    assert problem.startswith("p.yaml:3:3 train.batchsize: unknown key; allowed here: epochs, max_steps, batch_size")


def test_unknown_section_is_an_error() -> None:
    [problem] = problems_of("lora:\n  r: 8\n")
    assert problem.startswith("p.yaml:1:1 lora: unknown key; allowed here: description, stage, model, quant, adapter")


def test_wrong_choice_lists_the_allowed_values() -> None:
    [problem] = problems_of("quant:\n  mode: 3bit\n")
    assert problem == "p.yaml:2:9 quant.mode: must be one of 'none', '4bit' or '8bit'"


def test_out_of_range_and_wrong_type_are_reported_in_file_order() -> None:
    problems = problems_of("adapter:\n  r: 0\ntrain:\n  learning_rate: fast\n")
    assert [p.split(" ")[0:2] for p in problems] == [["p.yaml:2:6", "adapter.r:"],
                                                     ["p.yaml:4:18", "train.learning_rate:"]]
    assert problems[0].endswith("adapter.r: must be greater than or equal to 1")


def test_malformed_yaml_gives_line_and_column() -> None:
    [problem] = problems_of("train:\n  epochs: [1, 2\n")
    assert problem.startswith("p.yaml:3:1: malformed YAML")
    # where the parser stopped (the end) and where the unclosed bracket opened: both
    assert problem.endswith("(while parsing a flow sequence that starts at p.yaml:2:11)")


def test_a_list_at_top_level_is_refused() -> None:
    [problem] = problems_of("- a\n- b\n")
    assert "expected a mapping of sections" in problem


def test_full_fine_tuning_of_quantized_weights_is_refused() -> None:
    [problem] = problems_of("quant:\n  mode: 4bit\nadapter:\n  method: full\n")
    assert "full cannot train quantized weights" in problem


def test_base_is_merged_under_the_file(tmp_path: Path) -> None:
    path = tmp_path / "run.yaml"
    path.write_text("train:\n  epochs: 1\n")
    config = load_config(path, base={"train": {"batch_size": 8, "epochs": 5}})
    assert (config.train.epochs, config.train.batch_size) == (1, 8)


def test_unreadable_file_names_it(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="missing.yaml: cannot read"):
        load_config(tmp_path / "missing.yaml")


def test_yaml_round_trip_is_lossless(tmp_path: Path) -> None:
    config = parse_config("adapter:\n  method: dora\n  target_modules: [q_proj, v_proj]\ntrain:\n  max_steps: 7\n")
    write_config(config, tmp_path / "config.yaml")
    assert load_config(tmp_path / "config.yaml") == config
    assert config_to_yaml(config).index("model:") < config_to_yaml(config).index("train:")


def test_atomic_write_leaves_no_temporary_files(tmp_path: Path) -> None:
    write_config(RunConfig(), tmp_path / "config.yaml")
    write_config(RunConfig(description="second"), tmp_path / "config.yaml")
    assert [p.name for p in tmp_path.iterdir()] == ["config.yaml"]
    assert load_config(tmp_path / "config.yaml").description == "second"


def test_every_field_has_help_text() -> None:
    """The preset editor builds its form and help from the schema, so no field may lack a docstring."""
    for section in RunConfig.model_fields.values():
        model = section.annotation
        if isinstance(model, type) and hasattr(model, "model_fields"):
            for name, field in model.model_fields.items():
                assert field.description, f"{model.__name__}.{name} has no docstring"


def test_deep_merge_keeps_sibling_keys() -> None:
    assert deep_merge({"a": {"x": 1, "y": 2}, "b": 1}, {"a": {"y": 3}}) == {"a": {"x": 1, "y": 3}, "b": 1}


@pytest.mark.parametrize("value", ["[]", "qv", "[1, 2]"])
def test_bad_target_modules_get_one_message(value: str) -> None:
    [problem] = problems_of(f"adapter:\n  target_modules: {value}\n")
    assert problem == (
        "p.yaml:2:19 adapter.target_modules: must be all-linear or a non-empty list of module names such as "
        "[q_proj, v_proj]"
    )


def load_problems(path: Path) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_config(path)
    return info.value.problems


@pytest.mark.parametrize("text", ["", "\n\n", "# only a comment\n  # and another\n"])
def test_an_empty_config_file_is_refused(tmp_path: Path, text: str) -> None:
    """An empty file used to start the full demo run; only leaving the file out may do that."""
    path = tmp_path / "run.yaml"
    path.write_text(text)
    [problem] = load_problems(path)
    assert problem.startswith(f"{path}: the config file has no settings")


def test_device_files_are_refused_at_once() -> None:
    [problem] = load_problems(Path("/dev/zero"))
    assert problem == "/dev/zero: not a regular file (a character device); give a YAML file"


def test_a_config_file_over_the_size_limit_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "huge.yaml"
    path.write_text("description: x\n" + "#" * (1 << 20) + "\n")
    [problem] = load_problems(path)
    assert problem.startswith(f"{path}: too large (1.0 MiB); a config or preset may be at most 1 MiB")


@pytest.mark.parametrize("text, field", [
    ('model:\n  trust_remote_code: "yes"\n', "model.trust_remote_code"),
    ("model:\n  trust_remote_code: yes\n", "model.trust_remote_code"),
    ("model:\n  trust_remote_code: on\n", "model.trust_remote_code"),
    ("model:\n  trust_remote_code: 1\n", "model.trust_remote_code"),
    ("quant:\n  double_quant: 'false'\n", "quant.double_quant"),
])
def test_booleans_come_only_from_true_and_false(text: str, field: str) -> None:
    [problem] = problems_of(text)
    assert problem.startswith("p.yaml:2:") and problem.endswith(f" {field}: must be true or false")


@pytest.mark.parametrize("text, field", [
    ("train:\n  batch_size: true\n", "train.batch_size"),
    ("train:\n  learning_rate: false\n", "train.learning_rate"),
    ("train:\n  max_steps: true\n", "train.max_steps"),
    ("data:\n  val_size: true\n", "data.val_size"),
])
def test_a_boolean_is_not_a_number(text: str, field: str) -> None:
    [problem] = problems_of(text)
    assert problem.startswith("p.yaml:2:") and problem.endswith(f" {field}: must be a number, not true or false")


def test_real_booleans_and_numbers_yaml_reads_as_strings_are_accepted() -> None:
    config = parse_config("model:\n  trust_remote_code: true\nquant:\n  double_quant: False\n"
                          "train:\n  learning_rate: 2e-4\n  batch_size: 8\n  epochs: 1.5\ndescription: yes\n")
    assert config.model.trust_remote_code is True and config.quant.double_quant is False
    assert (config.train.learning_rate, config.train.batch_size, config.train.epochs) == (2e-4, 8, 1.5)
    assert config.description == "yes"


def test_infinite_and_nan_numbers_are_refused() -> None:
    problems = problems_of("train:\n  epochs: .inf\n  warmup_ratio: .nan\n")
    assert [p.split(" ")[:2] for p in problems] == [["p.yaml:2:11", "train.epochs:"],
                                                    ["p.yaml:3:17", "train.warmup_ratio:"]]


def test_a_duplicate_key_names_both_lines() -> None:
    [problem] = problems_of("train:\n  epochs: 1\n  batch_size: 2\n  epochs: 5\n")
    assert problem == "p.yaml:4:3 train.epochs: duplicate key; first given on line 2 (only one may stay)"


def test_a_duplicate_section_names_both_lines() -> None:
    [problem] = problems_of("train:\n  epochs: 1\nadapter:\n  r: 8\ntrain:\n  batch_size: 2\n")
    assert problem == "p.yaml:5:1 train: duplicate key; first given on line 1 (only one may stay)"


def test_yaml_nested_too_deeply_is_a_message_not_a_crash() -> None:
    [problem] = problems_of("description: " + "[" * 100_000 + "]" * 100_000 + "\n")
    assert problem.startswith("p.yaml:1:") and "nested too deeply" in problem
