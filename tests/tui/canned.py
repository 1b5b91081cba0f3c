"""Changes to the canned run folders that several app tests make."""

from __future__ import annotations

from pathlib import Path


def add_events(run_dir: Path, *events: dict) -> None:
    """Add events after the canned complete ones (sequence and time go on from the last); a torn
    last line being written stays last."""
    import json

    text = (run_dir / "events.jsonl").read_text()
    complete, torn = text[: text.rfind("\n") + 1], text[text.rfind("\n") + 1:]
    last = json.loads(complete.splitlines()[-1])
    added = "".join(json.dumps({"v": 1, "seq": last["seq"] + n, "t": last["t"] + n, **event}) + "\n"
                    for n, event in enumerate(events, 1))
    (run_dir / "events.jsonl").write_text(complete + added + torn)
