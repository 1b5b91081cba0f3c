"""engine.presets: shipped presets validate, user presets save and round-trip, errors point home."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from engine.config import ConfigError, parse_config
from engine.paths import shipped_presets_dir, user_presets_dir
from engine.presets import (
    PresetExists,
    PresetNotFound,
    diff_from,
    find_preset,
    list_presets,
    load_preset,
    preset_values,
    resolve,
    save_user_preset,
)

SHIPPED = sorted(p.stem for p in shipped_presets_dir().glob("*.yaml"))
REQUIRED = {"default", "qlora-4bit", "lora-8bit", "dora", "full", "cpu-first-try"}


def write_user(name: str, text: str) -> Path:
    """Put a hand-written preset file into the user's presets folder."""
    path = user_presets_dir() / f"{name}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def test_required_presets_are_shipped() -> None:
    assert REQUIRED <= set(SHIPPED)


@pytest.mark.parametrize("name", SHIPPED)
def test_every_shipped_preset_validates_and_comments_every_knob(name: str) -> None:
    path = find_preset(name)
    data = load_preset(name)
    assert data["description"], "a shipped preset says what it is for"
    assert "model" not in data and "train" not in data.get("data", {}), "presets leave model and data files to the run"
    parse_config(path.read_text(), source=str(path))
    for number, line in enumerate(path.read_text().splitlines(), 1):
        is_knob = line.startswith("  ") and ":" in line
        assert not is_knob or "  # " in line, f"{path}:{number}: knob without a why comment"


def test_shipped_preset_methods_match_their_names() -> None:
    assert resolve(load_preset("qlora-4bit")).quant.mode == "4bit"
    assert resolve(load_preset("lora-8bit")).quant.mode == "8bit"
    assert resolve(load_preset("dora")).adapter.method == "dora"
    assert resolve(load_preset("full")).adapter.method == "full"
    first_try = resolve(load_preset("cpu-first-try"))
    assert first_try.train.precision == "fp32" and first_try.train.max_steps is not None
    assert first_try.adapter.r < resolve(load_preset("default")).adapter.r


def test_list_puts_default_first_and_reports_no_errors_for_shipped() -> None:
    infos = list_presets()
    assert infos[0].name == "default"
    assert all(info.source == "shipped" and info.error is None for info in infos)
    assert [info.name for info in infos[1:]] == sorted(set(SHIPPED) - {"default"})


def test_save_round_trips_through_load(isolated_home: Path) -> None:
    values = preset_values(resolve(load_preset("qlora-4bit")))
    values["adapter"]["r"] = 64
    values["adapter"]["target_modules"] = ["q_proj", "v_proj"]
    values["data"]["system_prompt"] = "You are terse: answer # in one line."
    values["description"] = "mine: rank 64"
    path = save_user_preset("mine", values)
    assert path == user_presets_dir() / "mine.yaml"
    assert str(path).startswith(str(isolated_home)), "the test home, never the real one"
    assert load_preset("mine") == values
    assert resolve(load_preset("mine")) == resolve(values)
    assert "r: 64  # LoRA rank: higher = more capacity and memory." in path.read_text()
    assert not list(path.parent.glob(".*.tmp")), "no temp files left behind"


def test_save_refuses_to_overwrite_unless_told() -> None:
    save_user_preset("mine", {"adapter": {"r": 8}})
    with pytest.raises(PresetExists):
        save_user_preset("mine", {"adapter": {"r": 4}})
    assert load_preset("mine") == {"adapter": {"r": 8}}
    save_user_preset("mine", {"adapter": {"r": 4}}, overwrite=True)
    assert load_preset("mine") == {"adapter": {"r": 4}}


@pytest.mark.parametrize("name", ["default", "../escape", "", "a b", ".hidden"])
def test_save_refuses_shipped_and_malformed_names(name: str) -> None:
    with pytest.raises(ConfigError):
        save_user_preset(name, {"adapter": {"r": 8}})
    assert not user_presets_dir().exists() or not any(user_presets_dir().iterdir())


def test_save_refuses_invalid_values_naming_the_field() -> None:
    with pytest.raises(ConfigError) as err:
        save_user_preset("bad", {"adapter": {"r": 0}})
    assert "adapter.r" in str(err.value) and "bad.yaml:2:" in str(err.value)
    assert not (user_presets_dir() / "bad.yaml").exists()


def test_broken_user_presets_are_listed_with_file_line_and_field() -> None:
    write_user("typo", "adapter:\n  r: 8\n  rank: 9\n")
    write_user("range", "train:\n  learning_rate: 5\n")
    write_user("type", "adapter:\n  r: lots\n")
    write_user("yaml", "adapter:\n  r: [8\n")
    write_user("default", "adapter:\n  r: 2\n")
    write_user("good", "description: fine\nadapter:\n  r: 2\n")
    infos = {info.name: info for info in list_presets() if info.source == "user"}
    folder = user_presets_dir()
    assert infos["typo"].error.startswith(f"{folder / 'typo.yaml'}:3:3 adapter.rank: unknown key")
    assert f"{folder / 'range.yaml'}:2:18 train.learning_rate: " in infos["range"].error
    assert f"{folder / 'type.yaml'}:2:6 adapter.r: " in infos["type"].error
    assert f"{folder / 'yaml.yaml'}:" in infos["yaml"].error and "malformed YAML" in infos["yaml"].error
    assert "belongs to a shipped preset" in infos["default"].error
    assert infos["good"].error is None and infos["good"].description == "fine"
    assert load_preset("default")["adapter"]["r"] == 16, "a user file never shadows a shipped preset"


def test_find_by_path_and_unknown_names() -> None:
    path = write_user("elsewhere", "adapter:\n  r: 4\n")
    assert find_preset(str(path)) == path
    assert load_preset(path) == {"adapter": {"r": 4}}
    assert find_preset("elsewhere") == path
    with pytest.raises(PresetNotFound, match="nope: no such preset; available: default, "):
        find_preset("nope")
    with pytest.raises(PresetNotFound, match="no such preset file"):
        find_preset("missing/file.yaml")


def test_diff_from_lists_changed_leaves_in_order() -> None:
    base = preset_values(resolve(load_preset("default")))
    current = yaml.safe_load(yaml.safe_dump(base))
    assert diff_from(base, current) == []
    current["adapter"]["r"] = 32
    current["train"]["max_steps"] = 10
    assert diff_from(base, current) == [("adapter.r", 16, 32), ("train.max_steps", None, 10)]
    assert diff_from({"a": {"b": 1}}, {}) == [("a.b", 1, None)]


@pytest.mark.parametrize("value", ["true", "false"])
def test_a_preset_may_not_set_trust_remote_code(value: str) -> None:
    """A shared preset could turn on remote code for whatever model the run names (even with --model)."""
    path = write_user("remote",
                      f"description: looks harmless\nmodel:\n  trust_remote_code: {value}\nadapter:\n  r: 8\n")
    with pytest.raises(ConfigError) as err:
        load_preset("remote")
    assert err.value.problems == [
        f"{path}:3:3 model.trust_remote_code: a preset may not set this; only the run's own config file "
        "may turn on remote code"]
    [info] = [i for i in list_presets() if i.name == "remote"]
    assert info.error == str(err.value) and info.description == "looks harmless"


def test_a_preset_that_sets_remote_code_stops_a_run_composed_with_model_flag() -> None:
    from engine.compose import compose_config

    write_user("remote", "model:\n  trust_remote_code: true\n")
    with pytest.raises(ConfigError, match="model.trust_remote_code: a preset may not set this"):
        compose_config("remote", flags={"--model": ("model.name_or_path", "some/model")})


def test_saving_a_preset_that_sets_remote_code_is_refused() -> None:
    with pytest.raises(ConfigError, match="model.trust_remote_code: a preset may not set this"):
        save_user_preset("remote", {"model": {"trust_remote_code": True}})
    assert not (user_presets_dir() / "remote.yaml").exists()


def test_other_model_fields_stay_allowed_in_a_preset() -> None:
    write_user("fp32", "model:\n  dtype: float32\n")
    assert load_preset("fp32") == {"model": {"dtype": "float32"}}


def test_presets_read_values_as_strictly_as_configs() -> None:
    path = write_user("loose", "data:\n  packing: yes\ntrain:\n  epochs: 1\n  epochs: 2\n")
    with pytest.raises(ConfigError) as err:
        load_preset("loose")
    assert err.value.problems == [f"{path}:5:3 train.epochs: duplicate key; first given on line 4 (only one may stay)"]
    write_user("loose", "data:\n  packing: yes\n")
    with pytest.raises(ConfigError, match=r"loose.yaml:2:12 data.packing: must be true or false"):
        load_preset("loose")


def test_a_preset_file_over_the_size_limit_is_refused() -> None:
    path = write_user("huge", "description: x\n" + "#" * (1 << 20) + "\n")
    with pytest.raises(ConfigError, match="too large .* at most 1 MiB"):
        load_preset(path)
    [info] = [i for i in list_presets() if i.name == "huge"]
    assert "at most 1 MiB" in info.error


def test_a_saved_preset_stays_valid_yaml_whatever_the_help_texts(tmp_path, monkeypatch) -> None:
    """A field whose help text spanned two lines broke every saved preset's YAML."""
    from engine.config import RunConfig
    from engine.presets import preset_to_yaml, preset_values, resolve

    monkeypatch.setattr(RunConfig.model_fields["train"].annotation.model_fields["seed"], "description",
                        "first line\nsecond line")
    text = preset_to_yaml(preset_values(resolve({})))
    import yaml

    assert yaml.safe_load(text)["train"]["seed"] == 42 and "# first line second line" in text
