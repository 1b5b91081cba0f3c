"""``tuitune import-lf LF.yaml -o run.yaml``: a LLaMA-Factory training config as a tuitune one.

Every key of the LLaMA-Factory file is mapped (the written config says from which key and line),
accepted as meaningless here (listed at the top of the written file), or refused with its line and
a reason, which writes nothing and exits 1. The output is written atomically and never over an
existing file unless ``--force`` is given, and never over the file being imported.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from engine.config import ConfigError, parse_config
from engine.files import write_text_atomic
from engine.lf.config import load_lf_or_none, to_yaml


def run(args: argparse.Namespace) -> int:
    """Import ``args.config`` into ``args.output``; 0 when written, 1 when refused."""
    source, output = Path(args.config), Path(args.output)
    if output.exists() and output.resolve() == source.resolve():
        print(f"error: {output}: this is the LLaMA-Factory file being imported; write the tuitune config "
              "elsewhere (-o run.yaml)", file=sys.stderr)
        return 1
    if output.exists() and not args.force:
        print(f"error: {output} exists; pass --force to replace it", file=sys.stderr)
        return 1
    try:
        imported = load_lf_or_none(source, dataset_dir=getattr(args, "dataset_dir", None))
    except ConfigError as exc:
        print(f"error: {source} cannot be imported:", *exc.problems, sep="\n  ", file=sys.stderr)
        return 1
    if imported is None:
        print(f"error: {source}: not a LLaMA-Factory training config (it needs model_name_or_path and one of "
              "stage, finetuning_type or dataset at the top level)", file=sys.stderr)
        return 1
    text = to_yaml(imported)
    parse_config(text, str(output))  # what is written must load back as the same config
    write_text_atomic(output, text)
    kinds = [note.kind for note in imported.notes]
    for warning in imported.warnings():
        print(f"warning: {warning}", file=sys.stderr)
    print(f"wrote {output}: {kinds.count('mapped')} keys mapped, {kinds.count('default')} LLaMA-Factory defaults "
          f"kept, {kinds.count('ignored')} accepted with no effect here, {kinds.count('warning')} warnings")
    run_dir = f" --run-dir {imported.run_dir}" if imported.run_dir else ""
    print(f"train it with: tuitune train {output}{run_dir}")
    return 0
