"""``tuitune data check --model``: the chat-template doctor's verdicts, every one printed, an error exiting 1;
``tuitune train``: an error verdict refused unless ``--force``."""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys
from pathlib import Path

from tuitune.runs.launch import stop_run, wait_until_gone

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


EOT_AT_NEXT_TURN = ("{% for m in messages %}{% if not loop.first %}<|im_end|>\n{% endif %}<|im_start|>{{ m['role'] }}\n"
                    "{{ m['content'] }}{% endfor %}{% if add_generation_prompt %}<|im_end|>\n<|im_start|>assistant\n"
                    "{% endif %}")


def train(eng, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "tuitune", "train", *args], cwd=eng.repo, env=eng.env(),
                          capture_output=True, text=True, timeout=240, stdin=subprocess.DEVNULL)


def test_train_refuses_a_template_error_unless_forced(eng, tiny_model_dir: Path, tiny_data: Path,
                                                      tmp_path: Path) -> None:
    """The tiny model with its template changed so that <|im_end|> opens the next turn: never trained."""
    model = tmp_path / "model"
    shutil.copytree(tiny_model_dir, model)
    (model / "chat_template.jinja").write_text(EOT_AT_NEXT_TURN, encoding="utf-8")
    run_dir = tmp_path / "run"
    refused = train(eng, "--model", str(model), "--data", str(tiny_data), "--max-steps", "1", "--detach",
                    "--run-dir", str(run_dir))
    assert refused.returncode == 2 and not run_dir.exists(), refused.stderr
    assert ("error: chat template: end of turn: <|im_end|> after the answers is not trained (0 of 2 answers): the "
            "tuned model will not learn to stop") in refused.stderr
    assert "pass --force to start it anyway" in refused.stderr and "Traceback" not in refused.stderr

    forced = train(eng, "--model", str(model), "--data", str(tiny_data), "--max-steps", "1", "--detach",
                   "--run-dir", str(run_dir), "--force")
    try:
        assert forced.returncode == 0 and (run_dir / "config.yaml").is_file(), forced.stderr
        assert "warning: chat template: end of turn: <|im_end|> after the answers is not trained" in forced.stderr
    finally:
        if forced.returncode == 0:
            stop_run(run_dir, kill=True)
            wait_until_gone(run_dir)


def test_verdicts_are_kept_until_what_they_judge_changes(tiny_model_dir: Path, tiny_data: Path, tmp_path: Path,
                                                         monkeypatch) -> None:
    """Every door asks the doctor (a queued run twice): the second ask of an unchanged run starts no tokenizer,
    and a template edited since is judged again."""
    from engine.config import RunConfig
    from tuitune.runs import doctor

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    model = tmp_path / "model"
    shutil.copytree(tiny_model_dir, model)
    good = next(model.glob("chat_template.jinja"), None)
    good_text = good.read_text(encoding="utf-8") if good else None
    (model / "chat_template.jinja").write_text(EOT_AT_NEXT_TURN, encoding="utf-8")
    config = RunConfig.model_validate({"model": {"name_or_path": str(model)}, "data": {"train": [str(tiny_data)]}})
    started: list[RunConfig] = []
    real = doctor.run_doctor
    monkeypatch.setattr(doctor, "run_doctor", lambda c: started.append(c) or real(c))

    first = doctor.check_template(config)
    again = doctor.check_template(config)
    assert len(started) == 1 and first.errors, first
    assert [v.line() for v in again.verdicts] == [v.line() for v in first.verdicts]

    if good_text is None:
        (model / "chat_template.jinja").unlink()
    else:
        (model / "chat_template.jinja").write_text(good_text, encoding="utf-8")
    fixed = doctor.check_template(config)
    assert len(started) == 2 and not fixed.errors, fixed
