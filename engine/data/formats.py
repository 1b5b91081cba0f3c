"""Record layouts of instruction data, and their conversion to one chat form. Standard library only.

Every trainable format becomes a list of ``{"role": "system"|"user"|"assistant", "content": str}``
messages. Conversion never raises: it returns the messages (or None) and a list of
``(field, message)`` pairs naming exactly what is wrong, which callers turn into located
:class:`engine.data_checks.Problem` objects.
"""

from __future__ import annotations

from typing import Any

TRAINABLE = ("alpaca", "sharegpt", "openai")
"""Formats supervised fine-tuning can train on."""
UNTRAINABLE = {
    "preference": "this file holds preference pairs (chosen/rejected), which are for preference training "
    "such as DPO; tuitune trains by supervised fine-tuning (SFT), which needs one answer per prompt: "
    "convert it to alpaca, sharegpt or openai messages (for example keep only 'chosen')",
    "text": "this file holds raw text (a 'text' field) with no user/assistant turns, so supervised "
    "fine-tuning has no answers to learn: convert it to alpaca, sharegpt or openai messages",
}
"""Formats recognised but refused, with the message saying why and what to do."""

OPENAI_ROLES = ("system", "user", "assistant")
SHAREGPT_ROLES = {
    "human": "user",
    "user": "user",
    "gpt": "assistant",
    "assistant": "assistant",
    "chatgpt": "assistant",
    "model": "assistant",
    "system": "system",
}
"""ShareGPT speaker names and the chat role each becomes."""

FieldProblem = tuple[str, str]
"""(field path such as ``messages[2].role``, message)."""


def json_type(value: Any) -> str:
    """The JSON name of ``value``'s type, for messages users understand."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, (list, tuple)):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def not_text(value: str) -> str | None:
    """Why ``value`` is not valid Unicode text (a lone surrogate, which JSON escapes such as
    ``"\\ud800"`` can make and no tokenizer can encode), or None when it is."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        return (f"contains a lone surrogate (\\u{ord(value[exc.start]):04x} at character {exc.start + 1}), "
                "which is not valid Unicode text: fix or remove that escape")
    return None


def printable(value: str) -> str:
    """``value`` with anything that is not valid Unicode escaped, so a message about it can be printed."""
    return value.encode("utf-8", "backslashreplace").decode("utf-8")


def detect_format(record: Any) -> str | None:
    """The format a record's keys suggest: a TRAINABLE name, ``preference``, ``text`` or None."""
    if not isinstance(record, dict):
        return None
    if "chosen" in record and "rejected" in record:
        return "preference"
    for key in ("messages", "conversations"):
        turns = record.get(key)
        if isinstance(turns, list):
            first = next((t for t in turns if isinstance(t, dict)), {})
            if "from" in first or "value" in first:
                return "sharegpt"
            if "role" in first or "content" in first:
                return "openai"
            return "openai" if key == "messages" else "sharegpt"
        if turns is not None:
            return "openai" if key == "messages" else "sharegpt"
    if "instruction" in record or "output" in record:
        return "alpaca"
    if "text" in record:
        return "text"
    return None


def to_messages(record: Any, fmt: str) -> tuple[list[dict[str, str]] | None, list[FieldProblem]]:
    """Convert one record of format ``fmt`` into chat messages, checking fields and turn order.

    Returns:
        The messages (None when the record cannot be used) and every problem found.
    """
    if not isinstance(record, dict):
        return None, [("", f"expected a JSON object (a record), got {json_type(record)}")]
    convert = {"alpaca": _alpaca, "sharegpt": _sharegpt, "openai": _openai}[fmt]
    messages, problems = convert(record)
    if messages is not None and not problems:
        problems.extend(_order_problems(messages))
    return (None if problems else [{"role": r, "content": c} for r, c, _ in messages]), problems


def _text(record: dict, key: str, field: str, problems: list[FieldProblem], required: bool) -> str | None:
    """The string at ``record[key]``; missing/None/empty/wrong type are recorded as problems."""
    return _checked_text(record.get(key), key in record, field, problems, required)


def _checked_text(value: Any, present: bool, field: str, problems: list[FieldProblem], required: bool) -> str | None:
    """``value`` when it is usable text, else None with the problem recorded (absence only when required)."""
    if value is None:
        if required:
            problems.append((field, "missing field" if not present else "empty (null)"))
        return None
    if not isinstance(value, str):
        problems.append((field, f"expected a string, got {json_type(value)}"))
        return None
    if required and not value.strip():
        problems.append((field, "empty text"))
        return None
    if not_text(value):
        problems.append((field, not_text(value)))
        return None
    return value


Turn = tuple[str, str, str]
"""(role, content, field path of the turn) — the path is for order problems."""


def _alpaca(record: dict) -> tuple[list[Turn] | None, list[FieldProblem]]:
    problems: list[FieldProblem] = []
    instruction = _text(record, "instruction", "instruction", problems, required=True)
    extra = _text(record, "input", "input", problems, required=False)
    output = _text(record, "output", "output", problems, required=True)
    system = _text(record, "system", "system", problems, required=False)
    turns: list[Turn] = [("system", system, "system")] if system and system.strip() else []
    history = record.get("history")
    if history is not None and not isinstance(history, list):
        problems.append(("history", f"expected an array of [instruction, answer] pairs, got {json_type(history)}"))
    for i, pair in enumerate(history if isinstance(history, list) else []):
        if not (isinstance(pair, list) and len(pair) == 2):
            problems.append((f"history[{i}]", "expected an [instruction, answer] pair of two strings"))
            continue
        for j, role in enumerate(("user", "assistant")):
            if not isinstance(pair[j], str) or not pair[j].strip() or not_text(pair[j]):
                what = (f"expected a string, got {json_type(pair[j])}" if not isinstance(pair[j], str)
                        else not_text(pair[j]) or "empty text")
                problems.append((f"history[{i}][{j}]", what))
            else:
                turns.append((role, pair[j], f"history[{i}][{j}]"))
    if instruction is None or output is None or problems:
        return None, problems
    prompt = f"{instruction}\n{extra}" if extra and extra.strip() else instruction
    return turns + [("user", prompt, "instruction"), ("assistant", output, "output")], problems


def _turn_list(record: dict, keys: tuple[str, str], problems: list[FieldProblem]) -> tuple[str, list] | None:
    """The list of turns under the first of ``keys`` present, or None with a problem."""
    key = next((k for k in keys if k in record), None)
    if key is None:
        problems.append((keys[0], "missing field"))
        return None
    turns = record[key]
    if not isinstance(turns, list):
        problems.append((key, f"expected an array of turns, got {json_type(turns)}"))
        return None
    if not turns:
        problems.append((key, "empty conversation (no turns)"))
        return None
    return key, turns


def _chat(
    record: dict, keys: tuple[str, str], role_key: str, text_key: str, roles: dict[str, str]
) -> tuple[list[Turn] | None, list[FieldProblem]]:
    """Shared conversion of sharegpt and openai turn lists."""
    problems: list[FieldProblem] = []
    found = _turn_list(record, keys, problems)
    system = _text(record, "system", "system", problems, required=False)
    if found is None:
        return None, problems
    key, items = found
    turns: list[Turn] = [("system", system, "system")] if system and system.strip() else []
    allowed = ", ".join(dict.fromkeys(roles))
    for i, item in enumerate(items):
        where = f"{key}[{i}]"
        if not isinstance(item, dict):
            problems.append((where, f"expected an object with {role_key} and {text_key}, got {json_type(item)}"))
            continue
        role = item.get(role_key)
        if role is None:
            other = "role/content: openai format?" if role_key == "from" else "from/value: sharegpt format?"
            hint = f" (this turn has {other})" if ("role" in item) != (role_key == "role") else ""
            problems.append((f"{where}.{role_key}", f"missing field{hint}"))
            if hint:
                continue
        elif not isinstance(role, str):
            problems.append((f"{where}.{role_key}", f"expected a string, got {json_type(role)}"))
        elif role not in roles:
            problems.append((f"{where}.{role_key}", f"unknown role {role!r}; allowed: {allowed}"))
        content = _content(item, text_key, f"{where}.{text_key}", problems)
        if isinstance(role, str) and role in roles and content is not None:
            turns.append((roles[role], content, f"{where}.{role_key}"))
    return (None if problems else turns), problems


def _content(item: dict, key: str, field: str, problems: list[FieldProblem]) -> str | None:
    """A turn's text; OpenAI-style lists of ``{"type": "text", "text": …}`` parts are joined."""
    value = item.get(key)
    if isinstance(value, list) and all(isinstance(p, dict) and isinstance(p.get("text"), str) for p in value):
        value = "".join(p["text"] for p in value)
    return _checked_text(value, key in item, field, problems, required=True)


def _sharegpt(record: dict) -> tuple[list[Turn] | None, list[FieldProblem]]:
    return _chat(record, ("conversations", "messages"), "from", "value", SHAREGPT_ROLES)


def _openai(record: dict) -> tuple[list[Turn] | None, list[FieldProblem]]:
    return _chat(record, ("messages", "conversations"), "role", "content", {r: r for r in OPENAI_ROLES})


def _order_problems(turns: list[Turn]) -> list[FieldProblem]:
    """Problems with turn order: one leading system turn, then user/assistant alternating, ending on assistant."""
    problems: list[FieldProblem] = []
    body = turns[1:] if turns and turns[0][0] == "system" else turns
    expected = "user"
    for role, _, field in body:
        if role == "system":
            problems.append((field, "a system turn may only come first"))
            return problems
        if role != expected:
            article = "an" if expected == "assistant" else "a"
            problems.append((field, f"expected {article} {expected} turn here (user and assistant must "
                                    f"alternate, starting with user), got {role}"))
            return problems
        expected = "assistant" if role == "user" else "user"
    if not body:
        problems.append((turns[0][2] if turns else "", "no user or assistant turns"))
    elif body[-1][0] != "assistant":
        problems.append((body[-1][2], "the conversation ends with a user turn; the last turn must be "
                                      "the assistant's answer, which is what is trained"))
    return problems


def with_system(messages: list[dict[str, str]], system_prompt: str | None) -> list[dict[str, str]]:
    """``messages`` with ``system_prompt`` in front when given and the record has no system turn."""
    if not system_prompt or (messages and messages[0]["role"] == "system"):
        return messages
    return [{"role": "system", "content": system_prompt}, *messages]
