"""The fake Hub (tests/fixtures/hub/server.py) answers the real huggingface_hub client as the Hub does, so the
tests of pull, hf: datasets and push test tuitune, not a stub: downloads, a gated and a missing repo, uploads."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

CLIENT = """
import json, sys
from huggingface_hub import HfApi, hf_hub_download, snapshot_download
from huggingface_hub.errors import GatedRepoError, RepositoryNotFoundError
out = {"snapshot": sorted(p.name for p in __import__("pathlib").Path(snapshot_download("org/model")).iterdir())}
for repo, kind in (("org/gated", GatedRepoError), ("org/missing", RepositoryNotFoundError)):
    try:
        hf_hub_download(repo, "config.json")
    except kind as exc:
        out[repo] = type(exc).__name__
out["with token"] = open(hf_hub_download("org/gated", "config.json", token="hf_test_token")).read()
api = HfApi(token="hf_test_token")
api.create_repo("tester/pushed", private=True, exist_ok=True)
api.create_repo("tester/pushed", exist_ok=True)
api.upload_folder(repo_id="tester/pushed", folder_path=sys.argv[1])
print(json.dumps(out))
"""


def test_the_real_client_downloads_is_refused_and_uploads_as_on_the_hub(fake_hub, tmp_path: Path) -> None:
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text('{"model_type": "llama"}')
    big = os.urandom(11 << 20)  # over the LFS threshold: uploaded through the LFS batch API
    (model / "model.safetensors").write_bytes(big)
    fake_hub.add("org/model", model)
    fake_hub.add("org/gated", model, gated=True)

    done = subprocess.run([sys.executable, "-c", CLIENT, str(model)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout.splitlines()[-1])
    assert out["snapshot"] == ["config.json", "model.safetensors"]
    assert out["org/gated"] == "GatedRepoError" and out["org/missing"] == "RepositoryNotFoundError"
    assert out["with token"] == '{"model_type": "llama"}'
    assert fake_hub.sent["org/model/model.safetensors"] == len(big)
    assert fake_hub.uploads["tester/pushed"] == {"config.json": b'{"model_type": "llama"}', "model.safetensors": big}
    assert fake_hub.created[0]["visibility"] == "private" and fake_hub.repos[("model", "tester/pushed")].private
