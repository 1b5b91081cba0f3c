"""`python -m engine chat` and `tuitune chat --once` under hostile input, on a run of the tiny model: every
request answered or refused naming the field, a line over the size limit refused at once, a question longer than
the model's context refused with its numbers, the service ended when its stdin closes, and bad flags or weights
that are not whole refused before the model loads."""

from __future__ import annotations

import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from engine.services.chat_protocol import generate

HI = [{"role": "user", "content": "hi"}]
CONTEXT = 512
"""The tiny model's max_position_embeddings (tests/conftest.py)."""


def tokens_of(refusal: str) -> int:
    """The conversation's length in a refusal for a conversation longer than the context."""
    return int(re.search(r"the conversation is ([\d,]+) tokens", refusal)[1].replace(",", ""))


def chat_service(service, run_dir: Path, adapter: Path | None = None):
    """The chat service on ``run_dir``, loaded and ready."""
    chat = service("chat", "--run-dir", str(run_dir), "--adapter", str(adapter or run_dir / "adapter"))
    assert chat.replies(lambda m: m["type"] in ("ready", "failed"))[-1]["type"] == "ready"
    return chat


def test_every_generate_request_is_answered_or_refused_naming_the_field(service, tiny_run: Path) -> None:
    chat = chat_service(service, tiny_run)
    wrong = {
        1: ({"sides": ["evil"]}, 'sides[0]: expected base or tuned, each once, got "evil"'),
        2: ({"max_new_tokens": "lots"}, 'max_new_tokens: expected a whole number of at least 1, got "lots"'),
        3: ({"sides": "tuned"}, 'sides: expected an array of one or both of base, tuned, got "tuned"'),
        4: ({"messages": [{"role": "user", "content": 7}]}, "messages[0].content: expected a string, got number"),
        5: ({"temperature": -1}, "temperature: expected a number of at least 0"),
        6: ({"top_p": 0}, "top_p: expected a number above 0 and at most 1, got 0"),
    }
    chat.send(*({**generate(n, HI, ["tuned"], max_new_tokens=2), **fields} for n, (fields, _) in wrong.items()),
              {"type": "generate", "messages": HI}, generate(9, HI, ["base", "tuned"], max_new_tokens=2))
    replies = chat.replies(lambda m: m["type"] == "done" and m["id"] == 9 and m["side"] == "tuned")
    errors = {m["id"]: m["message"] for m in replies if m["type"] == "error"}
    assert errors.keys() == {*wrong, None}, replies
    for n, (_, said) in wrong.items():
        assert errors[n].startswith("generate request: " + said), errors[n]
    assert errors[None] == "generate request: id: expected a whole number, got nothing"
    assert [(m["side"], m["reason"]) for m in replies if m["type"] == "done"] == [("base", "length"),
                                                                                  ("tuned", "length")]
    assert chat.close() == 0


def test_a_line_over_the_limit_is_refused_at_once_and_the_service_ends_with_stdin(service, tiny_run: Path) -> None:
    chat = chat_service(service, tiny_run)
    huge = generate(5, [{"role": "user", "content": "x " * 25_000_000}], ["tuned"], max_new_tokens=2)  # 50 MB
    long = generate(6, [{"role": "user", "content": "why is the sky blue? " * 600}], ["tuned"])
    started = time.monotonic()
    chat.send(huge, long, generate(7, HI, ["tuned"], max_new_tokens=2))
    replies = chat.replies(lambda m: m["type"] == "done" and m["id"] == 7, timeout=60)
    assert time.monotonic() - started < 30, "the refusals took as long as reading and answering"
    errors = {m["id"]: m["message"] for m in replies if m["type"] == "error"}
    assert "line 1: longer than 4 MiB, the most a request may be" in errors[5], errors
    assert tokens_of(errors[6]) > CONTEXT and errors[6] == (
        f"the conversation is {tokens_of(errors[6]):,} tokens and the model reads at most {CONTEXT} (its context): "
        "shorten it, or start a new one")
    # stdin closing while an answer is being written ends it at its next token, and the service
    chat.send(generate(8, HI, ["tuned"], max_new_tokens=400))
    chat.replies(lambda m: m["type"] == "token" and m["id"] == 8, timeout=60)
    assert chat.close(timeout=30) == 0


def test_once_reads_the_question_from_stdin_and_refuses_one_longer_than_the_context(eng, tiny_run: Path) -> None:
    question = "why is the sky blue? " * 50_000  # about 1 MB: too long to be an argument
    proc = eng.cli("chat", str(tiny_run), "--once", "-", stdin=subprocess.PIPE)
    out, err = proc.communicate(question, timeout=240)
    assert proc.returncode == 1, err
    [line] = err.splitlines()
    assert line.startswith("tuitune chat: the conversation is ") and f"at most {CONTEXT} (its context)" in line
    assert tokens_of(line) > 200_000 and out == ""

    proc = eng.cli("chat", str(tiny_run), "--once", "-", stdin=subprocess.PIPE)
    out, err = proc.communicate("x" * (5 * 1024**2), timeout=60)  # over the service's limit: refused unsent
    assert proc.returncode == 2
    assert err == ("tuitune chat: --once -: the question on stdin is longer than 4 MiB, the most a request to the "
                   "chat service may be\n")


@pytest.mark.parametrize(("flag", "value", "said"), [
    ("--max-new-tokens", "-1", "'-1' is not a whole number of at least 1"),
    ("--temperature", "-1", "'-1' is not a number of at least 0 (0 answers greedily)"),
    ("--top-p", "1.5", "'1.5' is not a number above 0 and at most 1"),
])
def test_bad_settings_are_refused_before_work_starts(eng, tiny_run: Path, flag: str, value: str, said: str) -> None:
    proc = eng.cli("chat", str(tiny_run), "--once", "hi", flag, value)
    out, err = proc.communicate(timeout=240)
    assert proc.returncode == 2 and out == ""
    assert err.splitlines()[-1] == f"tuitune chat: error: argument {flag}: {said}"


@pytest.mark.parametrize("cut", ["inside the header", "inside the tensors"])
def test_an_adapter_cut_short_is_refused_naming_the_file(eng, service, tiny_run: Path, tmp_path: Path,
                                                         cut: str) -> None:
    run_dir = tmp_path / "cut-run"
    run_dir.mkdir()
    shutil.copy(tiny_run / "config.yaml", run_dir)
    shutil.copytree(tiny_run / "adapter", run_dir / "adapter")
    weights = run_dir / "adapter" / "adapter_model.safetensors"
    whole = weights.read_bytes()
    weights.write_bytes(whole[:100] if cut == "inside the header" else whole[:len(whole) // 2])
    said = ("has a header that does not parse" if cut == "inside the header"
            else f"is cut short: {len(whole) // 2:,} bytes where its header says {len(whole):,}")

    proc = eng.cli("chat", str(run_dir), "--once", "hi")
    out, err = proc.communicate(timeout=240)
    assert proc.returncode == 2 and out == ""
    [line] = err.splitlines()
    assert line.startswith(f"tuitune chat: {weights} {said}"), line

    # the Chat screen's way in, the service itself: refused before it loads anything
    chat = service("chat", "--run-dir", str(run_dir), "--adapter", str(run_dir / "adapter"))
    [failed] = chat.replies(lambda m: True, timeout=120)
    assert failed["type"] == "failed" and failed["message"].startswith(f"cannot load the model: {weights} {said}")
    assert chat.close() == 2
