"""The system panel's first sample comes a second after the trainer starts, not once training has begun plus five
seconds (issue 25, item 11: the panel waited 15-20 s on the demo model); none comes after the attempt's end."""

from __future__ import annotations

from pathlib import Path


def test_the_first_system_sample_comes_while_the_model_loads(eng, tiny_model_dir: Path, tiny_data: Path,
                                                            tmp_path: Path) -> None:
    run_dir = eng.make_run(tmp_path, tiny_model_dir, tiny_data)
    events = eng.run_to_end(run_dir)
    assert events[-1]["type"] == "run_finished", events[-1]
    trainer_start = next(e for e in events if e["type"] == "phase")["t"]  # the trainer's first event
    samples = [e for e in events if e["type"] == "system"]
    assert samples, [e["type"] for e in events]
    assert samples[0]["t"] - trainer_start < 2.5 and samples[0]["rss_bytes"] > 0
    assert events.index(samples[-1]) < len(events) - 1  # none after run_finished
