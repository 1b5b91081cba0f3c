"""An Ollama ``Modelfile`` whose template is derived from the model's own chat template.

Ollama formats a chat with a Go template over ``.Messages`` (each with ``.Role`` and
``.Content``), not with the model's Jinja template. Instead of a hard-coded template per family,
the Jinja template is rendered on probe conversations whose contents are sentinels; the text
between two sentinels is what the template puts between two messages, and it depends only on
the two roles for the templates this handles (ChatML, Llama 3, Mistral's and most others): a
**transition** from the previous role (or the start) to the next one (or the generation prompt).
The Go template prints, before each message, the transition from the previous role, then the
content; after the last message, the transition into the assistant's answer.

The derived template is checked before it is written: every probe conversation rendered by the
transition table must equal the Jinja rendering exactly, else :class:`TemplateError` says why
(a template that moves the system prompt into the last user turn, say, has no such table).

A default system prompt that the template adds when the conversation has none (SmolLM2's) lives
in the start→user transition, so Ollama shows it exactly when the Jinja template would. The stop
words are the special tokens the template puts right after an assistant's answer (``<|im_end|>``,
``<|eot_id|>``, ``</s>``).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence

Render = Callable[[list[dict[str, str]], bool], str]
"""``render(messages, add_generation_prompt)``: the model's chat template as text."""

ROLES = ("system", "user", "assistant")
PROBES: tuple[tuple[str, ...], ...] = (
    ("user",),
    ("system", "user"),
    ("user", "assistant", "user"),
    ("system", "user", "assistant", "user"),
    ("user", "assistant", "user", "assistant", "user"),
)
"""Conversations (by role) the template is rendered on; each ends with a user turn."""
START, ANSWER = "start", "answer"


class TemplateError(ValueError):
    """The chat template cannot be written as an Ollama template; the message says why."""


def sentinel(index: int) -> str:
    """A content that no template text contains."""
    return f"XQZSENTINEL{index}QZX"


def probe(roles: Sequence[str]) -> list[dict[str, str]]:
    """A conversation of ``roles`` with sentinel contents."""
    return [{"role": role, "content": sentinel(i)} for i, role in enumerate(roles)]


def transitions(render: Render) -> dict[tuple[str, str], str]:
    """The text the template puts between each pair of roles (``start`` first, ``answer`` last).

    Raises:
        TemplateError: two probes disagree on a transition (the template depends on more than
            the two roles), or no probe renders.
    """
    table: dict[tuple[str, str], str] = {}
    for roles in PROBES:
        messages = probe(roles)
        try:
            text = render(messages, True)
        except Exception:  # a template that refuses this order of roles (system-less, strict alternation)
            continue
        pieces = split(text, len(messages))
        for (before, after), piece in zip(zip((START, *roles), (*roles, ANSWER)), pieces):
            if table.setdefault((before, after), piece) != piece:
                raise TemplateError(f"the chat template puts different text between {before} and {after} "
                                    "turns depending on where they are: no Ollama template can follow it")
    if not table:
        raise TemplateError("the chat template renders none of the probe conversations")
    return table


def split(text: str, count: int) -> list[str]:
    """The texts around the ``count`` sentinels of a rendering, in order (count + 1 of them)."""
    pieces = []
    for i in range(count):
        before, found, text = text.partition(sentinel(i))
        if not found:
            raise TemplateError(f"the chat template drops or reorders message contents (message {i})")
        pieces.append(before)
    return [*pieces, text]


def replay(table: dict[tuple[str, str], str], roles: Sequence[str]) -> str:
    """What the transition table renders for a probe conversation of ``roles``."""
    path = (START, *roles, ANSWER)
    out = [table[(path[0], path[1])]]
    for i, (before, after) in enumerate(zip(path[1:], path[2:])):
        out += [sentinel(i), table[(before, after)]]
    return "".join(out)


def check(table: dict[tuple[str, str], str], render: Render) -> None:
    """Raise :class:`TemplateError` unless the table renders every probe exactly as the template."""
    for roles in PROBES:
        try:
            expected = render(probe(roles), True)
        except Exception:
            continue
        try:
            got = replay(table, roles)
        except KeyError as exc:
            raise TemplateError(f"the chat template has no text for the turn {exc}") from None
        if got != expected:
            raise TemplateError("the chat template depends on more than the roles of two neighbouring turns "
                                f"(conversation {' → '.join(roles)}): no Ollama template can follow it")


def go_string(text: str) -> str:
    """``text`` as a Go template action printing it (JSON string escapes are Go's)."""
    return "{{ " + json.dumps(text, ensure_ascii=False) + " }}" if text else ""


def go_template(table: dict[tuple[str, str], str]) -> str:
    """The Ollama (Go text/template) template following the transition table."""
    lines = ['{{- $prev := "start" }}', "{{- range .Messages }}"]
    branches = [(before, after) for (before, after) in table if after != ANSWER]
    for n, (before, after) in enumerate(branches):
        keyword = "if" if n == 0 else "else if"
        lines.append(f'{{{{- {keyword} and (eq $prev "{before}") (eq .Role "{after}") }}}}'
                     f"{go_string(table[(before, after)])}")
    if branches:
        lines.append("{{- end }}")
    lines += ["{{- .Content }}", "{{- $prev = .Role }}", "{{- end }}"]
    answers = [(before, table[(before, after)]) for (before, after) in table if after == ANSWER]
    for n, (before, text) in enumerate(answers):
        keyword = "if" if n == 0 else "else if"
        lines.append(f'{{{{- {keyword} eq $prev "{before}" }}}}{go_string(text)}')
    if answers:
        lines.append("{{- end }}")
    return "\n".join(lines)


def stop_words(render: Render, special_tokens: Sequence[str], eos_token: str | None) -> list[str]:
    """The special tokens the template writes right after an assistant's answer (else EOS)."""
    try:
        tail = split(render(probe(("user", "assistant")), False), 2)[-1]
    except Exception:
        tail = ""
    found = sorted({token for token in special_tokens if token and token in tail}, key=tail.index)
    return found or ([eos_token] if eos_token else [])


def modelfile(gguf_name: str, render: Render, special_tokens: Sequence[str], eos_token: str | None,
              bos_token: str | None = None, adds_bos: bool = False) -> str:
    """The ``Modelfile`` text for ``ollama create NAME -f Modelfile`` next to ``gguf_name``.

    ``adds_bos``: the GGUF's tokenizer adds BOS itself (``tokenizer.ggml.add_bos_token``), so a
    BOS the template writes at the start is left out of the Ollama template (else it comes twice).

    Raises:
        TemplateError: the chat template cannot be followed by an Ollama template.
    """
    table = transitions(render)
    check(table, render)
    if adds_bos and bos_token:
        table = {key: text.removeprefix(bos_token) if key[0] == START else text for key, text in table.items()}
    template = go_template(table)
    if '"""' in template:
        raise TemplateError('the chat template contains """, which a Modelfile cannot quote')
    lines = [f"FROM ./{gguf_name}", "", f'TEMPLATE """{template}"""', ""]
    lines += [f"PARAMETER stop {json.dumps(word, ensure_ascii=False)}"
              for word in stop_words(render, special_tokens, eos_token)]
    return "\n".join(lines) + "\n"
