"""An adapter that travels: a clean PEFT folder naming the base model the user chose.

PEFT records ``base_model_name_or_path`` as the path the base was loaded from. For the demo
model that is a folder in this machine's cache, meaningless anywhere else; the run's own
``model.name_or_path`` (a hub id, a folder, or the demo alias that tuitune resolves) is what
the user chose, so that is what the exported adapter (and its model card) names. Standard
library only: the app may call this.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from engine.files import staging_dir

ADAPTER_FILES = ("adapter_config.json", "adapter_model.safetensors", "adapter_model.bin", "README.md",
                 "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "chat_template.jinja",
                 "chat_template.json", "tokenizer.model", "vocab.json", "merges.txt", "added_tokens.json",
                 "generation_config.json")
"""What a clean PEFT folder holds: the adapter, its card, and the tokenizer it was trained with.
Training state (optimizer, scheduler, RNG, trainer_state.json, training_args.bin) stays behind."""


def name_base_model(folder: Path, base: str) -> None:
    """Make the adapter in ``folder`` name ``base`` as its base model (config and model card)."""
    config_path = folder / "adapter_config.json"
    config = json.loads(config_path.read_text(encoding="utf-8"))
    loaded_from = config.get("base_model_name_or_path")
    config["base_model_name_or_path"] = base
    config_path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    card = folder / "README.md"
    if card.is_file() and isinstance(loaded_from, str) and loaded_from and loaded_from != base:
        # peft's card names the loaded path in its front matter (base_model, base_model:adapter: tag).
        text = card.read_text(encoding="utf-8")
        card.write_text(text.replace(loaded_from, base), encoding="utf-8")


def name_chosen_base(folder: Path, run_dir: Path) -> None:
    """Make an adapter just saved into ``folder`` name the base model of ``run_dir``'s config.yaml.

    Nothing happens when ``folder`` holds no adapter (a full fine-tune) or the run's config
    names no model.
    """
    import yaml

    config_path = run_dir / "config.yaml"
    if not (folder / "adapter_config.json").is_file() or not config_path.is_file():
        return
    config = yaml.safe_load(config_path.read_text(encoding="utf-8")) or {}
    chosen = (config.get("model") or {}).get("name_or_path") if isinstance(config, dict) else None
    if isinstance(chosen, str) and chosen:
        name_base_model(folder, chosen)


def copy_adapter(weights: Path, destination: Path, base: str) -> Path:
    """Copy the PEFT adapter of ``weights`` into a new folder ``destination``, naming ``base``.

    Written into a temporary sibling and renamed into place, so ``destination`` appears whole.

    Raises:
        FileNotFoundError: ``weights`` holds no adapter_config.json.
        FileExistsError: ``destination`` exists and is not an empty folder (it is never overwritten).
    """
    if not (weights / "adapter_config.json").is_file():
        raise FileNotFoundError(f"no adapter in {weights} (no adapter_config.json)")
    destination = destination.resolve()
    if destination.exists() and (not destination.is_dir() or any(destination.iterdir())):
        raise FileExistsError(f"{destination} already exists; give a new or empty folder")
    destination.parent.mkdir(parents=True, exist_ok=True)
    staging = staging_dir(destination.parent, f".{destination.name}.")
    try:
        for name in ADAPTER_FILES:
            if (weights / name).is_file():
                shutil.copy2(weights / name, staging / name)
        name_base_model(staging, base)
        if destination.exists():
            destination.rmdir()
        os.replace(staging, destination)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return destination
