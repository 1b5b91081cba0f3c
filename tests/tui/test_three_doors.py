"""A run comes in through three doors, ``tuitune train``, ``tuitune estimate`` and the app's review step, and
each door refuses and warns alike (engine.estimate.prestart): train refused FSDP over 4-bit weights and a
tracker whose package is missing while the review let both start, and the review warned of a cutoff beyond
the model's context while train did not."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

CASES = {
    "fsdp-4bit": ({"quant": {"mode": "4bit"}, "distributed": {"nproc": 2, "strategy": "fsdp"}},
                  "refusal", "distributed.strategy fsdp cannot shard quant.mode 4bit weights (bitsandbytes): use "
                             "strategy ddp, or quant.mode none"),
    "tracker": ({"train": {"report_to": ["mlflow"]}},
                "refusal", "train.report_to: mlflow is not installed: pip install mlflow (or tuitune[trackers])"),
    "long-cutoff": ({"data": {"cutoff_len": 1024}},
                    "warning", "cutoff 1024 is above the model's context of 512 tokens: longer records go where it "
                               "was never trained"),
}
"""A config each (over the tiny model, whose context is 512 tokens), whether the doors refuse it or only warn,
and the line they all say."""


def config_file(tmp_path: Path, tiny_model_dir: Path, case: str) -> Path:
    from engine.config import deep_merge

    path = tmp_path / f"{case}.yaml"
    base = {"model": {"name_or_path": str(tiny_model_dir)}, "train": {"max_steps": 2}}
    path.write_text(yaml.safe_dump(deep_merge(base, CASES[case][0])))
    return path


@pytest.mark.parametrize("case", CASES)
def test_train_and_estimate_refuse_and_warn_alike(case: str, tiny_model_dir: Path, tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str],
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    from tuitune.__main__ import main
    from tuitune.cli import train

    started: list[Any] = []
    monkeypatch.setattr(train, "start_run", lambda run_dir, config: started.append(config))  # no trainer here
    path = config_file(tmp_path, tiny_model_dir, case)
    _, kind, line = CASES[case]
    train_status = main(["train", str(path), "--detach", "--run-dir", str(tmp_path / "run")])
    said_by_train = capsys.readouterr().err
    estimate_status = main(["estimate", str(path)])
    said_by_estimate = capsys.readouterr().err
    prefix = "error: " if kind == "refusal" else "warning: "
    for said in (said_by_train, said_by_estimate):
        assert prefix + line in said.splitlines(), said
    if kind == "refusal":
        assert (train_status, estimate_status, started) == (2, 1, [])
    else:
        assert (train_status, estimate_status, len(started)) == (0, 0, 1)


@pytest.mark.parametrize("case", CASES)
async def test_the_review_refuses_and_warns_as_train_and_estimate_do(case: str, tiny_model_dir: Path,
                                                                     tmp_path: Path, make_app, wait_for,
                                                                     runs_dir: Path) -> None:
    path = config_file(tmp_path, tiny_model_dir, case)
    _, kind, line = CASES[case]
    app = make_app(runs_dir)
    app.draft.start_from_config(path)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("n")
        flow = app.screen
        await pilot.press("ctrl+s")  # from an earlier step: review first
        await wait_for(pilot, lambda: flow.starter.checked is not None, timeout=60, what="the review's check")
        checked = flow.starter.checked
        assert line in (checked.refusals if kind == "refusal" else checked.warnings)
        shown = flow.refusal_view.render()
        start = str(shown).index(line)
        (span,) = [span for span in shown.spans if span.start <= start < span.end]
        assert bool(span.style.bold) == (kind == "refusal")  # bold red refuses the start; a warning is yellow
        if kind == "refusal":  # (a run the review only warns about would start: train's test shows it does)
            runs_before = sorted(p.name for p in runs_dir.iterdir())
            await pilot.press("ctrl+s")
            await pilot.pause()
            assert app.screen is flow and sorted(p.name for p in runs_dir.iterdir()) == runs_before
