"""``tuitune runs [--json]``, ``tuitune plot`` and ``tuitune compare``'s refusals on the canned run folders."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from tuitune.__main__ import main

FIXTURE_RUNS = Path(__file__).resolve().parent.parent / "fixtures" / "runs"


@pytest.fixture()
def runs_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of the canned runs (finished with evals, stopped, failed, running), the current folder elsewhere."""
    target = tmp_path / "runs"
    shutil.copytree(FIXTURE_RUNS, target, ignore=shutil.ignore_patterns("*.py"))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    return target


def tuitune(runs_dir: Path, *args: str) -> int:
    return main(["--runs-dir", str(runs_dir), *args])


def test_runs_json_is_one_object_per_run_with_its_figures(runs_dir: Path, capsys: pytest.CaptureFixture) -> None:
    assert tuitune(runs_dir, "runs", "--json") == 0
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["name"] for r in records] == ["running", "failed", "stopped", "finished"]  # newest first
    finished = records[-1]
    assert {key: finished[key] for key in ("state", "step", "total_steps", "loss", "started", "duration_s")} == {
        "state": "finished", "step": 60, "total_steps": 60, "loss": 1.2118, "started": "2025-11-25T12:00:00Z",
        "duration_s": 113.5}
    assert (finished["best_eval_loss"], finished["best_eval_step"], finished["peak_memory_bytes"]) == (
        1.3318, 60, 2_147_483_648)
    assert records[0]["state"] == "lost"  # no live engine holds the canned running run's lock


def test_runs_lists_a_table_and_says_when_there_are_none(runs_dir: Path, tmp_path: Path,
                                                         capsys: pytest.CaptureFixture) -> None:
    assert tuitune(runs_dir, "runs") == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["name", "state", "step", "loss", "started", "duration"]
    assert lines[-1].split()[:4] == ["finished", "finished", "60/60", "1.212"]
    assert tuitune(tmp_path / "none", "runs") == 0
    assert capsys.readouterr().out.startswith("no runs in ")


def svg_lines(svg: str) -> dict[str, int]:
    """The runs' lines of a plot's SVG: each run's group id to the points of its path."""
    return {name: len(re.findall(r"[ML] -?[\d.]+ -?[\d.]+", body))
            for name, body in re.findall(r'<g id="run:([^"]+)">(.*?)</g>', svg, re.S)}


def test_plot_writes_an_svg_with_a_line_per_run(runs_dir: Path, capsys: pytest.CaptureFixture) -> None:
    assert tuitune(runs_dir, "plot", "finished", "stopped", "--out", "loss.svg") == 0
    svg = Path("loss.svg").read_text()
    assert re.search(r'<svg [^>]*width="576pt" height="324pt"', svg)  # 8 x 4.5 inches
    assert svg_lines(svg) == {"finished": 12, "stopped": 8}  # a point per log event
    assert "wrote loss.svg" in capsys.readouterr().out


def png_size_and_colours(path: Path) -> tuple[tuple[int, int], set[tuple[int, int, int]]]:
    from PIL import Image

    with Image.open(path) as image:
        return image.size, {rgb for _, rgb in image.convert("RGB").getcolors(1 << 20)}


def test_plot_writes_a_png_of_800x450_with_each_runs_colour(runs_dir: Path) -> None:
    assert tuitune(runs_dir, "plot", "finished", str(runs_dir / "failed"), "--metric", "lr") == 0
    size, colours = png_size_and_colours(Path("lr.png"))
    assert size == (800, 450)
    assert {(0x1F, 0x77, 0xB4), (0xFF, 0x7F, 0x0E)} <= colours  # matplotlib's first two line colours: one per run
    assert Path("lr.png").stat().st_mode & 0o044  # readable as the user's other files, not 0600


def test_plot_refuses_a_metric_no_run_logged_naming_those_there_are(runs_dir: Path,
                                                                    capsys: pytest.CaptureFixture) -> None:
    assert tuitune(runs_dir, "plot", "finished", "stopped", "--metric", "rewards/margins") == 2
    err = capsys.readouterr().err
    assert err == "error: no run logged metric 'rewards/margins'; they logged: loss, eval_loss, lr\n"
    assert not list(Path.cwd().glob("*.png"))


def test_plot_never_overwrites_and_refuses_what_it_cannot_write(runs_dir: Path, capsys: pytest.CaptureFixture) -> None:
    Path("mine.png").write_bytes(b"a user's picture")
    assert tuitune(runs_dir, "plot", "finished", "--out", "mine.png") == 2
    assert "mine.png: exists already" in capsys.readouterr().err
    assert Path("mine.png").read_bytes() == b"a user's picture"
    assert tuitune(runs_dir, "plot", "finished", "--out", "loss.pdf") == 2
    assert "must end in .png or .svg" in capsys.readouterr().err
    assert tuitune(runs_dir, "plot", "finished", "nope") == 2
    assert capsys.readouterr().err.startswith("error: no run named 'nope'")


def test_compare_refuses_fewer_than_two_runs_and_a_run_not_found(runs_dir: Path,
                                                                 capsys: pytest.CaptureFixture) -> None:
    assert tuitune(runs_dir, "compare", "finished", "finished") == 2
    assert capsys.readouterr().err == "error: compare needs two or more runs; got 1 (finished)\n"
    assert tuitune(runs_dir, "compare", "finished", "nope") == 2
    err = capsys.readouterr().err
    assert err.startswith("error: no run named 'nope'") and err.count("\n") == 1


