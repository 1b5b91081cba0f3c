"""``tuitune export RUN --push ORG/NAME``: a tiny run trained from a Hub dataset, exported and pushed to the fake Hub
(tests/fixtures/hub/server.py) with the real command line, supervisor and export job. The Hub receives every file
and the model card; no file of the run holds the token. (What cannot be pushed is refused before any work:
tests/unit/test_export_push_refusals.py.)"""

from __future__ import annotations

import json
from pathlib import Path

import yaml

TOKEN = "hf_test_token"
ROWS = [{"instruction": f"Question {n}?", "input": "", "output": f"Answer {n}."} for n in range(4)]


def finish(process) -> tuple[int, str, str]:
    out, err = process.communicate(timeout=300)
    return process.returncode, out, err


def test_push_uploads_the_export_and_a_model_card_and_writes_no_token(eng, fake_hub, tiny_model_dir: Path,
                                                                       tmp_path: Path, monkeypatch) -> None:
    fake_hub.add("org/qa", {"train.jsonl": "".join(json.dumps(r) + "\n" for r in ROWS).encode()}, kind="dataset")
    runs = tmp_path / "runs"
    run_dir = eng.make_run(runs, tiny_model_dir, "hf:org/qa", name="tiny", train={"max_steps": 2})
    events = eng.run_to_end(run_dir)
    assert events[-1]["type"] == "run_finished", events[-1]
    loss = [e for e in events if e["type"] == "log"][-1]["loss"]

    monkeypatch.setenv("HF_TOKEN", TOKEN)
    code, out, err = finish(eng.cli("export", "tiny", "--merged", "--push", "tester/tiny-sft", "--private",
                                    "--name", "pushed", runs=runs))
    assert code == 0, out + err
    assert "pushed" in out and "to tester/tiny-sft" in out
    sent = fake_hub.uploads["tester/tiny-sft"]
    merged = run_dir / "exports" / "pushed" / "merged"
    expected = {"README.md", "adapter_config.json", "adapter_model.safetensors"} | {
        f"merged/{p.relative_to(merged).as_posix()}" for p in merged.rglob("*") if p.is_file()}
    assert expected <= set(sent) and "merged/model.safetensors" in sent, sorted(sent)
    assert sent["merged/model.safetensors"] == (merged / "model.safetensors").read_bytes()
    assert sent["adapter_model.safetensors"] == (run_dir / "adapter" / "adapter_model.safetensors").read_bytes()
    assert fake_hub.created[-1]["visibility"] == "private"

    card = sent["README.md"].decode()
    meta = yaml.safe_load(card.split("---\n")[1])
    assert meta["library_name"] == "peft" and meta["datasets"] == ["org/qa"] and "sft" in meta["tags"]
    assert "base_model" not in meta  # a local folder is no Hub model id
    assert f"`{tiny_model_dir.name}` (a local model)" in card and "stage `sft`" in card
    assert "[org/qa](https://huggingface.co/datasets/org/qa), split `train`" in card
    assert "| learning rate | 0.0002 (cosine, warmup 0) |" in card and "| max steps | 2 |" in card
    assert f"| final training loss (last logged step) | {loss:.4g} |" in card and "| ended | finished at step 2" in card
    finished = [e for e in json.loads("[" + ",".join((run_dir / "exports" / "pushed" / "events.jsonl")
                                                      .read_text().splitlines()) + "]") if e["type"] == "job_finished"]
    assert finished[0]["pushed"]["repo_id"] == "tester/tiny-sft" and "README.md" in finished[0]["pushed"]["files"]

    # The token travelled in the environment only: no file of the run (events, logs, job.yaml, pids) holds it.
    assert f"Bearer {TOKEN}" in fake_hub.authorizations
    holding = [p for p in run_dir.rglob("*") if p.is_file() and TOKEN.encode() in p.read_bytes()]
    assert holding == []

