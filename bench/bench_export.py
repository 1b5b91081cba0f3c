"""Export: time and output sizes of ``tuitune export`` on the demo model, and the Ollama template checked in Go.

    python bench/bench_export.py [--run RUN]

Without --run it trains the identity demo first (tuitune train --preset cpu-first-try, a few minutes
on an idle 2-core CPU) into a temporary runs folder. Then it runs, as a user would, one export per
output kind (merged; gguf f16; gguf bf16; gguf q8_0 with --ollama) and one with everything, and
prints for each the wall time of the command (supervisor start, imports, model load and merge
included), the job's own ``elapsed_s`` and the size of every file written. When ``go`` is on the
PATH, the Modelfile's template is executed by Go's text/template (the engine Ollama uses) on three
conversations and compared with the model's own Jinja chat template.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from engine.protocol import read_events  # noqa: E402
from engine.units import fmt_bytes  # noqa: E402

EXPORTS = {
    "merged": ["--merged"],
    "f16": ["--gguf", "f16"],
    "bf16": ["--gguf", "bf16"],
    "q8_0-ollama": ["--gguf", "q8_0", "--ollama"],
    "everything": ["--merged", "--gguf", "f16", "--gguf", "bf16", "--gguf", "q8_0", "--ollama"],
}
CONVERSATIONS = [
    [{"role": "user", "content": "Who are you?"}],
    [{"role": "system", "content": "Answer briefly."}, {"role": "user", "content": "Hi"}],
    [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!\nHow can I help?"},
     {"role": "user", "content": "Tell me {{ a joke }}"}],
]
GO_RENDER = """package main

import (
	"encoding/json"
	"os"
	"text/template"
)

type Message struct{ Role, Content string }

func main() {
	var in struct {
		Template string
		Messages []Message
	}
	if err := json.NewDecoder(os.Stdin).Decode(&in); err != nil {
		panic(err)
	}
	t := template.Must(template.New("ollama").Parse(in.Template))
	if err := t.Execute(os.Stdout, map[string]any{"Messages": in.Messages}); err != nil {
		panic(err)
	}
}
"""


def env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "2")}


def train_demo(runs: Path) -> Path:
    run_dir = runs / "demo"
    subprocess.run([sys.executable, "-m", "tuitune", "train", "--preset", "cpu-first-try", "--run-dir", str(run_dir)],
                   check=True, cwd=REPO, env=env(), stdin=subprocess.DEVNULL)
    return run_dir


def export(run_dir: Path, label: str, name: str, flags: list[str]) -> Path:
    started = time.monotonic()
    subprocess.run([sys.executable, "-m", "tuitune", "--runs-dir", str(run_dir.parent), "export", str(run_dir),
                    *flags, "--name", name], check=True, cwd=REPO, env=env(), stdin=subprocess.DEVNULL,
                   stdout=subprocess.DEVNULL)
    wall = time.monotonic() - started
    job_dir = run_dir / "exports" / name
    end = read_events(job_dir)[-1]
    sizes = ", ".join(f"{o['name']} {fmt_bytes(o['bytes'])}" for o in end["outputs"])
    print(f"{label:<12} command {wall:5.1f} s  job {end['elapsed_s']:5.1f} s  {sizes}", flush=True)
    return job_dir


def check_in_go(job_dir: Path) -> None:
    go = shutil.which("go")
    if go is None:
        print("ollama template in Go: not checked (no `go` on the PATH; apt-get install golang-go)")
        return
    from transformers import AutoTokenizer

    template = re.search(r'TEMPLATE """(.*?)"""', (job_dir / "Modelfile").read_text(), re.S).group(1)
    tokenizer = AutoTokenizer.from_pretrained(job_dir / "merged")
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "main.go").write_text(GO_RENDER)
        subprocess.run([go, "mod", "init", "render"], cwd=tmp, check=True, capture_output=True)
        subprocess.run([go, "build", "-o", "render", "."], cwd=tmp, check=True, capture_output=True)
        same = 0
        for conversation in CONVERSATIONS:
            payload = {"Template": template,
                       "Messages": [{"Role": m["role"], "Content": m["content"]} for m in conversation]}
            rendered = subprocess.run([str(Path(tmp) / "render")], input=json.dumps(payload), text=True,
                                      capture_output=True, check=True).stdout
            same += rendered == tokenizer.apply_chat_template(conversation, tokenize=False, add_generation_prompt=True)
    print(f"ollama template in Go text/template: {same}/{len(CONVERSATIONS)} conversations equal to the Jinja template")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", type=Path, help="a trained run folder (default: train the demo first)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-export-") as tmp:
        run_dir = args.run.resolve() if args.run else train_demo(Path(tmp) / "runs")
        stamp = time.strftime("%H%M%S")
        jobs: list[Path] = []
        try:
            for label, flags in EXPORTS.items():
                jobs.append(export(run_dir, label, f"bench-{stamp}-{label}", flags))
            check_in_go(jobs[-1])
        finally:
            if args.run:  # leave the user's run as it was
                for job_dir in run_dir.glob(f"exports/bench-{stamp}-*"):
                    shutil.rmtree(job_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
