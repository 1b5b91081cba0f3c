"""Rendering the Go templates tuitune writes into an Ollama Modelfile, to check them. Standard library only.

No well-kept Python library renders Go's text/template (the one package found wraps Go through cgo at
version 0.0.2), so this renders the subset :func:`engine.export.ollama.go_template` writes and nothing
more: text; actions with ``{{-``/``-}}`` trimming; ``range .Messages``; ``if``/``else if``/``end``; variables
declared with ``:=`` and set with ``=``; ``.Role``, ``.Content``; string literals (Go's escapes are JSON's
for what tuitune writes); ``eq A B`` and ``and X Y`` with parenthesised arguments. Anything else raises
:class:`GoTemplateError`, so a hand-edited Modelfile beyond the subset is said, never misread.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

ACTION = re.compile(r"\{\{(-?)\s*(.*?)\s*(-?)\}\}", re.S)
ATOM = re.compile(r'\s*(\(|\)|"(?:[^"\\]|\\.)*"|[^\s()]+)')


class GoTemplateError(ValueError):
    """The template uses what this renderer does not know (or is malformed); the message says what."""


@dataclass
class Node:
    """A parsed piece: text, an output or assignment action, or a block with children."""

    kind: str
    """``text``, ``print``, ``declare``, ``assign``, ``range``, ``if``."""
    value: Any = None
    branches: list[tuple[Any, list[Node]]] = field(default_factory=list)
    """For ``if``: (condition or None for else, body) in order; for ``range``: one (collection, body)."""


def _pieces(source: str) -> list[tuple[str, str]]:
    """Text and actions in order, with Go's trim markers applied to the neighbouring text."""
    pieces: list[tuple[str, str]] = []
    pos, trim_next = 0, False
    for match in ACTION.finditer(source):
        text = source[pos:match.start()]
        text = text.lstrip() if trim_next else text
        pieces.append(("text", text.rstrip() if match.group(1) else text))
        pieces.append(("action", match.group(2)))
        pos, trim_next = match.end(), bool(match.group(3))
    tail = source[pos:]
    pieces.append(("text", tail.lstrip() if trim_next else tail))
    return [(kind, value) for kind, value in pieces if kind == "action" or value]


def parse(source: str) -> list[Node]:
    """The template as nodes.

    Raises:
        GoTemplateError: an action outside the subset, or blocks that do not match.
    """
    root: list[Node] = []
    stack: list[tuple[Node | None, list[Node]]] = [(None, root)]
    for kind, value in _pieces(source):
        body = stack[-1][1]
        if kind == "text":
            body.append(Node("text", value))
        elif value.startswith("range "):
            node = Node("range", branches=[(_expression(value[6:]), [])])
            body.append(node)
            stack.append((node, node.branches[0][1]))
        elif value.startswith("if "):
            node = Node("if", branches=[(_expression(value[3:]), [])])
            body.append(node)
            stack.append((node, node.branches[0][1]))
        elif value.startswith("else"):
            node = stack[-1][0]
            if node is None or node.kind != "if":
                raise GoTemplateError(f"{{{{ {value} }}}} outside an if")
            rest = value[4:].strip()
            condition = _expression(rest[3:]) if rest.startswith("if ") else None
            node.branches.append((condition, []))
            stack[-1] = (node, node.branches[-1][1])
        elif value == "end":
            if len(stack) == 1:
                raise GoTemplateError("{{ end }} with no block open")
            stack.pop()
        elif m := re.fullmatch(r"(\$\w+)\s*(:?=)\s*(.+)", value, re.S):
            body.append(Node("declare" if m.group(2) == ":=" else "assign", (m.group(1), _expression(m.group(3)))))
        else:
            body.append(Node("print", _expression(value)))
    if len(stack) != 1:
        raise GoTemplateError("a block is not closed with {{ end }}")
    return root


def _expression(text: str) -> Any:
    """A command as nested lists: ``eq .Role "user"`` → ``["eq", ".Role", ("str", "user")]``."""
    tokens = [m.group(1) for m in ATOM.finditer(text)]
    parsed, rest = _command(tokens)
    if rest:
        raise GoTemplateError(f"cannot read {text!r}")
    return parsed


def _command(tokens: list[str]) -> tuple[Any, list[str]]:
    items: list[Any] = []
    while tokens and tokens[0] != ")":
        token, tokens = tokens[0], tokens[1:]
        if token == "(":
            inner, tokens = _command(tokens)
            if not tokens or tokens[0] != ")":
                raise GoTemplateError("unbalanced parentheses")
            tokens = tokens[1:]
            items.append(inner)
        elif token.startswith('"'):
            items.append(("str", json.loads(token)))
        else:
            items.append(token)
    return (items[0] if len(items) == 1 else items), tokens


def render(source: str, messages: list[dict[str, str]]) -> str:
    """The text Ollama's template ``source`` makes of ``messages`` (``role``, ``content`` each)."""
    out: list[str] = []
    _run(parse(source), {"Messages": [{"Role": m["role"], "Content": m["content"]} for m in messages]}, [{}], out)
    return "".join(out)


def _run(nodes: list[Node], dot: Any, scopes: list[dict[str, Any]], out: list[str]) -> None:
    for node in nodes:
        if node.kind == "text":
            out.append(node.value)
        elif node.kind == "print":
            out.append(str(_value(node.value, dot, scopes)))
        elif node.kind == "declare":
            scopes[-1][node.value[0]] = _value(node.value[1], dot, scopes)
        elif node.kind == "assign":
            scope = next((s for s in reversed(scopes) if node.value[0] in s), None)
            if scope is None:
                raise GoTemplateError(f"{node.value[0]} is set before it is declared")
            scope[node.value[0]] = _value(node.value[1], dot, scopes)
        elif node.kind == "range":
            collection, body = node.branches[0]
            for item in _value(collection, dot, scopes) or []:
                _run(body, item, [*scopes, {}], out)
        else:
            for condition, body in node.branches:
                if condition is None or _value(condition, dot, scopes):
                    _run(body, dot, [*scopes, {}], out)
                    break


def _value(expr: Any, dot: Any, scopes: list[dict[str, Any]]) -> Any:
    if isinstance(expr, tuple):
        return expr[1]
    if isinstance(expr, list):
        name, args = expr[0], [_value(a, dot, scopes) for a in expr[1:]]
        if name == "eq" and len(args) == 2:
            return args[0] == args[1]
        if name == "and" and args:
            return all(args)
        raise GoTemplateError(f"the function {name!r} is not in the subset tuitune writes")
    if expr.startswith("$"):
        for scope in reversed(scopes):
            if expr in scope:
                return scope[expr]
        raise GoTemplateError(f"{expr} is not declared")
    if expr.startswith(".") and isinstance(dot, dict) and expr[1:] in dot:
        return dot[expr[1:]]
    raise GoTemplateError(f"cannot read {expr!r}")
