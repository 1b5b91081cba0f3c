"""The new-run flow's preset list at 80x24 (issue 25, item 6): each description is wrapped in a column of its
own beside the names, whole, not run back under them."""

from __future__ import annotations

from pathlib import Path

from engine.presets import list_presets


async def test_preset_descriptions_wrap_beside_their_names(make_app, wait_for, runs_dir: Path) -> None:
    app = make_app(runs_dir)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("n")
        flow = app.screen
        await wait_for(pilot, lambda: flow.presets.option_count > 1, what="the preset list")
        flow.show_step("preset")
        await pilot.pause()
        presets = flow.presets
        lines = [presets.render_line(y).text for y in range(presets.region.height)]
    names = {p.name: p.description for p in list_presets()}
    starts = [y for y, line in enumerate(lines) if line.split() and line.split()[0] in names]
    assert len(starts) >= 3, lines
    for first, after in zip(starts, starts[1:]):
        name = lines[first].split()[0]
        block = lines[first:after]
        column = lines[first].index(lines[first].split()[1])  # where the description starts
        assert all(line[:column].strip() == "" for line in block[1:]), block  # continuation under the description
        assert " ".join(" ".join(line[column:] for line in block).split()) == names[name], block


async def test_the_models_path_box_shows_its_whole_placeholder(make_app, wait_for, runs_dir: Path) -> None:
    """At 80x24 the box read 'folder path or' with 'ORG/NAME' cut off."""
    from textual.widgets import Input

    from tuitune.screens.models import ModelsScreen

    app = make_app(runs_dir)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("2")
        await wait_for(pilot, lambda: isinstance(app.screen, ModelsScreen), what="the Models screen")
        box = app.screen.query_one("#path", Input)
        await pilot.pause()
        assert len(box.placeholder) <= box.content_region.width, (box.placeholder, box.content_region)
        assert box.placeholder in box.render_line(0).text


async def test_the_review_says_whole_where_the_run_trains(make_app, wait_for, runs_dir: Path) -> None:
    """At 80x24 the review's GPU line read 'GPUs: none found (no NVIDIA driver): the run trains o…'."""
    from textual.widgets import Static

    app = make_app(runs_dir)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("n")
        flow = app.screen
        note = flow.query_one("#gpu-note", Static)
        await wait_for(pilot, lambda: str(note.render()).strip(), what="the GPU line")
        flow.show_step("review")
        await pilot.pause()
        said = str(note.render())
        shown = " ".join(" ".join(note.render_line(y).text for y in range(note.region.height)).split())
    assert shown == " ".join(said.split()), (shown, said)
