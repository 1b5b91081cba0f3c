"""``tuitune data check --model``: the chat-template doctor's verdicts, every one printed, an error exiting 1."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

_spec = importlib.util.spec_from_file_location("template_fixtures",
                                               Path(__file__).parents[1] / "fixtures/templates/build.py")
templates = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(templates)

RECORDS = [{"messages": [{"role": "system", "content": "Answer in French."}, {"role": "user", "content": "Hi"},
                         {"role": "assistant", "content": "Bonjour !"}]},
           {"messages": [{"role": "user", "content": "Thanks"}, {"role": "assistant", "content": "De rien."}]}]


def write_data(folder: Path) -> Path:
    path = folder / "chat.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in RECORDS), encoding="utf-8")
    return path


def test_data_check_prints_every_verdict_and_exits_one_on_a_dropped_system_prompt(eng, tmp_path: Path) -> None:
    data = write_data(tmp_path)
    phi3 = templates.build(templates.family("phi3"), tmp_path / "phi3")
    result = eng.cli("data", "check", str(data), "--model", str(phi3))
    out, err = result.communicate(timeout=120)
    assert result.returncode == 1, err
    lines = out.splitlines()
    verdicts = lines[lines.index("chat template:") + 1:-1]
    assert [line.split(":")[0].split(maxsplit=1)[1] for line in verdicts if not line.startswith(" ")] == [
        "template", "roles", "system", "end of turn", "stop", "multi turn", "bos", "generation prompt", "reasoning"]
    assert ("error   system: the chat template silently drops the system turn; 1 of 2 sampled records have a system "
            "prompt") in out
    assert "ok      end of turn: <|end|> (id 261) after every answer is trained (2 of 2)" in out
    assert "evidence: '<s><|user|>\\nProbeUserOneZq<|end|>" in out
    assert lines[-1] == "1 error, 0 warnings"


def test_data_check_passes_a_good_template(eng, tmp_path: Path) -> None:
    data = write_data(tmp_path)
    qwen = templates.build(templates.family("qwen2_5"), tmp_path / "qwen")
    result = eng.cli("data", "check", str(data), "--model", str(qwen))
    out, err = result.communicate(timeout=120)
    assert result.returncode == 0, err
    assert "ok      end of turn: <|im_end|> (id 256) after every answer is trained (2 of 2)" in out
    assert "ok      stop: generation stops on <|im_end|>" in out
    assert out.splitlines()[-1] == "0 errors, 0 warnings"
