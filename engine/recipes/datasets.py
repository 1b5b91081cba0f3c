"""Instruction data to training datasets: check, load, encode, split, pack.

``build_datasets`` is what the recipes call (through :func:`engine.recipes.common.load_for_stage`). It
runs the same structural checks as the app and ``tuitune data check`` (:mod:`engine.data.checks`) and
refuses with their messages; only then are SFT files loaded through ``datasets``
(``load_dataset("json")`` or ``load_from_disk``), whose own errors are too generic to show first. Every
record is encoded by :mod:`engine.data.prepare`, as the evaluation job and the data report encode it,
whose encoders (:mod:`engine.data.encode`) are the one place labels are made.

Batches are made padding-free by :class:`FlatCollator` (the default, ``data.padding_free``): the
records of a batch are laid end to end in one row with position ids that restart at 0 for each
record and no attention mask, so no compute or memory goes to padding. transformers' sdpa and eager
attention build a block-diagonal causal mask from those position ids (flash-attention runs varlen
on them), so a record attends only to itself: the same computation as a padded batch with its
attention mask, minus the padding. Packed sequences (``data.packing``) carry their own position
ids, restarting at every record they hold, so packing keeps records apart the same way.
:class:`PadCollator` pads instead (``data.padding_free: false``).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from engine.config import DataSection
from engine.data import hub
from engine.data.checks import CheckedRecord, check_paths, kto_balance_problem
from engine.data.encode import IGNORE_INDEX, Encoded
from engine.data.formats import to_messages
from engine.data.prepare import Item, cut, cut_warnings, empty_problem, encode_or_refuse, split
from engine.data.problems import DataError, Problem
from engine.data.source import resolve_path
from engine.stages import DEFAULT_STAGE, STAGES


@dataclass
class Built:
    """The datasets a run trains and evaluates on, with what happened on the way."""

    train: Any
    """datasets.Dataset with columns input_ids, labels, attention_mask (and position_ids when packed)."""
    eval: Any | None
    """The held-out Dataset (same columns), or None when data.val_size is 0."""
    stats: dict[str, Any] = field(default_factory=dict)
    """train_records, eval_records, truncated, dropped_empty, duplicates, train_tokens, trained_tokens,
    train_sequences, format."""
    warnings: list[str] = field(default_factory=list)
    """Things the user should know but that do not stop training."""


def build_datasets(data: DataSection, tokenizer: Any, seed: int, stage: str = DEFAULT_STAGE) -> Built:
    """Check, encode, split and (optionally) pack the data of a run of ``stage``, by the kind it trains on.

    sft: conversations with their answers trained; text (pt): raw text, every token trained, packed;
    pairs (dpo, orpo, rm): preference pairs as ``prompt_ids``, ``chosen_ids``, ``rejected_ids``; kto:
    answers as ``prompt_ids``, ``completion_ids``, ``label`` (pairs are unpaired into one of each).

    Raises:
        DataError: when any record has an error, when no record keeps a trained token, when the
            validation split leaves nothing to train on, or (kto) when every answer has the same label.
    """
    from datasets import Dataset

    kind = STAGES[stage].kind
    items, warnings, fmt = _checked(data, stage)
    if kind == "text":
        return _build_text(items, data, seed, tokenizer, warnings, fmt)
    if kind == "kto":
        items = _unpaired(items)
    encode_or_refuse(items, kind, tokenizer, data.cutoff_len, data.system_prompt, data.truncation)
    result = cut(items)
    warnings += cut_warnings(result, data.cutoff_len, data.truncation)
    if not result.kept:
        raise DataError([empty_problem(it, data.cutoff_len) for it in result.empty] or [
            Problem(", ".join(data.train), None, None, None, "no usable records")])
    if not getattr(tokenizer, "chat_template", None):
        warnings.append("the model has no chat template; a plain 'role: text' layout is used")
    train, held = split(result.kept, data.val_size, seed)
    rows = _rows(train, kind, data)
    stats = {"format": fmt, "train_records": len(train), "eval_records": len(held), "truncated": result.truncated,
             "dropped_empty": len(result.empty),
             "duplicates": sum(p.message.startswith("duplicate") for it in result.kept for p in it.record.problems),
             **_token_stats(rows, kind, train)}
    eval_set = Dataset.from_dict(_rows(held, kind, data)) if held else None
    return Built(Dataset.from_dict(rows), eval_set, stats, warnings)


def _checked(data: DataSection, stage: str) -> tuple[list[Item], list[str], str]:
    """The usable records of every file, or DataError with every error found."""
    items: list[Item] = []

    def keep(record: CheckedRecord) -> None:
        if record.usable:
            record.raw = None  # the messages are all training needs; halves the memory of big files
            items.append(Item(record))

    summary = check_paths(data.train, data.format, on_record=keep, stage=stage)
    errors = [p for p in summary.problems if p.severity == "error"]
    if errors:
        raise DataError(errors, omitted=summary.errors - len(errors))
    if STAGES[stage].kind == "kto" and (problem := kto_balance_problem(data.train, summary.labels)) is not None:
        raise DataError([problem])
    warnings = []
    dup = [p for p in summary.problems if p.message.startswith("duplicate")]
    if dup:
        warnings.append(f"{len(dup)} duplicate records (kept), first: {dup[0]}")
    formats = sorted({f for f in summary.formats.values() if f})
    if STAGES[stage].kind != "sft":  # the checked examples are used as read (.txt files are no JSON for datasets)
        return items, warnings, "+".join(formats)
    for path in data.train:
        if hub.is_hub(path):  # its rows were read from the arrow files datasets.load_dataset wrote
            continue
        note = _load_through_datasets(path, [it for it in items if it.record.file == path], summary.formats[path])
        if note:
            warnings.append(note)
    return items, warnings, "+".join(formats)


def _load_through_datasets(path: str, items: list[Item], fmt: str) -> str:
    """Replace the checked messages of ``path`` with those of its rows loaded through ``datasets``.

    The checks read every record already; this keeps ``datasets``' reading (arrow types, folders)
    the one training uses. Should ``datasets`` fail or disagree on the count, the checked records
    are kept and a warning says why.
    """
    from datasets import DatasetDict, load_dataset, load_from_disk

    real = resolve_path(path)
    try:
        if real.is_dir():
            rows = load_from_disk(str(real))
            rows = rows.get("train", next(iter(rows.values()))) if isinstance(rows, DatasetDict) else rows
        else:
            rows = load_dataset("json", data_files=str(real), split="train")
    except Exception as exc:  # e.g. one field of mixed types that the JSON builder cannot unify
        return f"{path}: datasets could not load it ({type(exc).__name__}: {exc}); its checked records are used"
    by_index = {it.record.index: it for it in items}
    if len(rows) < max(by_index, default=-1) + 1:
        return f"{path}: datasets read {len(rows)} records, the checks {max(by_index) + 1}; checked records are used"
    for index, row in enumerate(rows):
        item = by_index.get(index)
        messages = to_messages(row, fmt)[0] if item is not None else None
        if messages is not None:
            item.record.messages = messages
    return ""


def _unpaired(items: list[Item]) -> list[Item]:
    """KTO answers of kto records as they are, and of pairs one desirable (chosen) and one undesirable."""
    out: list[Item] = []
    for item in items:
        example = item.record.example
        if example.kind == "pairs":
            out += [Item(item.record, label=True), Item(item.record, side="rejected", label=False)]
        else:
            out.append(Item(item.record, label=example.label))
    return out


def _rows(items: list[Item], kind: str, data: DataSection) -> dict[str, list[Any]]:
    """The Dataset's columns for encoded items of ``kind``."""
    encoded = [it.encoded for it in items]
    if kind == "kto":
        return {"prompt_ids": [e.prompt_ids for e in encoded], "completion_ids": [e.completion_ids for e in encoded],
                "label": [it.label for it in items]}
    if kind == "pairs":
        return {"prompt_ids": [e.prompt_ids for e in encoded], "chosen_ids": [e.chosen_ids for e in encoded],
                "rejected_ids": [e.rejected_ids for e in encoded]}
    if data.packing:
        return pack_records(encoded, data.cutoff_len)
    return {
        "input_ids": [e.input_ids for e in encoded],
        "labels": [e.labels for e in encoded],
        "attention_mask": [[1] * len(e.input_ids) for e in encoded],
    }


def _token_stats(rows: dict[str, list[Any]], kind: str, train: list[Item]) -> dict[str, Any]:
    """Tokens the training set puts through the model, those trained, and its sequences."""
    if kind == "sft":
        return {"train_tokens": sum(len(ids) for ids in rows["input_ids"]),
                "trained_tokens": sum(it.encoded.trained_tokens for it in train),
                "train_sequences": len(rows["input_ids"])}
    answers = [n for key in ("chosen_ids", "rejected_ids", "completion_ids") for n in map(len, rows.get(key, []))]
    prompts = sum(len(p) for p in rows["prompt_ids"]) * (1 if kind == "kto" else 2)  # a pair reads its prompt twice
    stats = {"train_tokens": sum(answers) + prompts, "trained_tokens": sum(answers), "train_sequences": len(answers)}
    if kind == "kto":
        stats["desirable"] = sum(rows["label"])
        stats["undesirable"] = len(rows["label"]) - stats["desirable"]
    return stats


def pack_records(encoded: list[Encoded], cutoff_len: int) -> dict[str, list[list[int]]]:
    """Records laid end to end, in order, in sequences of at most ``cutoff_len`` tokens.

    A record is never split: the next one starts a new sequence when it does not fit. Each
    sequence's ``position_ids`` restart at 0 where a record starts; with no attention mask in the
    batch (:class:`FlatCollator`) attention then stays inside each record, so packing changes
    how records share a sequence, never what a record sees.
    """
    rows: dict[str, list[list[int]]] = {"input_ids": [], "labels": [], "attention_mask": [], "position_ids": []}
    ids: list[int] = []
    labels: list[int] = []
    positions: list[int] = []
    for item in encoded:
        if ids and len(ids) + len(item.input_ids) > cutoff_len:
            _add_row(rows, ids, labels, positions)
            ids, labels, positions = [], [], []
        ids.extend(item.input_ids)
        labels.extend(item.labels)
        positions.extend(range(len(item.input_ids)))
    if ids:
        _add_row(rows, ids, labels, positions)
    return rows


def _add_row(rows: dict[str, list[list[int]]], ids: list[int], labels: list[int], positions: list[int]) -> None:
    rows["input_ids"].append(ids)
    rows["labels"].append(labels)
    rows["attention_mask"].append([1] * len(ids))
    rows["position_ids"].append(positions)


def _build_text(items: list[Item], data: DataSection, seed: int, tokenizer: Any, warnings: list[str],
                fmt: str) -> Built:
    """Continued pre-training: documents cut into cutoff_len pieces, every token trained, packed."""
    from datasets import Dataset

    if not items:
        raise DataError([Problem(", ".join(data.train), None, None, None, "no usable records")])
    train, held = split(items, data.val_size, seed)

    def pieces(chosen: list[Item]) -> list[Encoded]:
        encode_or_refuse(chosen, "text", tokenizer, data.cutoff_len, data.system_prompt)
        return [piece for item in chosen for piece in item.encoded]

    train_pieces = pieces(train)
    rows = pack_records(train_pieces, data.cutoff_len)  # always packed: pieces of raw text have no turns to keep
    if len(train_pieces) > len(train):
        warnings.append(f"documents longer than cutoff_len {data.cutoff_len} were cut into pieces "
                        f"({len(train_pieces)} pieces from {len(train)} documents); no token is dropped")
    stats = {"format": fmt, "train_records": len(train), "eval_records": len(held), "truncated": 0,
             "dropped_empty": 0, "duplicates": 0, "train_tokens": sum(len(ids) for ids in rows["input_ids"]),
             "trained_tokens": sum(len(p.input_ids) for p in train_pieces), "train_sequences": len(rows["input_ids"])}
    eval_set = Dataset.from_dict(pack_records(pieces(held), data.cutoff_len)) if held else None
    return Built(Dataset.from_dict(rows), eval_set, stats, warnings)


class FlatCollator:
    """Padding-free batches: the records of a batch end to end in one row of shape ``[1, tokens]``.

    Gives ``input_ids``, ``labels`` and ``position_ids`` (restarting at 0 at every record, taken from
    a packed sequence's own ``position_ids``) and no ``attention_mask``, from which the model's
    attention keeps each record to itself. The label of every record's first token becomes -100:
    a token at a record's start is never a target within its record (the loss predicts token i+1
    from token i), and this keeps the previous record's last token from predicting it. So the
    loss, and the Trainer's count of trained tokens, are those of the padded batch.
    """

    def __call__(self, features: list[dict[str, Any]]) -> dict[str, Any]:
        """Concatenate ``features`` (dicts with input_ids, labels, optional position_ids) into one row."""
        import torch

        ids: list[int] = []
        labels: list[int] = []
        positions: list[int] = []
        for f in features:
            own = f.get("position_ids")
            record_positions = list(own) if own is not None else list(range(len(f["input_ids"])))
            ids.extend(f["input_ids"])
            labels.extend(IGNORE_INDEX if pos == 0 else label for pos, label in zip(record_positions, f["labels"]))
            positions.extend(record_positions)
        return {"input_ids": torch.tensor([ids]), "labels": torch.tensor([labels]),
                "position_ids": torch.tensor([positions])}


class PadCollator:
    """Batches features of different lengths for the Trainer.

    Pads ``input_ids`` with the tokenizer's pad id (0 when it has none), ``labels`` with -100,
    and builds ``attention_mask``; padding goes on the right. Chosen over
    ``DataCollatorForSeq2Seq`` to avoid its tokenizer.pad round trip and warnings; the result
    is the same.
    """

    def __init__(self, pad_token_id: int | None, pad_to_multiple_of: int | None = None) -> None:
        # Padded positions are masked and unlabelled, so any id works when a tokenizer has none.
        self.pad_token_id = 0 if pad_token_id is None else pad_token_id
        self.pad_to_multiple_of = pad_to_multiple_of

    def __call__(self, features: list[dict[str, Any]]) -> dict[str, Any]:
        """Pad ``features`` (dicts with input_ids and labels) into a batch of tensors."""
        import torch

        width = max(len(f["input_ids"]) for f in features)
        if self.pad_to_multiple_of:
            width = -(-width // self.pad_to_multiple_of) * self.pad_to_multiple_of
        ids, labels, mask = [], [], []
        for f in features:
            gap = width - len(f["input_ids"])
            ids.append(list(f["input_ids"]) + [self.pad_token_id] * gap)
            labels.append(list(f["labels"]) + [IGNORE_INDEX] * gap)
            mask.append([1] * len(f["input_ids"]) + [0] * gap)
        return {"input_ids": torch.tensor(ids), "labels": torch.tensor(labels), "attention_mask": torch.tensor(mask)}
