"""Record layouts of instruction data, and their conversion to one chat form. Standard library only.

Every trainable format becomes a list of ``{"role": "system"|"user"|"assistant", "content": str}``
messages. Conversion never raises: it returns the messages (or None) and a list of
``(field, message)`` pairs naming exactly what is wrong, which callers turn into located
:class:`engine.data_checks.Problem` objects.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from engine.stages import STAGES, training

TRAINABLE = ("alpaca", "sharegpt", "openai")
"""Formats supervised fine-tuning can train on (conversations with answers)."""
PAIR_LAYOUTS = ("alpaca_pairs", "sharegpt_pairs", "trl_pairs")
"""Preference pairs: a prompt with a chosen and a rejected answer (stages dpo, orpo, rm; kto unpairs them)."""
KTO_LAYOUTS = ("alpaca_kto", "sharegpt_kto", "trl_kto")
"""Single answers marked desirable or undesirable (stage kto)."""
LAYOUTS: dict[str, str] = {**{name: "sft" for name in TRAINABLE}, **{name: "pairs" for name in PAIR_LAYOUTS},
                           **{name: "kto" for name in KTO_LAYOUTS}, "text": "text", "prompts": "prompts"}
"""Every record layout and its kind: sft, pairs, kto, text (raw text: JSON Lines/datasets ``text``, .txt files) or
prompts (``{prompt, answer}``: what an RL stage samples answers to, with an optional reference answer)."""
KIND_HELP = {
    "sft": "instruction data: alpaca {instruction, input, output}, sharegpt {conversations: [{from, value}]} or "
           "openai {messages: [{role, content}]}",
    "pairs": "preference pairs: alpaca_pairs {instruction, input, chosen, rejected}, sharegpt_pairs "
             "{conversations, chosen: {from, value}, rejected: {from, value}} or trl_pairs {prompt, chosen, "
             "rejected} (strings or message lists)",
    "kto": "answers marked good or bad: trl_kto {prompt, completion, label}, sharegpt_kto {conversations, kto_tag} "
           "or alpaca_kto {instruction, input, output, kto_tag}",
    "text": "raw text: JSON Lines or a datasets folder with a 'text' field, or a .txt file (one document per "
            "blank-line-separated block; one per line through a dataset_info.json)",
    "prompts": "prompts: {prompt, answer} (prompt a string or a message list; answer, optional, the reference answer "
               "rewards such as exact_match compare with)",
}


def stages_for(kind: str) -> str:
    """The stages that train on data of ``kind``, for messages: ``dpo, orpo or rm``."""
    names = training(kind)
    return ", ".join(names[:-1]) + " or " + names[-1] if len(names) > 1 else names[0]


def accepted_layouts(stage: str) -> str:
    """What ``stage`` trains on, for messages: ``dpo trains on preference pairs: …``."""
    return f"stage {stage} trains on " + "; or ".join(KIND_HELP[kind] for kind in STAGES[stage].reads)


def wrong_kind(layout: str, stage: str) -> str:
    """Why a file of ``layout`` cannot be trained by ``stage``, naming what it accepts and which stage fits."""
    kind = LAYOUTS[layout]
    return (f"this file holds {KIND_HELP[kind].split(':')[0]} ({layout}), which stage {stage} cannot train: "
            f"{accepted_layouts(stage)}. This layout is for stage {stages_for(kind)}")


MEDIA_FIELDS = {"images": "images", "videos": "videos", "audios": "audio"}
"""Fields of multimodal records (LLaMA-Factory's mllm layout) and what they hold: tuitune trains text only."""

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


def messages_problem(value: Any, field: str = "messages") -> str | None:
    """Why ``value`` is not a conversation in the one chat form (a non-empty array of ``{"role", "content"}`` turns,
    roles among :data:`OPENAI_ROLES`, contents text) as ``FIELD: what`` (``messages[1].role: unknown role 'x';
    allowed: system, user, assistant``), or None when it is one. For conversations a process is sent; a data
    file's records are checked, with their lines, by :func:`to_messages`."""
    if not isinstance(value, list) or not value:
        got = "an empty one" if value == [] else json_type(value)
        return f"{field}: expected a non-empty array of turns, got {got}"
    for n, turn in enumerate(value):
        where = f"{field}[{n}]"
        if not isinstance(turn, dict):
            return f"{where}: expected an object with role and content, got {json_type(turn)}"
        role, content = turn.get("role"), turn.get("content")
        if role not in OPENAI_ROLES:
            return f"{where}.role: unknown role {role!r}; allowed: {', '.join(OPENAI_ROLES)}"
        if not isinstance(content, str):
            return f"{where}.content: expected a string, got {json_type(content)}"
        if problem := not_text(content):
            return f"{where}.content: {problem}"
    return None


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


def media_problems(record: dict) -> list[FieldProblem]:
    """A problem per media field the record fills (an empty list holds none): trained as text, its
    ``<image>`` markers would be learnt as words and the pictures dropped, so such a record is refused."""
    return [(key, f"this record has {what} (multimodal data), which tuitune cannot train: it trains text only; "
                  "drop the record or the field")
            for key, what in MEDIA_FIELDS.items() if record.get(key) not in (None, [], "")]


def detect_format(record: Any) -> str | None:
    """The layout a record's keys suggest (a name of LAYOUTS), or None."""
    if not isinstance(record, dict):
        return None
    chat = "conversations" in record or "messages" in record
    if "chosen" in record and "rejected" in record:
        return "sharegpt_pairs" if chat else "alpaca_pairs" if "instruction" in record else "trl_pairs"
    if "kto_tag" in record:
        return "sharegpt_kto" if chat else "alpaca_kto"
    if "completion" in record and "label" in record:
        return "trl_kto"
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
    if "prompt" in record and not any(key in record for key in ("chosen", "rejected", "completion", "label")):
        return "prompts"  # a pair or kto answer missing a field stays one, to be told which field
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
    if media := media_problems(record):
        return None, media
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
    turns = _alpaca_prompt(record, problems)
    output = _text(record, "output", "output", problems, required=True)
    if output is None or problems:
        return None, problems
    return [*turns, ("assistant", output, "output")], problems


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
    for role, _, where in body:
        if role == "system":
            problems.append((where, "a system turn may only come first"))
            return problems
        if role != expected:
            article = "an" if expected == "assistant" else "a"
            problems.append((where, f"expected {article} {expected} turn here (user and assistant must "
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


def last_user_turn(messages: list[dict[str, str]]) -> str:
    """The text of a conversation's last user turn (empty when it has none)."""
    users = [turn.get("content", "") for turn in messages if isinstance(turn, dict) and turn.get("role") == "user"]
    return str(users[-1]) if users else ""


@dataclass
class Example:
    """A record of a preference, KTO or raw-text layout in one form (SFT records stay chat messages).

    ``prompt`` holds the turns before the answer (system, then user/assistant alternating, ending on
    a user turn); the answers are the texts of the assistant turn that follows it.
    """

    kind: str
    """pairs, kto, text or prompts (see LAYOUTS)."""
    prompt: list[dict[str, str]] = field(default_factory=list)
    """The conversation before the answer; empty for text."""
    chosen: str | None = None
    """pairs: the preferred answer; kto: the answer; prompts: the reference answer (None when the record has none)."""
    rejected: str | None = None
    """pairs: the answer ranked below chosen."""
    label: bool | None = None
    """kto: whether the answer is desirable."""
    text: str | None = None
    """text: the document."""

    def conversation(self, side: str = "chosen") -> list[dict[str, str]]:
        """The prompt followed by the ``side`` answer (chosen or rejected) as an assistant turn (a prompt without
        a reference answer: the prompt alone)."""
        answer = getattr(self, side)
        return [*self.prompt] if answer is None else [*self.prompt, {"role": "assistant", "content": answer}]

    def to_dict(self) -> dict[str, Any]:
        """The example as JSON-ready data."""
        return asdict(self)


def to_example(record: Any, layout: str) -> tuple[Example | None, list[FieldProblem]]:
    """Convert one record of a pairs, kto, text or prompts ``layout`` (see LAYOUTS), checking every field.

    Returns:
        The example (None when the record cannot be used) and every problem found, each with its field.
    """
    if layout == "prompts":
        return to_prompt(record, layout)
    if not isinstance(record, dict):
        return None, [("", f"expected a JSON object (a record), got {json_type(record)}")]
    if media := media_problems(record):
        return None, media
    problems: list[FieldProblem] = []
    example = {"alpaca_pairs": _alpaca_pairs, "sharegpt_pairs": _sharegpt_pairs, "trl_pairs": _trl_pairs,
               "alpaca_kto": _alpaca_kto, "sharegpt_kto": _sharegpt_kto, "trl_kto": _trl_kto,
               "text": _plain_text}[layout](record, problems)
    if example is not None and example.kind == "pairs" and not problems and example.chosen == example.rejected:
        problems.append(("rejected", "identical to chosen: the pair teaches no preference; drop it or fix one side"))
    return (None if problems else example), problems


def _plain_text(record: dict, problems: list[FieldProblem]) -> Example | None:
    text = _text(record, "text", "text", problems, required=True)
    return Example("text", text=text) if text is not None else None


def _alpaca_prompt(record: dict, problems: list[FieldProblem]) -> list[Turn]:
    """The system, history and instruction(+input) turns of an alpaca-like record."""
    instruction = _text(record, "instruction", "instruction", problems, required=True)
    extra = _text(record, "input", "input", problems, required=False)
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
    if instruction is not None:
        prompt = f"{instruction}\n{extra}" if extra and extra.strip() else instruction
        turns.append(("user", prompt, "instruction"))
    return turns


def _messages(turns: list[Turn]) -> list[dict[str, str]]:
    return [{"role": r, "content": c} for r, c, _ in turns]


def _prompt_problems(turns: list[Turn], field: str) -> list[FieldProblem]:
    """Order problems of a prompt: one leading system turn, user/assistant alternating, ending on user."""
    body = turns[1:] if turns and turns[0][0] == "system" else turns
    expected = "user"
    for role, _, where in body:
        if role == "system":
            return [(where, "a system turn may only come first")]
        if role != expected:
            return [(where, f"expected a {expected} turn here (user and assistant must alternate, starting "
                            f"with user), got {role}")]
        expected = "assistant" if role == "user" else "user"
    if not body:
        return [(field, "no user turn: the prompt is empty")]
    if body[-1][0] != "user":
        return [(body[-1][2], "the prompt must end with a user turn; the answer that follows it is what is compared")]
    return []


def _turn_objects(value: Any, field: str, problems: list[FieldProblem]) -> list[Turn] | None:
    """A list of {role, content} (or {from, value}) turns, checked, as Turns with their field paths."""
    if not isinstance(value, list):
        problems.append((field, f"expected an array of messages, got {json_type(value)}"))
        return None
    if not value:
        problems.append((field, "empty (no messages)"))
        return None
    turns: list[Turn] = []
    for i, item in enumerate(value):
        turn = _turn_object(item, f"{field}[{i}]", problems)
        if turn is not None:
            turns.append(turn)
    return turns if len(turns) == len(value) else None


def _turn_object(item: Any, where: str, problems: list[FieldProblem]) -> Turn | None:
    """One {role, content} or {from, value} turn."""
    if not isinstance(item, dict):
        problems.append((where, f"expected an object with role and content, got {json_type(item)}"))
        return None
    role_key, text_key = ("from", "value") if "from" in item else ("role", "content")
    role = item.get(role_key)
    if not isinstance(role, str) or role not in SHAREGPT_ROLES:
        what = "missing field" if role is None else f"unknown role {role!r}; allowed: {', '.join(SHAREGPT_ROLES)}"
        problems.append((f"{where}.{role_key}", what))
        return None
    content = _content(item, text_key, f"{where}.{text_key}", problems)
    return (SHAREGPT_ROLES[role], content, f"{where}.{role_key}") if content is not None else None


def _answer(record: dict, key: str, problems: list[FieldProblem]) -> tuple[list[Turn], str] | None:
    """An answer given as a string, one turn object, or a message list ending with the assistant's turn.

    Returns the turns that come before the answer inside the value (a message list may repeat the
    prompt) and the answer's text.
    """
    value = record.get(key)
    if isinstance(value, str) or value is None:
        text = _text(record, key, key, problems, required=True)
        return ([], text) if text is not None else None
    if isinstance(value, dict):
        turn = _turn_object(value, key, problems)
        turns = [turn] if turn is not None else None
    else:
        turns = _turn_objects(value, key, problems)
    if turns is None:
        return None
    if turns[-1][0] != "assistant":
        problems.append((turns[-1][2], f"the {key} answer must be an assistant turn, got {turns[-1][0]}"))
        return None
    return turns[:-1], turns[-1][1]


def _chat_prompt(record: dict, problems: list[FieldProblem]) -> list[Turn] | None:
    """The conversation of a sharegpt-like record (conversations or messages) with its system field."""
    found = _turn_list(record, ("conversations", "messages"), problems)
    system = _text(record, "system", "system", problems, required=False)
    if found is None:
        return None
    key, items = found
    turns = _turn_objects(items, key, problems)
    if turns is None:
        return None
    return ([("system", system, "system")] if system and system.strip() else []) + turns


def _pair(prompt: list[Turn] | None, record: dict, problems: list[FieldProblem]) -> Example | None:
    """The chosen and rejected answers after ``prompt``; turns repeated inside the answers must agree."""
    chosen, rejected = _answer(record, "chosen", problems), _answer(record, "rejected", problems)
    if prompt is None or chosen is None or rejected is None:
        return None
    if [t[:2] for t in chosen[0]] != [t[:2] for t in rejected[0]]:
        problems.append(("rejected", "the prompt differs between the sides: the turns before the rejected answer "
                                     "are not those before the chosen one"))
        return None
    full = prompt + chosen[0]
    problems.extend(_prompt_problems(full, "prompt"))
    return Example("pairs", _messages(full), chosen=chosen[1], rejected=rejected[1]) if not problems else None


def _alpaca_pairs(record: dict, problems: list[FieldProblem]) -> Example | None:
    prompt = _alpaca_prompt(record, problems)
    return _pair(prompt if not problems else None, record, problems)


def _sharegpt_pairs(record: dict, problems: list[FieldProblem]) -> Example | None:
    return _pair(_chat_prompt(record, problems), record, problems)


def _trl_prompt(record: dict, problems: list[FieldProblem]) -> list[Turn] | None:
    """TRL's ``prompt``: a string (one user turn) or a message list; absent, the answers carry it (implicit)."""
    value = record.get("prompt")
    if "prompt" not in record:
        if isinstance(record.get("chosen", record.get("completion")), list):
            return []  # implicit prompt: the turns before the last one of each answer
        problems.append(("prompt", "missing field"))
        return None
    if isinstance(value, list):
        return _turn_objects(value, "prompt", problems)
    text = _text(record, "prompt", "prompt", problems, required=True)
    return [("user", text, "prompt")] if text is not None else None


def _trl_pairs(record: dict, problems: list[FieldProblem]) -> Example | None:
    return _pair(_trl_prompt(record, problems), record, problems)


def _label(record: dict, key: str, problems: list[FieldProblem]) -> bool | None:
    value = record.get(key)
    if not isinstance(value, bool):
        problems.append((key, "missing field" if key not in record else
                         f"expected true (desirable) or false (undesirable), got {json_type(value)}"))
        return None
    return value


def _single(prompt: list[Turn] | None, answer: tuple[list[Turn], str] | None, label: bool | None,
            problems: list[FieldProblem]) -> Example | None:
    if prompt is None or answer is None or label is None:
        return None
    full = prompt + answer[0]
    problems.extend(_prompt_problems(full, "prompt"))
    return Example("kto", _messages(full), chosen=answer[1], label=label) if not problems else None


def _trl_kto(record: dict, problems: list[FieldProblem]) -> Example | None:
    prompt = _trl_prompt(record, problems)
    return _single(prompt, _answer(record, "completion", problems), _label(record, "label", problems), problems)


def _alpaca_kto(record: dict, problems: list[FieldProblem]) -> Example | None:
    prompt = _alpaca_prompt(record, problems)
    output = _text(record, "output", "output", problems, required=True)
    label = _label(record, "kto_tag", problems)
    return _single(prompt, ([], output) if output is not None else None, label, problems)


def _sharegpt_kto(record: dict, problems: list[FieldProblem]) -> Example | None:
    turns = _chat_prompt(record, problems)
    label = _label(record, "kto_tag", problems)
    if turns is None:
        return None
    if turns[-1][0] != "assistant":
        problems.append((turns[-1][2], "the conversation must end with the assistant's answer, which kto_tag marks"))
        return None
    return _single(turns[:-1], ([], turns[-1][1]), label, problems)


def to_prompt(record: Any, layout: str) -> tuple[Example | None, list[FieldProblem]]:
    """One record read as a prompt for an RL stage (kind ``prompts``), with its reference answer when it has one.

    ``prompts`` records give ``prompt`` (a string: one user turn; or a message list ending with a user turn) and
    an optional ``answer``. Instruction data (alpaca, sharegpt, openai) gives its turns up to the last user turn
    as the prompt and the answer after it, if any, as the reference.
    """
    if not isinstance(record, dict):
        return None, [("", f"expected a JSON object (a record), got {json_type(record)}")]
    if media := media_problems(record):
        return None, media
    problems: list[FieldProblem] = []
    reference: str | None = None
    if layout == "prompts":
        turns = _trl_prompt(record, problems)
        reference = _text(record, "answer", "answer", problems, required=False)
    elif layout == "alpaca":
        turns = _alpaca_prompt(record, problems)
        reference = _text(record, "output", "output", problems, required=False)
    elif layout in ("sharegpt", "openai"):
        turns = _chat_prompt(record, problems)
        if turns and turns[-1][0] == "assistant":
            reference, turns = turns[-1][1], turns[:-1]
    else:
        return None, [("", f"a {layout} record is not a prompt")]
    if turns is None or problems:
        return None, problems
    problems.extend(_prompt_problems(turns, "prompt"))
    if reference is not None and not reference.strip():
        reference = None
    return (Example("prompts", _messages(turns), chosen=reference) if not problems else None), problems
