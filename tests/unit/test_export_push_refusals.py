"""``tuitune export RUN --push ORG/NAME`` refuses a push that cannot happen before anything else, in one line with
exit status 2: a malformed repo id, no token, a token the Hub refuses, a repo in a namespace the token's user cannot
write (asked of the fake Hub, tests/fixtures/hub/server.py), and ``--private`` without ``--push``. No run is looked
at and no job starts (the run named here does not even exist)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def refusal(tmp_path: Path, *args: str, token: str | None = None) -> str:
    """The one line ``tuitune export nope ARGS`` printed; fails unless it exited 2 with one line on stderr."""
    env = {**os.environ, "PYTHONPATH": str(REPO)} | ({"HF_TOKEN": token} if token else {})
    done = subprocess.run([sys.executable, "-m", "tuitune", "--runs-dir", str(tmp_path / "runs"), "export", "nope",
                           *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1 and not done.stdout, done
    return done.stderr.strip()


@pytest.mark.parametrize(("args", "token", "says"), [
    (["--push", "tester/tiny"], None, "cannot push to tester/tiny: no Hugging Face token; log in with `hf auth "
                                      "login` (a token with write access) or set HF_TOKEN"),
    (["--push", "tester/a b"], "hf_test_token", "--push: 'tester/a b' is not a Hub repo id"),
    (["--push", "tiny"], "hf_test_token", "--push: 'tiny' is not a Hub repo id: expected ORG/NAME"),
    (["--push", "tester/tiny"], "hf_wrong", "cannot push to tester/tiny: the Hub refused the Hugging Face token"),
    (["--push", "someone/model"], "hf_test_token", "someone/model belongs to someone, where tester cannot write "
                                                   "(the Hub answers 403): push to tester/model or to an organization"),
    (["--merged", "--private"], None, "--private applies to --push ORG/NAME"),
])
def test_a_push_that_cannot_happen_is_refused_before_any_work(fake_hub, tmp_path: Path, args: list[str],
                                                              token: str | None, says: str) -> None:
    assert says in refusal(tmp_path, *args, token=token)
    assert not fake_hub.created and not fake_hub.uploads and not (tmp_path / "runs").exists()
