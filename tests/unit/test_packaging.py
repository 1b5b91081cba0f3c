"""The distribution ships every package, the shipped presets and the demo data."""

from __future__ import annotations

from pathlib import Path

import tomllib

from engine.paths import shipped_presets_dir

ROOT = Path(__file__).resolve().parents[2]


def test_every_python_package_is_listed_in_pyproject() -> None:
    """The package list is explicit (the presets live outside engine/), so a new subpackage must be added to it."""
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    on_disk = {
        ".".join(init.parent.relative_to(ROOT).parts)
        for top in ("tuitune", "engine")
        for init in (ROOT / top).rglob("__init__.py")
    }
    assert on_disk <= listed, f"add to [tool.setuptools] packages: {sorted(on_disk - listed)}"


def test_shipped_presets_are_found_through_the_installed_package() -> None:
    assert shipped_presets_dir().resolve() == (ROOT / "presets").resolve()
    assert (shipped_presets_dir() / "default.yaml").is_file()
