"""Chat messages to training tokens: the one place labels are made.

:func:`encode_conversation` renders a conversation with the model's own chat template and
marks the tokens of every assistant turn as trained (labels = the token ids) and all others
as masked (labels = -100). Training (:mod:`engine.recipes.datasets`) and the app's record view
(``python -m engine data --serve``) both call it, so what the user sees is what is trained.

How the assistant tokens are found: for assistant message *i*, the template is rendered for
``messages[:i]`` with the generation prompt and for ``messages[:i+1]``; the characters between
the two renders are the assistant's turn (its text and the end-of-turn marker; trailing
whitespace after the marker is left untrained). The full text is tokenised once and each token
is trained when it starts inside such a span (character offsets of the fast tokenizer). This
works for templates without ``{% generation %}`` markers, such as SmolLM2's. When a template
renders earlier turns differently from later prefixes (some strip reasoning from history), the
turn's text is searched for in the full render instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from engine.data.problems import Problem

IGNORE_INDEX = -100
"""Label of tokens that are not trained (the loss ignores them)."""
FALLBACK_TEMPLATE = (
    "{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}"
    "{% if m['role'] == 'assistant' %}{{ eos_token }}{% endif %}\n{% endfor %}"
    "{% if add_generation_prompt %}assistant: {% endif %}"
)
"""Used only for tokenizers without a chat template (base models); the caller warns about it."""


@dataclass
class Encoded:
    """One conversation as training tokens."""

    input_ids: list[int]
    """Token ids, cut at the cutoff length."""
    labels: list[int]
    """Same length as input_ids: the id where trained, IGNORE_INDEX where masked."""
    truncated: bool
    """Whether the conversation was longer than the cutoff length."""
    full_length: int
    """Token count before cutting."""

    @property
    def trained_tokens(self) -> int:
        """Tokens that carry a label after cutting."""
        return sum(1 for label in self.labels if label != IGNORE_INDEX)


def render(messages: list[dict[str, str]], tokenizer: Any, generation_prompt: bool = False) -> str:
    """The chat template applied to ``messages`` as text (the model's template or the fallback)."""
    template = None if getattr(tokenizer, "chat_template", None) else FALLBACK_TEMPLATE
    return tokenizer.apply_chat_template(
        messages, tokenize=False, add_generation_prompt=generation_prompt, chat_template=template
    )


def assistant_spans(messages: list[dict[str, str]], tokenizer: Any) -> tuple[str, list[tuple[int, int]]]:
    """The rendered conversation and the character spans of its assistant turns (to be trained)."""
    renders: dict[tuple[int, bool], str] = {}

    def prefix(count: int, generation_prompt: bool) -> str:
        key = (count, generation_prompt)
        if key not in renders:
            renders[key] = render(messages[:count], tokenizer, generation_prompt) if count else ""
        return renders[key]

    text = prefix(len(messages), False)
    spans: list[tuple[int, int]] = []
    cursor = 0
    for i, message in enumerate(messages):
        if message["role"] != "assistant":
            continue
        before, through = prefix(i, True), prefix(i + 1, False)
        if text.startswith(before) and text.startswith(through) and cursor <= len(before) < len(through):
            start, end = len(before), len(through)
        else:
            start, end = _search_span(text, message["content"], cursor, getattr(tokenizer, "eos_token", None))
        end = start + len(text[start:end].rstrip())
        spans.append((start, end))
        cursor = end
    return text, spans


def _search_span(text: str, content: str, cursor: int, eos: str | None) -> tuple[int, int]:
    """The span of ``content`` (plus a following end-of-turn token) in ``text`` after ``cursor``."""
    start = text.find(content, cursor)
    if start < 0:
        start = text.find(content.strip(), cursor)
        if start < 0:
            raise ValueError("the chat template changes the assistant's text, so its tokens cannot be located")
        content = content.strip()
    end = start + len(content)
    if eos and text.startswith(eos, _skip_space(text, end)):
        end = _skip_space(text, end) + len(eos)
    return start, end


def _skip_space(text: str, pos: int) -> int:
    while pos < len(text) and text[pos] in " \t":
        pos += 1
    return pos


def encode_conversation(messages: list[dict[str, str]], tokenizer: Any, cutoff_len: int) -> Encoded:
    """Token ids and labels of one conversation, cut at ``cutoff_len`` tokens.

    Args:
        messages: system/user/assistant messages, already checked (see :mod:`engine.data.checks`).
        tokenizer: a transformers tokenizer with a chat template.
        cutoff_len: the longest sequence kept; the rest is cut off (and reported by the caller).

    Returns:
        The :class:`Encoded` conversation; every assistant turn is trained.
    """
    return encode_conversations([messages], tokenizer, cutoff_len)[0]


def encode_conversations(conversations: list[list[dict[str, str]]], tokenizer: Any, cutoff_len: int) -> list[Encoded]:
    """:func:`encode_conversation` for many conversations, tokenised in one batch (several times faster)."""
    rendered = [assistant_spans(messages, tokenizer) for messages in conversations]
    if getattr(tokenizer, "is_fast", False):
        enc = tokenizer([text for text, _ in rendered], add_special_tokens=False, return_offsets_mapping=True)
        marked = [(list(ids), _mark([s for s, _ in offsets], spans))
                  for ids, offsets, (_, spans) in zip(enc["input_ids"], enc["offset_mapping"], rendered)]
    else:
        marked = [_tokenize_slow(text, spans, tokenizer) for text, spans in rendered]
    encoded = []
    for ids, trained in marked:
        labels = [tok if keep else IGNORE_INDEX for tok, keep in zip(ids, trained)]
        encoded.append(Encoded(ids[:cutoff_len], labels[:cutoff_len], len(ids) > cutoff_len, len(ids)))
    return encoded


def empty_after_cut(file: str, line: int | None, record: int | None, full_length: int, cutoff_len: int) -> Problem:
    """The warning for a record whose trained tokens all lie beyond the cutoff (it is left out)."""
    return Problem(file, line, record, None,
                   f"no trained token left after truncation at cutoff_len {cutoff_len} (the record has "
                   f"{full_length} tokens and its first answer starts after the cutoff); it is left out of "
                   "training: raise cutoff_len or shorten the prompt", "warning")


def _mark(starts: list[int], spans: list[tuple[int, int]]) -> list[bool]:
    """Per token start offset, whether it lies inside one of the (sorted, disjoint) ``spans``."""
    marks, j = [], 0
    for start in starts:
        while j < len(spans) and start >= spans[j][1]:
            j += 1
        marks.append(j < len(spans) and start >= spans[j][0])
    return marks


def _tokenize_slow(text: str, spans: list[tuple[int, int]], tokenizer: Any) -> tuple[list[int], list[bool]]:
    """Slow tokenizers have no offsets: count the tokens of each span's prefixes instead."""
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    trained = [False] * len(ids)
    for start, end in spans:
        first = len(tokenizer(text[:start], add_special_tokens=False)["input_ids"])
        last = len(tokenizer(text[:end], add_special_tokens=False)["input_ids"])
        trained[first:last] = [True] * (last - first)
    return list(ids), trained


@dataclass
class Completion:
    """A prompt and one answer as tokens (preference and KTO training): the answer is what is compared."""

    prompt_ids: list[int]
    """The prompt's tokens, up to the answer's first token."""
    completion_ids: list[int]
    """The answer's tokens (its text and end-of-turn marker), cut so prompt + answer fit the cutoff."""
    truncated: bool
    """Whether the cutoff dropped tokens (of the answer; with a shared cutoff, of the prompt too)."""
    full_length: int
    """Prompt + answer tokens before cutting."""

    @property
    def trained_tokens(self) -> int:
        """Answer tokens left after the cut."""
        return len(self.completion_ids)


def infer_seqlen(prompt_len: int, answer_len: int, cutoff_len: int) -> tuple[int, int]:
    """The prompt and answer tokens kept when both must fit ``cutoff_len`` together, shared as LLaMA-Factory
    shares them (its ``infer_seqlen``): an answer shorter than half the cutoff is kept whole, else a prompt
    shorter than half is, else each keeps its share of their total length."""
    if answer_len * 2 < cutoff_len:
        answer_room = cutoff_len
    elif prompt_len * 2 < cutoff_len:
        answer_room = cutoff_len - prompt_len
    else:
        answer_room = int(cutoff_len * (answer_len / (prompt_len + answer_len)))
    answer = min(answer_room, answer_len)
    return min(max(cutoff_len - answer, 0), prompt_len), answer


def encode_completions(conversations: list[list[dict[str, str]]], tokenizer: Any, cutoff_len: int,
                       shared: bool = False) -> list[Completion]:
    """Prompt and answer tokens of conversations whose last turn is the answer, rendered with the chat template.

    Only the last assistant turn is the answer: earlier ones belong to the prompt. The cut keeps the
    start (the prompt whole, the answer's beginning); a prompt of ``cutoff_len`` tokens or more leaves
    no answer token. ``shared``: prompt and answer share the cutoff (:func:`infer_seqlen`), a long
    prompt losing its end, as in LLaMA-Factory.
    """
    split = [_split_last_answer(text, spans[-1], tokenizer) for text, spans in
             (assistant_spans(messages, tokenizer) for messages in conversations)]
    out = []
    for prompt, answer in split:
        keep, room = infer_seqlen(len(prompt), len(answer), cutoff_len) if shared else \
            (len(prompt), max(0, cutoff_len - len(prompt)))
        out.append(Completion(prompt[:keep], answer[:room], len(answer) > room or keep < len(prompt),
                              len(prompt) + len(answer)))
    return out


def _split_last_answer(text: str, span: tuple[int, int], tokenizer: Any) -> tuple[list[int], list[int]]:
    """The tokens of ``text`` before the answer ``span`` and those inside it (whitespace after it is dropped)."""
    if getattr(tokenizer, "is_fast", False):
        enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
        ids, starts = list(enc["input_ids"]), [s for s, _ in enc["offset_mapping"]]
        first = next((i for i, s in enumerate(starts) if s >= span[0]), len(ids))
        last = next((i for i, s in enumerate(starts) if s >= span[1]), len(ids))
        return ids[:first], ids[first:last]
    prompt = tokenizer(text[:span[0]], add_special_tokens=False)["input_ids"]
    whole = tokenizer(text[:span[1]], add_special_tokens=False)["input_ids"]
    return list(whole[:len(prompt)]), list(whole[len(prompt):])


@dataclass
class PairEncoded:
    """A preference pair as tokens: one prompt, two answers."""

    prompt_ids: list[int]
    chosen_ids: list[int]
    rejected_ids: list[int]
    truncated: bool
    """Whether the cutoff dropped tokens of either answer."""
    full_length: int
    """The longer side's prompt + answer tokens before cutting."""
    chosen_length: int
    """Answer tokens of chosen before cutting."""
    rejected_length: int
    """Answer tokens of rejected before cutting."""

    @property
    def trained_tokens(self) -> int:
        """Answer tokens of the shorter side after the cut: 0 means the pair compares nothing."""
        return min(len(self.chosen_ids), len(self.rejected_ids))


def encode_pairs(pairs: list[tuple[list[dict[str, str]], list[dict[str, str]]]], tokenizer: Any,
                 cutoff_len: int, shared: bool = False) -> list[PairEncoded]:
    """Tokens of (chosen conversation, rejected conversation) pairs that share their prompt.

    The prompt is the tokens both sides start with up to the first answer token (they agree unless a
    template renders the answer into the prompt's last token); each side is cut to ``cutoff_len``
    tokens with the prompt, keeping the start. ``shared``: the prompt and the longer answer share the
    cutoff (:func:`infer_seqlen`), a long prompt losing its end, as in LLaMA-Factory.
    """
    whole = encode_completions([c for pair in pairs for c in pair], tokenizer, 1 << 40)
    out = []
    for chosen, rejected in zip(whole[0::2], whole[1::2]):
        common = _common_prefix(chosen.prompt_ids, rejected.prompt_ids)
        prompt = chosen.prompt_ids[:common]
        sides = [c.prompt_ids[common:] + c.completion_ids for c in (chosen, rejected)]
        longest = max(map(len, sides))
        keep, room = infer_seqlen(len(prompt), longest, cutoff_len) if shared else \
            (len(prompt), max(0, cutoff_len - len(prompt)))
        out.append(PairEncoded(prompt[:keep], sides[0][:room], sides[1][:room], longest > room or keep < len(prompt),
                               len(prompt) + longest, len(sides[0]), len(sides[1])))
    return out


def _common_prefix(a: list[int], b: list[int]) -> int:
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    return n


def encode_texts(texts: list[str], tokenizer: Any, cutoff_len: int) -> list[list[Encoded]]:
    """Raw documents as training pieces (continued pre-training): every token trained.

    Each document is tokenised whole with the end-of-sequence token after it (so the model learns
    where documents end) and cut into pieces of at most ``cutoff_len`` tokens; no token is dropped.
    """
    eos = [tokenizer.eos_token_id] if getattr(tokenizer, "eos_token_id", None) is not None else []
    ids_list = tokenizer(texts, add_special_tokens=False)["input_ids"] if texts else []
    out = []
    for ids in ids_list:
        ids = list(ids) + eos
        out.append([Encoded(ids[i:i + cutoff_len], ids[i:i + cutoff_len], False, len(ids))
                    for i in range(0, len(ids), cutoff_len)])
    return out
