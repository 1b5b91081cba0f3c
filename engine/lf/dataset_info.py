"""LLaMA-Factory's ``dataset_info.json``: dataset names to files tuitune's data layer reads. No torch.

LLaMA-Factory names its datasets in ``DATASET_DIR/dataset_info.json``: each entry gives a
``file_name`` (a file, or a folder of files, under the dataset folder), a ``formatting``
(``alpaca``, ``sharegpt`` or ``openai``), a ``columns`` map from its roles (prompt, query, response,
history, messages, system, chosen, rejected, kto_tag…) to the record's own field names, ``tags``
for the role and content keys and values of sharegpt turns, and ``ranking`` for preference pairs.

An entry whose files already use our layouts' field names (the usual case: LLaMA-Factory's own
defaults are alpaca's ``instruction/input/output`` and sharegpt's ``conversations/from/value/human/
gpt``) is trained from the user's file as it is. Any other mapping is applied by
:func:`iter_mapped`, which reads the file through :func:`engine.data.source.iter_records` and renames
the fields of each record in memory (the Data screen's preview uses it as it is); for training, the
mapped records are written once as JSON Lines into tuitune's cache folder (``~/.cache/tuitune/
lf-data/``), never into the user's folder, and never over a user file. The cache and not the run
folder, because the config is composed (and its data checked) before a run folder exists, and
``tuitune import-lf`` writes a config that must train later; the file's name holds a hash of the
source (path, size, time) and of the mapping, so a changed source gets a new file. Each mapped
record keeps its source line (blank lines pad the converted file), so a problem found in it names
the same line as in the user's file.

An entry with ``hf_hub_url`` (LLaMA-Factory reads it before ``file_name``, as here) names a dataset on the
Hugging Face Hub: it becomes the data path ``hf:ORG/NAME:SPLIT`` (:mod:`engine.data.hub`), loaded through
``datasets`` into its cache and read as any file is; a mapped one is converted from those rows as a file is (the
cache key holds the cached files' names, which change with the dataset's revision). Entries that point at other
hubs (``ms_hub_url``, ``om_hub_url``), at a loading script (``script_url``) or at cloud storage
(``cloud_file_name``) are listed with why they cannot be used.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.config import ConfigError
from engine.data import hub
from engine.data.formats import MEDIA_FIELDS, stages_for
from engine.data.problems import HUB_PREFIX, SourceError
from engine.data.source import TEXT_LINES, RawRecord, iter_records, iter_text_lines
from engine.files import FileTooLarge, NotARegularFile, file_stamp, read_regular, write_text_atomic
from engine.paths import cache_dir
from engine.stages import DEFAULT_STAGE, STAGES

DATA_CONFIG = "dataset_info.json"
MAX_INFO_BYTES = 8 << 20
"""Largest dataset_info.json read (LLaMA-Factory's own, with hundreds of entries, is about 30 KiB)."""
READABLE_SUFFIXES = (".json", ".jsonl", ".txt")
"""Files in a dataset folder that tuitune reads (LLaMA-Factory also reads csv, parquet and arrow)."""
ALPACA_COLUMNS = {"prompt": "instruction", "query": "input", "response": "output", "history": "history",
                  "system": "system", "chosen": "chosen", "rejected": "rejected", "kto_tag": "kto_tag"}
"""LLaMA-Factory's alpaca column roles and the field our alpaca layouts read for each."""
LF_DEFAULT_COLUMNS = {"prompt": "instruction", "query": "input", "response": "output",
                      "messages": "conversations"}
"""Columns LLaMA-Factory assumes when ``columns`` leaves them out (the rest default to none)."""
LF_DEFAULT_TAGS = {"role_tag": "from", "content_tag": "value", "user_tag": "human", "assistant_tag": "gpt",
                   "observation_tag": "observation", "function_tag": "function_call", "system_tag": "system"}
"""LLaMA-Factory's sharegpt tags when ``tags`` leaves them out."""
KNOWN_KEYS = {"file_name", "formatting", "ranking", "columns", "tags", "subset", "split", "folder", "num_samples",
              "hf_hub_url", "ms_hub_url", "om_hub_url", "script_url", "cloud_file_name", "file_sha1", "load_from"}
UNSUPPORTED_COLUMNS = {"tools": "tool calls", **MEDIA_FIELDS}
"""Columns tuitune cannot train yet, and what they hold."""


@dataclass
class Entry:
    """One dataset of a dataset_info.json, as tuitune understands it."""

    name: str
    """The dataset's name (the key in dataset_info.json)."""
    line: int | None
    """Line of its key in dataset_info.json."""
    usable: bool
    """Whether tuitune can train on it here, offline."""
    reason: str = ""
    """Why it cannot be used (hub, script, cloud, missing file, unsupported columns), when not usable."""
    files: list[Path] = field(default_factory=list)
    """The data files it names (a folder's readable files, sorted)."""
    hub: str = ""
    """``hf:ORG/NAME:SPLIT`` when it names a dataset on the Hugging Face Hub (``hf_hub_url``) instead of files."""
    formatting: str = "alpaca"
    """LLaMA-Factory's formatting: alpaca, sharegpt or openai."""
    ranking: bool = False
    """Preference pairs (chosen and rejected)."""
    columns: dict[str, str] = field(default_factory=dict)
    """Column role to the record's field, LLaMA-Factory's defaults filled in."""
    tags: dict[str, str] = field(default_factory=dict)
    """sharegpt tags, LLaMA-Factory's defaults filled in."""

    def layout(self, stage: str) -> str:
        """The tuitune layout (data.format) its records take once mapped, for ``stage``."""
        if STAGES[stage].kind == "text":
            return "text"
        chat = self.formatting in ("sharegpt", "openai")
        if self.ranking:
            return "sharegpt_pairs" if chat else "alpaca_pairs"
        if self.columns.get("kto_tag"):
            return "sharegpt_kto" if chat else "alpaca_kto"
        if chat and self._openai_as_is():
            return "openai"
        return "sharegpt" if chat else "alpaca"

    def identity(self, stage: str) -> bool:
        """Whether its files already use our layouts' field names, so they train as they are."""
        if STAGES[stage].kind == "text":
            return self.columns.get("prompt") == "text"
        if self.formatting == "alpaca":
            return all(self.columns.get(role) in (None, ours) for role, ours in ALPACA_COLUMNS.items())
        # every column is looked at, whichever turn style: a kto_tag kept under another name needs the copy
        same_columns = all(self.columns.get(role) in (None, role)
                           for role in ("system", "chosen", "rejected", "kto_tag"))
        if self._openai_as_is():
            return same_columns and not self.ranking
        plain = {"role_tag": "from", "content_tag": "value", "user_tag": "human", "assistant_tag": "gpt",
                 "system_tag": "system"}
        return (self.columns.get("messages") in ("conversations", "messages")
                and all(self.tags.get(k) == v for k, v in plain.items()) and same_columns)

    def _openai_as_is(self) -> bool:
        """Turns of ``{role, content}`` with role names user/assistant/system under ``messages``."""
        want = {"role_tag": "role", "content_tag": "content", "user_tag": "user", "assistant_tag": "assistant",
                "system_tag": "system"}
        return self.columns.get("messages") == "messages" and all(self.tags.get(k) == v for k, v in want.items())


@dataclass
class Resolved:
    """Dataset names resolved to what a run config's data section holds."""

    paths: list[str]
    """data.train: the user's files, or converted copies in the cache."""
    format: str
    """data.format: one layout when every dataset has the same, else auto (detected per file)."""
    notes: list[str] = field(default_factory=list)
    """What was done: which files were converted and where to, samples limits."""


def read_dataset_info(dataset_dir: str | os.PathLike[str]) -> tuple[dict[str, Any], str, Path]:
    """The parsed dataset_info.json of ``dataset_dir``, its text and its path.

    Raises:
        ConfigError: naming the file (and line) when it is missing, unreadable or not a JSON object.
    """
    path = Path(dataset_dir).expanduser() / DATA_CONFIG
    try:
        text = read_regular(path, MAX_INFO_BYTES).decode("utf-8")
    except FileNotFoundError:
        raise ConfigError([f"{path}: no such file; dataset names are looked up in DATASET_DIR/{DATA_CONFIG} "
                           "(set dataset_dir, or --dataset-dir)"]) from None
    except (NotARegularFile, FileTooLarge, OSError, UnicodeDecodeError) as exc:
        raise ConfigError([f"{path}: cannot read: {exc}"]) from None
    try:
        info = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError([f"{path}:{exc.lineno}:{exc.colno}: JSON syntax error: {exc.msg}"]) from None
    if not isinstance(info, dict):
        raise ConfigError([f"{path}:1: expected a JSON object of datasets by name"])
    return info, text, path


def list_datasets(dataset_dir: str | os.PathLike[str]) -> list[Entry]:
    """Every dataset of ``dataset_dir/dataset_info.json``, each usable or with the reason it is not.

    Raises:
        ConfigError: when the file itself cannot be read.
    """
    info, text, path = read_dataset_info(dataset_dir)
    return [entry(name, spec, path.parent, _key_line(text, name)) for name, spec in info.items()]


def entry(name: str, spec: Any, dataset_dir: Path, line: int | None = None) -> Entry:
    """One dataset_info.json entry as an Entry (never raises: what is wrong becomes its reason)."""
    if not isinstance(spec, dict):
        return Entry(name, line, False, "expected an object with file_name, formatting, columns…")
    columns = {**LF_DEFAULT_COLUMNS, **{k: v for k, v in (spec.get("columns") or {}).items() if v is not None}}
    tags = {**LF_DEFAULT_TAGS, **{k: v for k, v in (spec.get("tags") or {}).items() if v is not None}}
    found = Entry(name, line, False, formatting=str(spec.get("formatting", "alpaca")),
                  ranking=spec.get("ranking") is True, columns=columns, tags=tags)
    found.reason = _unusable(spec, found)
    if found.reason:
        return found
    if "hf_hub_url" in spec:
        return _on_hub(found, spec)
    files, why = _files(dataset_dir / str(spec["file_name"]))
    found.files, found.reason, found.usable = files, why, not why
    return found


def _on_hub(found: Entry, spec: dict[str, Any]) -> Entry:
    """``found`` as the Hub dataset its ``hf_hub_url`` and ``split`` name (unusable if they are malformed)."""
    path = f"{HUB_PREFIX}{spec['hf_hub_url']}:{spec.get('split') or 'train'}"
    try:
        found.hub = hub.parse(path).name
    except SourceError as exc:
        found.reason = f"hf_hub_url: {exc.problem.message}"
    found.usable = not found.reason
    return found


def _unusable(spec: dict[str, Any], found: Entry) -> str:
    """Why an entry cannot be used here, or ''."""
    on_hf = "hf_hub_url" in spec
    for key, where in (("ms_hub_url", "ModelScope"), ("om_hub_url", "Modelers (OpenMind)")):
        if key in spec and not on_hf:
            return (f"loads from {where} ({spec[key]}), which tuitune does not reach; download it and "
                    "point file_name at the files")
    if "script_url" in spec:
        return (f"loads through a dataset script ({spec['script_url']}), which tuitune does not run; "
                "save it as JSON Lines")
    if "cloud_file_name" in spec:
        return f"loads from cloud storage ({spec['cloud_file_name']}); copy the file here and use file_name"
    if "file_name" not in spec and not on_hf:
        return "no file_name"
    unknown = sorted(set(spec) - KNOWN_KEYS)
    if unknown:
        return f"unknown key(s) {', '.join(unknown)}"
    if found.formatting not in ("alpaca", "sharegpt", "openai"):
        return f"formatting {found.formatting!r}; LLaMA-Factory's are alpaca, sharegpt and openai"
    for column, what in UNSUPPORTED_COLUMNS.items():
        if found.columns.get(column):
            return f"has a {column} column ({what}), which tuitune cannot train yet"
    for key in ("subset", "folder"):
        if spec.get(key):
            return (f"{key} {spec[key]!r} (a part of a Hub dataset) is not read by tuitune yet; save that part as "
                    "JSON Lines and point file_name at it" if on_hf else
                    f"{key} {spec[key]!r} applies to hub datasets; point file_name at the files instead")
    if spec.get("split", "train") != "train" and not on_hf:
        return f"split {spec['split']!r}: local files have only the train split"
    if spec.get("num_samples") is not None:
        return "num_samples (a random sample of the file) is not supported; use max_samples (the first N records)"
    return ""


def _files(path: Path) -> tuple[list[Path], str]:
    """The data files ``file_name`` names, or why there are none that tuitune reads."""
    if path.is_dir():
        if (path / "state.json").is_file() or (path / "dataset_dict.json").is_file():
            return [path], ""  # a folder saved by datasets
        inside = sorted(p for p in path.iterdir() if p.is_file() and not p.name.startswith("."))
        readable = [p for p in inside if p.suffix.lower() in READABLE_SUFFIXES]
        if not readable:
            kinds = ", ".join(sorted({p.suffix or p.name for p in inside})) or "nothing"
            return [], f"{path}: no JSON, JSON Lines or .txt files in the folder (found {kinds})"
        return readable, ""
    if not path.exists():
        return [], f"{path}: no such file or folder"
    if path.suffix.lower() not in READABLE_SUFFIXES:
        return [], (f"{path}: {path.suffix or 'this'} files are not read by tuitune yet; save it as JSON Lines "
                    "(one record a line)")
    return [path], ""


def resolve(names: list[str], dataset_dir: str | os.PathLike[str], stage: str = DEFAULT_STAGE,
            max_samples: int | None = None, cache: Path | None = None) -> Resolved:
    """The data paths and format for LLaMA-Factory dataset ``names`` of ``dataset_dir``, converting
    (into ``cache``, by default tuitune's cache folder) the files whose fields need mapping.

    Raises:
        ConfigError: naming dataset_info.json and the line of each dataset that cannot be used,
            or the data file and line of a record that cannot be read.
    """
    info, text, path = read_dataset_info(dataset_dir)
    cache = cache or cache_dir() / "lf-data"
    problems: list[str] = []
    paths: list[str] = []
    layouts: list[str] = []
    notes: list[str] = []
    for name in names:
        if name not in info:
            known = ", ".join(sorted(info)[:20])
            problems.append(f"{path}: no dataset named {name!r}; it has: {known}")
            continue
        found = entry(name, info[name], path.parent, _key_line(text, name))
        if not found.usable:
            problems.append(f"{path}:{found.line or 1} {name}: cannot be used: {found.reason}")
            continue
        layouts.append(found.layout(stage))
        for source in [found.hub] if found.hub else [str(file.resolve()) for file in found.files]:
            plain_text = _is_text_file(source)
            if plain_text and STAGES[stage].kind != "text":
                problems.append(f"{name}: {source}: a .txt file holds raw text ({TEXT_LINES}), which stage {stage} "
                                f"cannot train: it is pretraining data, for stage {stages_for('text')} "
                                f"(--stage {stages_for('text')}, or stage: {stages_for('text')} in the YAML)")
                continue
            if found.identity(stage) and max_samples is None and not plain_text:
                paths.append(source)
                continue
            try:
                converted = convert(found, source, stage, cache, max_samples)
            except ConfigError as exc:
                problems.extend(exc.problems)
                continue
            paths.append(str(converted))
            notes.append(f"{name}: {source} read " + (TEXT_LINES if plain_text else "through its column mapping")
                         + (f" (first {max_samples} records)" if max_samples is not None else "")
                         + f"; converted copy {converted} (line numbers kept)")
    if problems:
        raise ConfigError(problems)
    fmt = layouts[0] if len(set(layouts)) == 1 else "auto"
    if fmt == "auto" and layouts:
        notes.append(f"the datasets have different layouts ({', '.join(sorted(set(layouts)))}): data.format auto "
                     "detects each file's own")
    return Resolved(paths, fmt, notes)


def _is_text_file(source: str | Path) -> bool:
    """Whether ``source`` is a plain-text file (LLaMA-Factory reads it one document per line), not a Hub dataset."""
    return not str(source).startswith(HUB_PREFIX) and str(source).lower().endswith(".txt")


def iter_mapped(found: Entry, source: str | Path, stage: str = DEFAULT_STAGE) -> Iterator[RawRecord]:
    """The records of ``source`` (a file, or an ``hf:`` dataset) with ``found``'s column mapping applied, each at
    its own line.

    Records that cannot be read keep their problem (file and line are the user's). A ``.txt`` file is
    read as LLaMA-Factory reads it: one document per line.
    """
    for raw in (iter_text_lines if _is_text_file(source) else iter_records)(str(source)):
        if raw.problem is None:
            raw.value = map_record(raw.value, found, stage)
        yield raw


def map_record(record: Any, found: Entry, stage: str = DEFAULT_STAGE) -> Any:
    """One record with LLaMA-Factory's columns and tags renamed to our layouts' fields.

    Anything that is not as expected (not an object, a turn that is not an object) is passed on
    unchanged, for our checks to name.
    """
    if not isinstance(record, dict):
        return record
    cols = found.columns
    if STAGES[stage].kind == "text":
        return {"text": record.get(cols.get("prompt", "instruction"))}
    out: dict[str, Any] = {}
    if found.formatting == "alpaca":
        for role, ours in ALPACA_COLUMNS.items():
            if cols.get(role) and cols[role] in record:
                out[ours] = record[cols[role]]
        return out
    roles = {found.tags["user_tag"]: "human", found.tags["assistant_tag"]: "gpt", found.tags["system_tag"]: "system"}

    def turn(item: Any) -> Any:
        if not isinstance(item, dict):
            return item
        role = item.get(found.tags["role_tag"])
        return {"from": roles.get(role, role) if isinstance(role, str) else role,
                "value": item.get(found.tags["content_tag"])}

    messages = record.get(cols.get("messages", "conversations"))
    out["conversations"] = [turn(t) for t in messages] if isinstance(messages, list) else messages
    for role in ("system", "kto_tag"):
        if cols.get(role) and cols[role] in record:
            out[role] = record[cols[role]]
    for role in ("chosen", "rejected"):
        if cols.get(role) and cols[role] in record:
            value = record[cols[role]]
            out[role] = [turn(t) for t in value] if isinstance(value, list) else turn(value)
    return out


def convert(found: Entry, source: str | Path, stage: str, cache: Path, max_samples: int | None = None) -> Path:
    """The mapped JSON Lines copy of ``source`` (a file, or an ``hf:`` dataset) in ``cache``, written once
    (atomically) and reused.

    Raises:
        ConfigError: locating (in the user's file, or the dataset's row) a record that cannot be read.
    """
    try:
        stem, version = _version(str(source))
    except SourceError as exc:
        raise ConfigError([f"{found.name}: {exc.problem}"]) from None
    key = json.dumps([*version, found.formatting, found.ranking, found.columns, found.tags, stage, max_samples],
                     sort_keys=True)
    target = cache / f"{found.name}-{stem}-{hashlib.sha256(key.encode()).hexdigest()[:16]}.jsonl"
    if target.is_file():
        return target
    lines: list[str] = []
    try:
        for count, raw in enumerate(iter_mapped(found, source, stage)):
            if max_samples is not None and count >= max_samples:
                break
            if raw.problem is not None:
                raise ConfigError([f"{found.name}: {raw.problem}"])
            if raw.line is not None:
                lines.extend([""] * (raw.line - 1 - len(lines)))  # keep the record on its source line
            lines.append(json.dumps(raw.value, ensure_ascii=False))
    except SourceError as exc:
        raise ConfigError([f"{found.name}: {exc.problem}"]) from None
    write_text_atomic(target, "\n".join(lines) + "\n")
    return target


def _version(source: str) -> tuple[str, list[Any]]:
    """A name for ``source``'s converted copy and what changes when its content does: a file's path, size and
    time; a Hub dataset's cached arrow files (their folder is named for the revision's files).

    Raises:
        SourceError: when a Hub dataset cannot be loaded.
    """
    if hub.is_hub(source):
        dataset = hub.parse(source)
        return f"{dataset.repo_id.split('/')[1]}-{dataset.split}", [str(p) for p in hub.arrow_files(source)]
    return Path(source).stem, file_stamp(Path(source))


def _key_line(text: str, name: str) -> int | None:
    """The line of ``"name":`` in dataset_info.json's text (its first mention as a key)."""
    match = re.search(r'"' + re.escape(json.dumps(name)[1:-1]) + r'"\s*:', text)
    return text.count("\n", 0, match.start()) + 1 if match else None


def data_flags(names: list[str], dataset_dir: str | os.PathLike[str], stage: str = DEFAULT_STAGE,
               cache: Path | None = None) -> dict[str, tuple[str, Any]]:
    """``--data NAME… --dataset-dir DIR`` as compose_config flags: data.train and data.format.

    Raises:
        ConfigError: as :func:`resolve`.
    """
    resolved = resolve([part for name in names for part in name.split(",") if part.strip()], dataset_dir, stage,
                       cache=cache)
    return {"--data": ("data.train", resolved.paths), "--dataset-dir": ("data.format", resolved.format)}
