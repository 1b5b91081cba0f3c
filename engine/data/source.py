"""Reading instruction data files record by record, with the place of every record. Stdlib only.

JSON Lines are read a line at a time, so a 1 GB file costs no more memory than its longest
line; JSON arrays are parsed element by element so each record knows its line; folders saved
by ``datasets.save_to_disk`` are read through pyarrow (imported only then), and so are Hub datasets
(``hf:ORG/NAME[:SPLIT]``, loaded into the datasets cache first: :mod:`engine.data.hub`). Anything wrong
with the bytes — invalid UTF-8, JSON syntax — becomes a :class:`Problem` with line and column
instead of an exception.

Hostile input is refused with a located problem before it can hang or crash a reader: paths
that are not regular files or folders (a FIFO would block the check and the trainer forever),
records longer than MAX_RECORD_BYTES (the datasets JSON reader aborts the trainer on a 100 MB
line) and JSON nested deeper than MAX_NESTING (Python's parser overflows its stack).
"""

from __future__ import annotations

import json
import os
import re
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.data import hub
from engine.data.problems import Problem, SourceError
from engine.files import file_kind

SAMPLE_DATA_DIR = Path(__file__).resolve().parent / "sample_data"
BOM = b"\xef\xbb\xbf"
MAX_RECORD_BYTES = 16 << 20
"""Longest record (a JSON Lines line, or one element of a JSON array): 16 MiB, millions of
tokens, far past any cutoff_len; only a broken or hostile file has longer ones."""
MAX_NESTING = 100
"""Deepest nesting of arrays and objects in a record; chat records need about 5 levels."""
_JSON_TOKENS = {str: re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{}]'),
                bytes: re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{}]')}
"""A JSON string (skipped whole, so brackets inside text do not count) or a bracket."""


@dataclass
class RawRecord:
    """A record as read from the file, or the problem that stopped it being read."""

    index: int
    """0-based record index."""
    line: int | None
    """1-based line where the record starts."""
    value: Any = None
    """The parsed JSON value (usually a dict); None when ``problem`` is set."""
    problem: Problem | None = None
    """Why the record could not be read."""
    offset: int | None = None
    """Where the record starts in the file (bytes; characters in JSON arrays), for progress."""


def resolve_path(path: str) -> Path:
    """``builtin:NAME`` becomes the shipped ``engine/sample_data/NAME.jsonl``; other paths are expanded."""
    if path.startswith("builtin:"):
        name = path.split(":", 1)[1]
        found = SAMPLE_DATA_DIR / f"{name}.jsonl"
        if not found.is_file():
            names = ", ".join(sorted(p.stem for p in SAMPLE_DATA_DIR.glob("*.jsonl"))) or "none"
            raise SourceError(Problem(path, None, None, None,
                                      f"unknown built-in data set {name!r}; available: {names}"))
        return found
    return Path(path).expanduser()


def source_kind(path: Path, name: str | None = None) -> str:
    """``jsonl``, ``json`` (an array), ``arrow`` (a datasets folder) or ``txt`` (plain text, named ``*.txt``).

    JSON and JSON Lines are told apart by the content; plain text only by the ``.txt`` suffix, since a
    text file may start with anything.

    Raises:
        SourceError: for anything but a regular file or a folder (a FIFO, a device, a socket),
            checked before opening: opening a FIFO blocks until someone writes to it.
        OSError: when the path cannot be read.
    """
    mode = os.stat(path).st_mode
    if stat.S_ISDIR(mode):
        return "arrow"
    if not stat.S_ISREG(mode):
        raise SourceError(Problem(name or str(path), None, None, None, f"not a regular file ({file_kind(mode)}); "
                                  "give a JSON or JSON Lines file, or a folder saved by datasets"))
    if path.suffix.lower() == ".txt":
        return "txt"
    with path.open("rb") as file:
        head = file.read(4096).removeprefix(BOM).lstrip()
    return "json" if head.startswith(b"[") else "jsonl"


def iter_records(path: str) -> Iterator[RawRecord]:
    """Every record of the file or folder ``path`` (or the Hub dataset ``hf:…``) with its place; never raises for
    bad content.

    Raises:
        SourceError: when the path is missing or unreadable as a whole (a Hub dataset: not loadable).
    """
    if hub.is_hub(path):
        try:
            yield from _iter_arrow_files(hub.arrow_files(path), path, "the dataset's split is empty: no rows")
        except OSError as exc:  # the cache emptied meanwhile: the next read loads it again
            hub.forget(path)
            raise SourceError(Problem(path, None, None, None, f"cannot read its cached files: {exc}")) from None
        return
    real = resolve_path(path)
    if not real.exists():
        raise SourceError(Problem(path, None, None, None, "no such file or folder"))
    try:
        kind = source_kind(real, path)
        reader = {"jsonl": _iter_jsonl, "json": _iter_json_array, "arrow": _iter_arrow, "txt": _iter_text}[kind]
        yield from reader(real, path)
    except OSError as exc:
        raise SourceError(Problem(path, None, None, None, f"cannot read: {exc.strerror or exc}")) from None


def parse_line(raw: bytes, lineno: int, index: int, name: str) -> RawRecord:
    """One JSON Lines line as a record, or a located problem (too long, invalid UTF-8, too deep, JSON syntax)."""
    if len(raw) > MAX_RECORD_BYTES:
        return RawRecord(index, lineno, problem=too_long(name, lineno, index, len(raw)))
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return RawRecord(index, lineno, problem=_utf8_problem(name, lineno, index, raw, exc.start))
    if nested_too_deeply(text):
        return RawRecord(index, lineno, problem=_too_deep(name, lineno, index))
    try:
        return RawRecord(index, lineno, json.loads(text))
    except json.JSONDecodeError as exc:
        return RawRecord(index, lineno, problem=Problem(
            name, lineno, index, None, f"JSON syntax error: {exc.msg}", column=exc.colno))
    except RecursionError:  # the depth check above should keep this away; a stack may still be shallower
        return RawRecord(index, lineno, problem=_too_deep(name, lineno, index))


def nested_too_deeply(text: str | bytes, start: int = 0, end: int | None = None) -> bool:
    """Whether JSON ``text[start:end]`` nests arrays and objects deeper than MAX_NESTING (without parsing it)."""
    end = len(text) if end is None else end
    brackets = ("[", "{") if isinstance(text, str) else (b"[", b"{")
    if text.count(brackets[0], start, end) + text.count(brackets[1], start, end) <= MAX_NESTING:
        return False  # the common case, at C speed: too few brackets to nest that deep
    depth = 0
    for match in _JSON_TOKENS[type(text)].finditer(text, start, end):
        token = match.group()
        if token in brackets:
            depth += 1
            if depth > MAX_NESTING:
                return True
        elif len(token) == 1:
            depth -= 1
    return False


def too_long(name: str, line: int | None, index: int | None, size: int) -> Problem:
    """The problem of a record longer than MAX_RECORD_BYTES."""
    return Problem(name, line, index, None, f"the record is {size / (1 << 20):.1f} MiB long; one record (line) "
                                            f"may be at most {MAX_RECORD_BYTES >> 20} MiB")


def _too_deep(name: str, line: int | None, index: int | None) -> Problem:
    return Problem(name, line, index, None, f"JSON nested more than {MAX_NESTING} levels deep; a record needs a few")


def _utf8_problem(name: str, line: int, index: int | None, raw: bytes, pos: int) -> Problem:
    """A problem for the invalid byte at ``raw[pos]`` (``pos`` counted from the start of the line)."""
    message = f"text is not valid UTF-8 (byte 0x{raw[pos]:02x}); save the file as UTF-8"
    return Problem(name, line, index, None, message, column=pos + 1)


def _iter_jsonl(path: Path, name: str) -> Iterator[RawRecord]:
    index = offset = 0
    with path.open("rb") as file:
        for lineno, (raw, size) in enumerate(_bounded_lines(file), 1):
            offset += size
            if raw is None:
                yield RawRecord(index, lineno, problem=too_long(name, lineno, index, size), offset=offset - size)
                index += 1
                continue
            if lineno == 1:
                raw = raw.removeprefix(BOM)
            if not raw.strip():
                continue
            record = parse_line(raw, lineno, index, name)
            record.offset = offset - len(raw)
            if index == 0 and record.problem and "syntax" in record.problem.message:
                whole = _whole_object_problem(path, name)
                if whole is not None:
                    yield RawRecord(0, 1, problem=whole)
                    return
            yield record
            index += 1
    if index == 0:
        yield RawRecord(0, None, problem=Problem(name, None, None, None, "the file is empty: no records"))


def _bounded_lines(file: Any) -> Iterator[tuple[bytes | None, int]]:
    """``(line, size)`` of each line of a binary file; a line over MAX_RECORD_BYTES comes as
    ``(None, size)`` and is skipped a chunk at a time, never held in memory whole."""
    while raw := file.readline(MAX_RECORD_BYTES + 1):
        if len(raw) <= MAX_RECORD_BYTES:
            yield raw, len(raw)
            continue
        size = len(raw)
        while not raw.endswith(b"\n") and (raw := file.readline(1 << 20)):
            size += len(raw)
        yield None, size


def _whole_object_problem(path: Path, name: str) -> Problem | None:
    """When a file that is not JSON Lines holds one JSON object, say so (and where the records may be)."""
    if path.stat().st_size > 256 * 1024 * 1024:
        return None
    try:
        value = json.loads(path.read_bytes().removeprefix(BOM))
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None
    if not isinstance(value, dict):
        return None
    keys = [k for k, v in value.items() if isinstance(v, list) and v and isinstance(v[0], dict)]
    hint = f" (the records seem to be under key {keys[0]!r}: keep just that array)" if keys else ""
    return Problem(name, 1, None, None, "the file holds a single JSON object; expected a JSON array of "
                   f"records or JSON Lines (one record per line){hint}")


def _iter_json_array(path: Path, name: str) -> Iterator[RawRecord]:
    data = path.read_bytes().removeprefix(BOM)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        start = data.rfind(b"\n", 0, exc.start) + 1
        line = data.count(b"\n", 0, exc.start) + 1
        yield RawRecord(0, line, problem=_utf8_problem(name, line, None, data[start:], exc.start - start))
        return
    decoder = json.JSONDecoder()
    pos, line, counted = _skip_ws(text, text.index("[") + 1), 1, 0
    index = 0
    while pos < len(text) and text[pos] != "]":
        line, counted = line + text.count("\n", counted, pos), pos
        try:
            value, end = decoder.raw_decode(text, pos)
        except json.JSONDecodeError as exc:
            yield RawRecord(index, exc.lineno, problem=Problem(
                name, exc.lineno, index, None, f"JSON syntax error: {exc.msg}", column=exc.colno))
            return
        except RecursionError:  # too deep to find where the record ends, so nothing after it is read
            yield RawRecord(index, line, problem=_too_deep(name, line, index))
            return
        if end - pos > MAX_RECORD_BYTES:  # characters, not bytes: the same for the ASCII of JSON syntax
            yield RawRecord(index, line, problem=too_long(name, line, index, end - pos), offset=pos)
        elif nested_too_deeply(text, pos, end):
            yield RawRecord(index, line, problem=_too_deep(name, line, index), offset=pos)
        else:
            yield RawRecord(index, line, value, offset=pos)
        index += 1
        pos = _skip_ws(text, end)
        if pos < len(text) and text[pos] == ",":
            pos = _skip_ws(text, pos + 1)
            if pos < len(text) and text[pos] == "]":
                yield RawRecord(index, None, problem=_syntax_at(text, pos, name, None, "trailing comma before ']'"))
                return
        elif pos < len(text) and text[pos] != "]":
            yield RawRecord(index, None,
                            problem=_syntax_at(text, pos, name, index, "expected ',' or ']' after a record"))
            return
    if pos >= len(text):
        yield RawRecord(index, None, problem=_syntax_at(text, pos, name, None, "the array is not closed with ']'"))
    elif text[_skip_ws(text, pos + 1):].strip():
        yield RawRecord(index, None, problem=_syntax_at(text, _skip_ws(text, pos + 1), name, None,
                                                        "extra data after the closing ']'"))
    elif index == 0:
        yield RawRecord(0, None, problem=Problem(name, None, None, None, "the array is empty: no records"))


def _skip_ws(text: str, pos: int) -> int:
    while pos < len(text) and text[pos] in " \t\r\n":
        pos += 1
    return pos


def _syntax_at(text: str, pos: int, name: str, index: int | None, message: str) -> Problem:
    line = text.count("\n", 0, pos) + 1
    column = pos - (text.rfind("\n", 0, pos) + 1) + 1
    return Problem(name, line, index, None, f"JSON syntax error: {message}", column=column)


def arrow_files(folder: Path) -> list[Path]:
    """The arrow files of a ``save_to_disk`` folder (the ``train`` split of a DatasetDict)."""
    if (folder / "dataset_dict.json").is_file():
        splits = json.loads((folder / "dataset_dict.json").read_text())["splits"]
        folder = folder / ("train" if "train" in splits else splits[0])
    state = folder / "state.json"
    if not state.is_file():
        raise FileNotFoundError("not a folder saved by datasets (no state.json or dataset_dict.json)")
    return [folder / f["filename"] for f in json.loads(state.read_text())["_data_files"]]


def _iter_arrow(path: Path, name: str) -> Iterator[RawRecord]:
    try:
        files = arrow_files(path)
    except (FileNotFoundError, ValueError, KeyError, IndexError) as exc:
        raise SourceError(Problem(name, None, None, None, str(exc))) from None
    yield from _iter_arrow_files(files, name, "the dataset is empty: no records")


def _iter_arrow_files(files: list[Path], name: str, empty: str) -> Iterator[RawRecord]:
    """The rows of arrow files written by ``datasets`` (streaming IPC format), numbered across the files."""
    import pyarrow  # only datasets folders need it; it is not part of the ML stack

    index = 0
    for file in files:
        with pyarrow.memory_map(str(file)) as source:
            for batch in pyarrow.ipc.open_stream(source):
                for row in batch.to_pylist():
                    yield RawRecord(index, None, row)
                    index += 1
    if index == 0:
        yield RawRecord(0, None, problem=Problem(name, None, None, None, empty))


TEXT_BLOCKS = "one document per blank-line-separated block: tuitune's reading, so a paragraph stays one document"
"""How :func:`iter_records` reads a ``.txt`` file, for reports."""
TEXT_LINES = "one document per line, as LLaMA-Factory reads .txt files"
"""How :func:`iter_text_lines` reads a ``.txt`` file, for reports."""


def iter_text_lines(path: str) -> Iterator[RawRecord]:
    """A ``.txt`` file as LLaMA-Factory (datasets' text loader) reads it: ``{"text": …}`` per line, each at
    its line; blank lines hold no document and are skipped.

    Raises:
        SourceError: when the file is missing or unreadable as a whole.
    """
    try:
        yield from _iter_text(resolve_path(path), path, per_line=True)
    except OSError as exc:
        raise SourceError(Problem(path, None, None, None, f"cannot read: {exc.strerror or exc}")) from None


def _iter_text(path: Path, name: str, per_line: bool = False) -> Iterator[RawRecord]:
    """A plain-text file as records ``{"text": …}``: one document per block of lines, blocks separated by
    blank lines (a line of only whitespace counts as blank), or with ``per_line`` one per line; each
    record starts at its first line."""
    index = offset = 0
    block: list[bytes] = []
    start = start_offset = 0

    def flush() -> RawRecord:
        raw = b"".join(block).rstrip(b"\r\n")
        if len(raw) > MAX_RECORD_BYTES:
            return RawRecord(index, start, problem=too_long(name, start, index, len(raw)), offset=start_offset)
        try:
            return RawRecord(index, start, {"text": raw.decode("utf-8")}, offset=start_offset)
        except UnicodeDecodeError as exc:
            line = start + raw.count(b"\n", 0, exc.start)
            column = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1)
            return RawRecord(index, line, problem=_utf8_problem(name, line, index, raw[exc.start - column:], column))

    with path.open("rb") as file:
        for lineno, (raw, size) in enumerate(_bounded_lines(file), 1):
            offset += size
            if raw is not None and lineno == 1:
                raw = raw.removeprefix(BOM)
            if raw is not None and not raw.strip():
                if block:
                    yield flush()
                    index += 1
                    block = []
                continue
            if not block:
                start, start_offset = lineno, offset - size
            block.append(raw if raw is not None else b"\xff" * (MAX_RECORD_BYTES + 1))
            if per_line:
                yield flush()
                index += 1
                block = []
    if block:
        yield flush()
        index += 1
    if index == 0:
        yield RawRecord(0, None, problem=Problem(name, None, None, None, "the file is empty: no text"))
