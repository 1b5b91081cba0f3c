"""Tensor names, shapes and dtypes from safetensors headers, without reading weights. Stdlib only.

A safetensors file starts with an 8-byte little-endian header length followed by a JSON header
naming every tensor with its dtype, shape and byte range; that is all this module reads.
"""

from __future__ import annotations

import json
import struct
from collections import Counter
from collections.abc import Iterable
from math import prod
from pathlib import Path

MAX_HEADER = 100 * 1024 * 1024
"""A header longer than this is taken for a corrupt file."""
DTYPE_NAMES = {"F32": "float32", "F16": "float16", "BF16": "bfloat16", "F64": "float64", "I8": "int8",
               "U8": "uint8", "I32": "int32", "F8_E4M3": "float8_e4m3fn", "F8_E5M2": "float8_e5m2"}
Shapes = tuple[tuple[str, tuple[int, ...]], ...]
"""Weight names (without the ``.weight`` suffix for matrices) and their shapes."""


class ModelError(ValueError):
    """A model tuitune cannot use; the message says what is wrong and what to do."""

    @classmethod
    def not_found(cls, name_or_path: str, exc: OSError) -> ModelError:
        """transformers' OSError for a model it cannot find (hub, network or files), said plainly."""
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return cls(f"model not found: {name_or_path}: {detail}")


def read_safetensors_shapes(folder: Path) -> tuple[Shapes, str | None]:
    """Shapes of every tensor in the folder's ``*.safetensors`` files, and the commonest dtype."""
    return shapes_from_headers(read_safetensors_header(file) for file in sorted(folder.glob("*.safetensors")))


def shapes_from_headers(headers: Iterable[dict]) -> tuple[Shapes, str | None]:
    """Shapes of every tensor the safetensors headers name (``{name: {"dtype", "shape"}}`` each, read from files or
    fetched from the Hub), and the commonest dtype."""
    shapes: dict[str, tuple[int, ...]] = {}
    sizes: Counter[str] = Counter()
    for header in headers:
        for name, entry in header.items():
            if name == "__metadata__":
                continue
            shape = tuple(int(n) for n in entry["shape"])
            shapes[name.removesuffix(".weight") if len(shape) == 2 else name] = shape
            sizes[entry["dtype"]] += prod(shape)
    dtype = sizes.most_common(1)[0][0] if sizes else None
    return tuple(shapes.items()), DTYPE_NAMES.get(dtype, dtype.lower()) if dtype else None


def read_safetensors_header(file: Path) -> dict:
    """The JSON header of one safetensors file (8-byte little-endian length, then JSON)."""
    try:
        return _header(file)[1]
    except (OSError, ValueError, struct.error) as exc:
        raise ModelError(f"{file}: not a readable safetensors file ({exc}). The download may be incomplete: "
                         "delete the file and download the model again.") from None


def safetensors_damage(file: Path) -> str | None:
    """How ``file`` is not a whole safetensors file, or None when it is: a header that does not parse, or
    fewer bytes than the header says the tensors take (a save or a copy cut short). Reads the header only."""
    try:
        length, header = _header(file)
        end = max((_data_end(entry) for name, entry in header.items() if name != "__metadata__"), default=0)
        size = file.stat().st_size
    except OSError as exc:
        return f"cannot be read ({exc.strerror or exc})"
    except (ValueError, struct.error) as exc:
        return f"has a header that does not parse ({exc})"
    if size < 8 + length + end:
        return f"is cut short: {size:,} bytes where its header says {8 + length + end:,}"
    return None


def weights_problem(folder: Path) -> str | None:
    """Why a folder of weights a run saved (its adapter, a checkpoint, a full fine-tune's model) cannot be
    loaded, as far as its files tell without loading them: ``FILE DAMAGE`` (:func:`safetensors_damage`) for the
    first safetensors file that is not whole; None when every one is."""
    for file in sorted(Path(folder).glob("*.safetensors")):
        if damage := safetensors_damage(file):
            return f"{file} {damage}"
    return None


def _header(file: Path) -> tuple[int, dict]:
    """The header's length and the header (raises OSError, ValueError or struct.error)."""
    with open(file, "rb") as handle:
        (length,) = struct.unpack("<Q", handle.read(8))
        if length > MAX_HEADER:
            raise ValueError(f"header length {length} is implausible")
        text = handle.read(length)
    if len(text) < length:
        raise ValueError(f"the file ends inside its {length}-byte header")
    header = json.loads(text)
    if not isinstance(header, dict):
        raise ValueError("the header is not a JSON object")
    return length, header


def _data_end(entry: object) -> int:
    """Where a tensor's bytes end after the header, from its ``data_offsets``."""
    offsets = entry.get("data_offsets") if isinstance(entry, dict) else None
    if not (isinstance(offsets, list) and len(offsets) == 2 and all(isinstance(n, int) for n in offsets)):
        raise ValueError(f"a tensor without data_offsets in its header: {str(entry)[:80]}")
    return offsets[1]
