"""The rewards of the stages that sample answers: rule rewards, a reward model, a user's Python function.

Each reward is a :class:`Reward`: a callable of TRL's reward-function form,
``reward(prompts=…, completions=…, completion_ids=…, reference=[…], record=[…], **kw) -> list[float]``,
named as TRL logs it (``rewards/<name>/mean``). The run's reward is their weighted sum (TRL's
``reward_weights``). A reward that raises stops the run with :class:`RewardError`, whose message names
the reward, the exception (the traceback's last line), where in the reward's code it was raised and the
record (file, line) whose answer it was scoring; so does one that runs past ``rl.reward_time_limit_s``
over a batch (a python reward that never returns, a regex that backtracks without end: SIGALRM in the
trainer's main thread, where TRL calls the rewards) and one that returns a score that is not a finite
number (NaN would train nothing while the run looked fine).

Rule rewards need only the standard library; the reward model imports torch when it is built.

A user's reward (``kind: python``) is a file and a function, ``FILE.py:FUNCTION``, called as::

    def my_reward(prompts: list, completions: list[str], references: list[str | None], **kw) -> list[float]:
        ...

once per batch, with one entry per sampled answer (each prompt repeated once per generation): ``prompts``
as chat messages, ``completions`` the answers' text, ``references`` each prompt's reference answer (None
when it has none); ``kw`` holds TRL's other arguments (``completion_ids``, ``trainer_state``, …). It returns
one float per answer (None leaves an answer unscored by it). The file is run only when the run's own config
sets ``rl.allow_code: true``.
"""

from __future__ import annotations

import importlib.util
import math
import numbers
import re
import signal
import sys
import threading
import traceback
import unicodedata
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from engine.config import RewardSection, RLSection

REFERENCE_FIELD = "reference"
"""The dataset column holding each prompt's reference answer ('' when it has none)."""
RECORD_FIELD = "record"
"""The dataset column saying where each prompt came from (``file:line (record N)``), for messages."""


class RewardError(RuntimeError):
    """A reward failed on an answer; the message says which reward, why, and on which record."""


class RewardTimeout(BaseException):
    """A reward ran past its time limit. A BaseException, so that a reward's own ``except Exception`` cannot
    swallow it (and it is raised again every second until the reward gives control back)."""


@contextmanager
def time_limit(seconds: float) -> Iterator[None]:
    """Raise :class:`RewardTimeout` in the main thread once ``seconds`` have passed (signals reach no other)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def expire(*_: object) -> None:
        raise RewardTimeout

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds, 1.0)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def normalise(text: str) -> str:
    """``text`` compared as exact_match does: lower case, punctuation removed, runs of spaces as one space."""
    kept = "".join(" " if unicodedata.category(ch).startswith("P") else ch for ch in text.casefold())
    return " ".join(kept.split())


def answer_text(completion: Any) -> str:
    """The text of one completion: a string, or the content of a conversational completion's last message."""
    if isinstance(completion, list):
        return str(completion[-1].get("content", "")) if completion else ""
    return str(completion)


def exact_match(answers: list[str], references: list[str | None]) -> list[float | None]:
    """1 where the normalised answer equals the normalised reference, else 0 (None without a reference)."""
    return [None if ref is None else float(normalise(a) == normalise(ref)) for a, ref in zip(answers, references)]


def contains(answers: list[str], references: list[str | None], text: str | None) -> list[float | None]:
    """1 where the normalised answer contains ``text`` (default: the reference), normalised, else 0."""
    wanted = [text if text is not None else ref for ref in references]
    return [None if w is None else float(normalise(w) in normalise(a)) for a, w in zip(answers, wanted)]


def regex(answers: list[str], pattern: str) -> list[float]:
    """1 where ``pattern`` is found in the answer (``re.search``, dot matches newlines), else 0."""
    compiled = re.compile(pattern, re.DOTALL)
    return [float(compiled.search(a) is not None) for a in answers]


def length(answers: list[str], max_words: int) -> list[float]:
    """0 for answers of up to ``max_words`` words, falling linearly to -1 at twice as many (and staying there)."""
    return [-min(1.0, max(0, len(a.split()) - max_words) / max_words) for a in answers]


class Reward:
    """One configured reward as TRL calls it, turning any failure into a located :class:`RewardError`."""

    def __init__(self, name: str, score: Callable[[list[Any], list[str], list[str | None], dict[str, Any]], list],
                 time_limit_s: float = 60.0) -> None:
        self.__name__ = name
        self.score = score
        """(prompts, answers, references, other kwargs) -> one score per answer."""
        self.time_limit_s = time_limit_s
        """Seconds the reward may take over one batch (``rl.reward_time_limit_s``)."""

    def __call__(self, prompts: list[Any], completions: list[Any], **kwargs: Any) -> list[float | None]:
        answers = [answer_text(c) for c in completions]
        references = [ref or None for ref in kwargs.pop(REFERENCE_FIELD, [None] * len(answers))]
        records = kwargs.pop(RECORD_FIELD, [None] * len(answers))
        try:
            with time_limit(self.time_limit_s):
                scores = list(self.score(prompts, answers, references, kwargs))
        except (Exception, RewardTimeout) as exc:  # every failure names its record
            raise RewardError(self._describe(exc, self._failing_record(prompts, answers, references, records, kwargs,
                                                                       exc))) from None
        if len(scores) != len(answers):
            raise RewardError(f"reward {self.__name__} returned {len(scores)} scores for {len(answers)} answers: "
                              "it must return one per answer")
        for n, value in enumerate(scores):
            if value is not None and not isinstance(value, numbers.Real):
                raise RewardError(f"reward {self.__name__} returned {type(value).__name__} for the answer to "
                                  f"{records[n]}: it must return numbers (or None)")
            if value is not None and not math.isfinite(value):
                raise RewardError(f"reward {self.__name__} returned {value} for the answer to {records[n]}: a score "
                                  "must be a finite number (or None to leave the answer unscored)")
        return [None if v is None else float(v) for v in scores]

    def _failing_record(self, prompts: list[Any], answers: list[str], references: list[str | None],
                        records: list[Any], kwargs: dict[str, Any], first: BaseException) -> tuple[Any, BaseException]:
        """The record whose answer the reward fails on alone (scored one at a time, each with its share of the time
        limit), with that failure."""
        share = max(1.0, self.time_limit_s / max(1, len(answers)))
        for n in range(len(answers)):
            one = {key: [value[n]] if isinstance(value, list) and len(value) == len(answers) else value
                   for key, value in kwargs.items()}
            try:
                with time_limit(share):
                    self.score(prompts[n:n + 1], answers[n:n + 1], references[n:n + 1], one)
            except (Exception, RewardTimeout) as exc:
                return records[n], exc
        return "a batch of " + ", ".join(dict.fromkeys(str(r) for r in records)), first

    def _describe(self, exc: BaseException, found: tuple[Any, BaseException]) -> str:
        record, exc = found
        if isinstance(exc, RewardTimeout):
            return (f"reward {self.__name__} took longer than rl.reward_time_limit_s ({self.time_limit_s:g} s) "
                    f"scoring the answer to {record}")
        last = traceback.format_exception_only(type(exc), exc)[-1].strip()
        frames = traceback.extract_tb(exc.__traceback__)
        where = f" ({Path(frames[-1].filename).name} line {frames[-1].lineno}, in {frames[-1].name})" if frames else ""
        return f"reward {self.__name__} raised {last}{where} on the answer to {record}"


def build_rewards(rl: RLSection) -> tuple[list[Reward], list[float]]:
    """The run's rewards and their weights (exact_match alone when none is configured)."""
    specs = rl.rewards or [RewardSection(kind="exact_match")]
    rewards, names = [], {}
    for spec in specs:
        name = spec.label()
        names[name] = names.get(name, 0) + 1
        rewards.append(_reward(spec, name if names[name] == 1 else f"{name}_{names[name]}", rl))
    return rewards, [spec.weight for spec in specs]


def _reward(spec: RewardSection, name: str, rl: RLSection) -> Reward:
    """The :class:`Reward` of one configured reward."""
    return Reward(name, _scorer(spec, rl), rl.reward_time_limit_s)


def _scorer(spec: RewardSection, rl: RLSection) -> Callable[[list[Any], list[str], list[str | None], dict[str, Any]],
                                                             list]:
    """``(prompts, answers, references, other kwargs) -> scores`` of one configured reward."""
    if spec.kind == "exact_match":
        return lambda p, a, r, kw: exact_match(a, r)
    if spec.kind == "contains":
        return lambda p, a, r, kw: contains(a, r, spec.text)
    if spec.kind == "regex":
        return lambda p, a, r, kw: regex(a, spec.pattern or "")
    if spec.kind == "length":
        return lambda p, a, r, kw: length(a, spec.max_words or 1)
    if spec.kind == "python":
        function = load_function(spec.function or "", rl.allow_code)
        return lambda p, a, r, kw: function(prompts=p, completions=a, references=r, **kw)
    from engine.recipes.reward_model import RewardModel  # torch: only for a run with a reward model

    model = RewardModel(spec.path or "")
    return lambda p, a, r, kw: model.score(p, a)


def load_function(spec: str, allowed: bool) -> Callable[..., list]:
    """The function ``FILE.py:FUNCTION`` names, its file run as a module (only when ``allowed``).

    Raises:
        ValueError: code not allowed, the file or the function missing, or the file failing to import
            (with the traceback's last line).
    """
    if not allowed:
        raise ValueError(f"the python reward {spec} runs your code: set rl.allow_code: true in the run's own config")
    file, _, name = spec.rpartition(":")
    path = Path(file).expanduser()
    if not path.is_file():
        raise ValueError(f"rl.rewards python: {file} is not a file")
    module_name = f"tuitune_reward_{path.stem}"
    loader = importlib.util.spec_from_file_location(module_name, path)
    if loader is None or loader.loader is None:
        raise ValueError(f"rl.rewards python: {file} cannot be loaded as a Python module")
    module = importlib.util.module_from_spec(loader)
    sys.modules[module_name] = module
    try:
        loader.loader.exec_module(module)
    except Exception as exc:  # shown as one located line
        last = traceback.format_exception_only(type(exc), exc)[-1].strip()
        raise ValueError(f"rl.rewards python: importing {file} failed: {last}") from exc
    function = getattr(module, name, None)
    if not callable(function):
        raise ValueError(f"rl.rewards python: {file} has no function {name}")
    return function
