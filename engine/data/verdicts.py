"""The chat-template doctor's verdicts: what it found, how sure, and what to do. Standard library only.

A :class:`Verdict` is one judgement about how a model's chat template and tokenizer turn conversations
into training tokens, or about an exported model (:mod:`engine.data.template_doctor` makes the first,
:mod:`engine.jobs.export_check` the second). ``tuitune data check --model``, the Data screen's Template
tab, the new-run review, ``tuitune train`` and ``tuitune export`` all show them with :meth:`Verdict.line`,
so a verdict reads the same wherever it appears. Passing verdicts are kept too: they say which token
was checked.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

VerdictSeverity = Literal["ok", "warning", "error"]


@dataclass(frozen=True)
class Verdict:
    """One judgement of the doctor, with its evidence."""

    check: str
    """What was judged: ``end_of_turn``, ``stop``, ``bos``, ``system``, ``roles``, ``multi_turn``,
    ``generation_prompt``, ``reasoning``, ``template``, or an export's ``gguf``, ``modelfile``, ``merged``."""
    severity: VerdictSeverity
    """``ok`` (passes), ``warning`` (works, with a cost worth knowing) or ``error`` (the tuned model will misbehave)."""
    message: str
    """One line saying what was found, naming the token it speaks of."""
    token: str | None = None
    """The token judged (``<|im_end|>``, ``<s>``…), when there is one."""
    evidence: str = ""
    """The rendered text and token ids around the problem (tokens as ``'text'#id``, ``+`` trained, ``-`` not)."""
    fix: str = ""
    """What to do about it (empty when it passes)."""

    @property
    def is_error(self) -> bool:
        """Whether this verdict stops a run (unless forced)."""
        return self.severity == "error"

    def line(self, with_fix: bool = True) -> str:
        """``error   end of turn: <|im_end|> after the answers is not trained…; use a template…``: the verdict
        in one line, what to do last (unless not ``with_fix``)."""
        fix = f"; {self.fix}" if with_fix and self.fix and self.severity != "ok" else ""
        return f"{self.severity:<8}{self.check.replace('_', ' ')}: {self.message}{fix}"

    def to_dict(self) -> dict[str, Any]:
        """The verdict's fields, JSON-ready."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Verdict:
        """A verdict from :meth:`to_dict`'s fields (a ``type`` key and unknown fields are ignored)."""
        return cls(**{name: data[name] for name in cls.__dataclass_fields__ if name in data})


def show_tokens(pieces: list[tuple[str, int, bool]]) -> str:
    """Tokens as ``'text'#id+`` (trained) or ``'text'#id-`` (not), space-separated: the evidence format."""
    return " ".join(f"{text!r}#{token}{'+' if trained else '-'}" for text, token, trained in pieces)
