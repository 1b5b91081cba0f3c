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


def save_checkpoint(run_dir: Path, step: int, whole: bool = False) -> Path:
    """A complete checkpoint folder as the Trainer leaves it (engine.checkpoints says what complete is); its
    weights are not a model: anything that reads their header refuses them, naming the file, unless ``whole``
    (then a safetensors file holding no tensor, which only loading refuses)."""
    import struct

    from engine.checkpoints import mark_complete

    folder = run_dir / "checkpoints" / f"checkpoint-{step}"
    folder.mkdir(parents=True)
    (folder / "trainer_state.json").write_text(f'{{"global_step": {step}}}')
    (folder / "adapter_config.json").write_text("{}")
    header = b'{"__metadata__": {"format": "pt"}}'
    weights = struct.pack("<Q", len(header)) + header if whole else b"not a safetensors file"
    (folder / "adapter_model.safetensors").write_bytes(weights)
    (folder / "optimizer.pt").write_bytes(b"moments")
    mark_complete(folder, step)
    return folder


def overfit(run_dir: Path) -> Path:
    """The canned finished run (evals at 20, 40 and 60) made to overfit: its eval loss rises after step 40, and
    checkpoint-20 was deleted by save_total_limit (the events still name it); checkpoints 40 and 60 are kept."""
    events = run_dir / "events.jsonl"
    events.write_text(events.read_text().replace('"eval_loss": 1.3318', '"eval_loss": 1.6318'))
    save_checkpoint(run_dir, 40)
    save_checkpoint(run_dir, 60)
    return run_dir
