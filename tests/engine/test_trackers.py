"""train.report_to: tensorboard leaves event files in RUN/trackers/ that TensorBoard's own reader loads."""

from __future__ import annotations

from pathlib import Path

import pytest


def test_a_tensorboard_run_leaves_the_logged_losses_for_tensorboards_reader(eng, tiny_model_dir: Path,
                                                                          tiny_data: Path, tmp_path: Path) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run_dir = eng.make_run(tmp_path, tiny_model_dir, tiny_data, train={"report_to": ["tensorboard"]})
    events = eng.run_to_end(run_dir)
    assert events[-1]["type"] == "run_finished", events[-1]
    logged = [(e["step"], e["loss"]) for e in events if e["type"] == "log"]
    files = list((run_dir / "trackers" / "tensorboard").rglob("events.out.tfevents.*"))
    assert files, list((run_dir / "trackers").rglob("*"))
    reader = EventAccumulator(str(files[0].parent), size_guidance={"scalars": 0})
    reader.Reload()
    scalars = [(s.step, s.value) for s in reader.Scalars("train/loss")]
    assert [step for step, _ in scalars] == [step for step, _ in logged]
    assert [v for _, v in scalars] == pytest.approx([loss for _, loss in logged], rel=1e-4)
