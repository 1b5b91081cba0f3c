"""The chat-template doctor: verdicts on how a model's chat template makes training tokens.

The silent fine-tuning mistakes are judged here, each with its evidence and what to do: the
end-of-turn token after each answer is trained (so the tuned model learns to stop) and generation
stops on it; no doubled BOS; the system prompt is rendered; the template accepts the data's roles;
every assistant turn is trained; the chat prompt equals the training prompt up to the answer;
reasoning (``<think>…</think>``) is treated alike in training and at chat time; and a model without a
template is told which one training uses.

Training's own code makes the tokens judged (:func:`engine.data.encode.encode_conversation`,
:func:`engine.data.encode.render`), so the verdicts speak of what training really does. Probe
conversations with sentinel contents are used, and up to :data:`SAMPLE` of the run's records when
given. The tokenizer is handed in (a transformers tokenizer), so this module needs only the
standard library itself.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from engine.data.encode import FALLBACK_TEMPLATE, IGNORE_INDEX, assistant_spans, encode_conversation, render
from engine.data.verdicts import Verdict, show_tokens

SAMPLE = 64
"""Records of the run's data the doctor renders besides its probes."""
UNLIMITED = 1 << 40
END_OF_TURN = ("<|im_end|>", "<|eot_id|>", "<|end|>", "<end_of_turn>", "<|endoftext|>", "</s>")
"""End-of-turn markers of the common chat templates: those in the vocabulary end an answer in tuitune's chat
(engine.models.generation), and the doctor looks for them after an answer."""
THINK_OPEN, THINK_CLOSE = "<think>", "</think>"
CONTEXT = 3
"""Tokens shown on each side of the token a verdict speaks of."""


def probe_text(name: str) -> str:
    """A probe content no template text contains."""
    return f"Probe{name}Zq"


SYSTEM, USER1, ANSWER1, USER2, ANSWER2 = (probe_text(n)
                                          for n in ("System", "UserOne", "AnswerOne", "UserTwo", "AnswerTwo"))
TWO_TURNS = [{"role": "user", "content": USER1}, {"role": "assistant", "content": ANSWER1},
             {"role": "user", "content": USER2}, {"role": "assistant", "content": ANSWER2}]
"""The probe conversation: two user turns, each answered."""
WITH_SYSTEM = [{"role": "system", "content": SYSTEM}, *TWO_TURNS[:2]]


class Doctor:
    """The verdicts on one tokenizer (and the data it will train on).

    Args:
        tokenizer: a transformers tokenizer, loaded as training loads it.
        stop_ids: the token ids generation stops on (``generation_config.json``'s ``eos_token_id``);
            None when the model has no generation config (the tokenizer's EOS is then what stops it).
        conversations: records of the run's data as training encodes them (system prompt added), or none.
    """

    def __init__(self, tokenizer: Any, stop_ids: Sequence[int] | None = None,
                 conversations: Sequence[list[dict[str, str]]] = ()) -> None:
        self.tokenizer = tokenizer
        self.stop_ids = list(stop_ids) if stop_ids is not None else None
        self.conversations = list(conversations)[:SAMPLE]

    def verdicts(self) -> list[Verdict]:
        """Every verdict, passing ones too, in the order a reader needs them."""
        checks: list[Callable[[], Verdict]] = [
            self.template, self.roles, self.system, self.end_of_turn, self.stop, self.multi_turn, self.bos,
            self.generation_prompt, self.reasoning]
        out = []
        for check in checks:
            try:
                verdict = check()
            except Exception as exc:  # a template that fails on a probe is itself the finding
                verdict = Verdict(check.__name__, "error", f"the chat template fails: {type(exc).__name__}: {exc}",
                                  fix="fix the template (tokenizer_config.json's chat_template)")
            out.append(verdict)
        return out

    # ---- helpers --------------------------------------------------------------------------
    def render(self, messages: list[dict[str, str]], generation_prompt: bool = False) -> str:
        """The conversation as training renders it (the model's template, or the fallback)."""
        return render(messages, self.tokenizer, generation_prompt)

    def tokens(self, ids: Sequence[int], labels: Sequence[int] | None, start: int, end: int) -> str:
        """The evidence text of ``ids[start:end]`` (with trained marks when ``labels`` are given)."""
        start, end = max(0, start), min(len(ids), end)
        return show_tokens([(self.tokenizer.decode([ids[i]]), ids[i], labels is not None and labels[i] != IGNORE_INDEX)
                            for i in range(start, end)])

    def token_id(self, token: str | None) -> int | None:
        """The id of a special token's text, or None when it is not one token of the vocabulary."""
        if not token:
            return None
        found = self.tokenizer.convert_tokens_to_ids(token)
        return found if isinstance(found, int) and found != self.tokenizer.unk_token_id else None

    def end_token(self) -> str | None:
        """The special token the template writes right after an assistant's answer (else None)."""
        full = self.render(TWO_TURNS)  # between an answer and the next question, wherever the template puts it
        tail = full[full.index(ANSWER1) + len(ANSWER1):full.find(USER2)] if ANSWER1 in full else ""
        specials = [t for t in self.tokenizer.all_special_tokens if t and t in tail]
        specials += [t for t in END_OF_TURN if t in tail and t not in specials and self.token_id(t) is not None]
        return min(specials, key=tail.index) if specials else None

    # ---- the verdicts ---------------------------------------------------------------------
    def template(self) -> Verdict:
        """Which template training uses: the model's own, or tuitune's fallback for a base model."""
        if getattr(self.tokenizer, "chat_template", None):
            return Verdict("template", "ok", "the model's own chat template renders the conversations")
        return Verdict("template", "warning", "the model has no chat template (a base model): training uses "
                       "tuitune's plain fallback ('user: …', 'assistant: …' then EOS), which no server knows",
                       token=self.tokenizer.eos_token, evidence=repr(self.render(TWO_TURNS[:2])),
                       fix="serve the tuned model with the same template (export writes no Ollama template for it), "
                           "or start from an instruct model of the family")

    def roles(self) -> Verdict:
        """The template accepts user/assistant turns, and the data's role orders, keeping their order."""
        full = self.render(TWO_TURNS)
        positions = [full.find(m["content"]) for m in TWO_TURNS]
        if -1 in positions or positions != sorted(positions):
            return Verdict("roles", "error", "the chat template drops or reorders the turns of a plain "
                           "user/assistant conversation", evidence=repr(full),
                           fix="use a template that renders every turn in order")
        for n, conversation in enumerate(self.conversations):
            try:
                self.render(conversation)
            except Exception as exc:
                order = ", ".join(m["role"] for m in conversation)
                return Verdict("roles", "error", f"the chat template refuses the roles of sampled record {n} "
                               f"({order}): {exc}", fix="reorder the data's turns (alternate user and assistant) "
                               "or choose a template that accepts them")
        sampled = f"; {len(self.conversations)} sampled records render" if self.conversations else ""
        return Verdict("roles", "ok", f"user and assistant turns render in order{sampled}")

    def system(self) -> Verdict:
        """The system prompt is rendered (some templates refuse it, some drop it silently)."""
        used = sum(1 for c in self.conversations if any(m["role"] == "system" for m in c))
        severity = "error" if used else "warning"
        where = (f"{used} of {len(self.conversations)} sampled records have a system prompt" if used
                 else "the data sampled has none")
        try:
            full = self.render(WITH_SYSTEM)
        except Exception as exc:
            return Verdict("system", severity, f"the chat template refuses a system turn ({exc}); {where}",
                           fix="drop the system prompts (data.system_prompt and system turns) or fold them into the "
                               "first user turn")
        if SYSTEM not in full:
            return Verdict("system", severity, f"the chat template silently drops the system turn; {where}",
                           evidence=repr(full), fix="fold the system prompt into the first user turn, or use a "
                                                    "template that renders it")
        return Verdict("system", "ok", "the system prompt is rendered" + (f" ({where})" if used else ""))

    def end_of_turn(self) -> Verdict:
        """The end-of-turn (or EOS) token after each answer is trained, so the tuned model learns to stop."""
        token = self.end_token()
        enc = encode_conversation(TWO_TURNS, self.tokenizer, UNLIMITED)
        _, spans = assistant_spans(TWO_TURNS, self.tokenizer)
        answer_end = self._answer_end()
        if token is None:
            return Verdict("end_of_turn", "error", "the chat template writes no end-of-turn token after an "
                           "answer, so the tuned model never learns to stop", token=self.tokenizer.eos_token,
                           evidence=self.tokens(enc.input_ids, enc.labels, answer_end - CONTEXT, answer_end + CONTEXT),
                           fix=f"use a template that ends each assistant turn with {self.tokenizer.eos_token or 'EOS'}")
        token_id = self.token_id(token)
        trained = sum(1 for i, label in zip(enc.input_ids, enc.labels) if i == token_id and label != IGNORE_INDEX)
        at = next((i for i in range(answer_end, len(enc.input_ids)) if enc.input_ids[i] == token_id), answer_end)
        evidence = self.tokens(enc.input_ids, enc.labels, at - CONTEXT, at + CONTEXT)
        if trained < len(spans):
            return Verdict("end_of_turn", "error", f"{token} after the answers is not trained ({trained} of "
                           f"{len(spans)} answers): the tuned model will not learn to stop and talks on",
                           token=token, evidence=evidence,
                           fix=f"use a template that writes {token} as part of the assistant's turn")
        return Verdict("end_of_turn", "ok", f"{token} (id {token_id}) after every answer is trained "
                       f"({trained} of {len(spans)})", token=token, evidence=evidence)

    def _answer_end(self) -> int:
        """The index of the first token after the first answer's content (where the evidence looks)."""
        full = self.render(TWO_TURNS)
        return len(self.tokenizer(full[:full.find(ANSWER1) + len(ANSWER1)], add_special_tokens=False)["input_ids"])

    def stop(self) -> Verdict:
        """Generation stops on the end-of-turn token (generation_config's eos ids, else the tokenizer's EOS)."""
        token = self.end_token() or self.tokenizer.eos_token
        token_id = self.token_id(token)
        source = "generation_config.json's eos_token_id"
        stops = self.stop_ids
        if stops is None:
            source, stops = "the tokenizer's EOS (no generation_config.json)", [self.tokenizer.eos_token_id]
        if token_id in stops:
            return Verdict("stop", "ok", f"generation stops on {token} (id {token_id} is in {source} {stops})",
                           token=token)
        return Verdict("stop", "warning", f"generation does not stop on {token} (id {token_id}): {source} is "
                       f"{stops}; transformers' generate and servers that read it run on past the answer "
                       "(tuitune's chat and the exported Modelfile stop on it)", token=token,
                       fix=f"add {token_id} to eos_token_id in the model's generation_config.json")

    def multi_turn(self) -> Verdict:
        """Every assistant turn of a conversation is trained (tuitune's SFT trains them all)."""
        enc = encode_conversation(TWO_TURNS, self.tokenizer, UNLIMITED)
        trained = self.tokenizer.decode([i for i, label in zip(enc.input_ids, enc.labels) if label != IGNORE_INDEX])
        missing = [a for a in (ANSWER1, ANSWER2) if a not in trained]
        if missing:
            return Verdict("multi_turn", "error", f"{len(missing)} of 2 assistant turns are not trained",
                           evidence=repr(trained), fix="use a template that renders every assistant turn")
        return Verdict("multi_turn", "ok", "every assistant turn is trained (2 of 2 in a two-turn conversation), "
                       "as tuitune's SFT trains them")

    def bos(self) -> Verdict:
        """No doubled BOS in the training tokens; says whether the template or the tokenizer writes it."""
        bos, bos_id = self.tokenizer.bos_token, self.tokenizer.bos_token_id
        if bos_id is None:
            return Verdict("bos", "ok", "the tokenizer has no BOS token, so none can be doubled")
        samples = [TWO_TURNS, *self.conversations]
        for n, conversation in enumerate(samples):
            ids = encode_conversation(conversation, self.tokenizer, UNLIMITED).input_ids
            if ids[:2] == [bos_id, bos_id]:
                where = "the probe conversation" if n == 0 else f"sampled record {n - 1}"
                return Verdict("bos", "error", f"{bos} comes twice at the start of {where}'s training tokens",
                               token=bos, evidence=self.tokens(ids, None, 0, 2 + CONTEXT),
                               fix=f"remove the extra {bos} (the template writes it once; data must not start with it)")
        ids = encode_conversation(TWO_TURNS, self.tokenizer, UNLIMITED).input_ids
        adds = self.tokenizer("a", add_special_tokens=True)["input_ids"][:1] == [bos_id]
        writes = ids[:1] == [bos_id]
        note = (" the tokenizer adds another when asked for special tokens, so a server must apply the template "
                "as tokens (llama.cpp, Ollama and apply_chat_template do), not tokenise the rendered text with "
                "special tokens" if adds and writes else "")
        said = "the template writes it once" if writes else "no BOS at the start (the template writes none)"
        return Verdict("bos", "ok", f"{bos} is not doubled in training: {said};{note or ' training adds none'}",
                       token=bos)

    def generation_prompt(self) -> Verdict:
        """The prompt rendered for chat equals the training prompt up to the answer, in text and tokens."""
        prompt = self.render(TWO_TURNS[:1], True)
        full, spans = assistant_spans(TWO_TURNS[:2], self.tokenizer)
        start = spans[0][0]
        if full[:start] != prompt:
            at = next((i for i, (a, b) in enumerate(zip(prompt, full)) if a != b), min(len(prompt), start))
            return Verdict("generation_prompt", "error", "the prompt rendered for chat differs from the training "
                           "prompt before the answer, so the tuned model is asked in a form it never saw",
                           evidence=f"chat {prompt[max(0, at - 24):at + 24]!r} vs training "
                                    f"{full[max(0, at - 24):at + 24]!r}",
                           fix="make add_generation_prompt write what the template writes before an assistant turn")
        header = full[start:full.find(ANSWER1)]
        if prompt == self.render(TWO_TURNS[:1]) and header.strip():
            return Verdict("generation_prompt", "error", "the chat template has no generation prompt "
                           f"(add_generation_prompt adds nothing), so training trains the turn's opening {header!r} "
                           "as part of each answer", evidence=f"chat prompt ends {prompt[-40:]!r}; trained "
                                                              f"{full[start:start + 40]!r}",
                           fix="add an add_generation_prompt branch that opens the assistant's turn")
        prompt_ids = self.tokenizer(prompt, add_special_tokens=False)["input_ids"]
        ids = encode_conversation(TWO_TURNS[:2], self.tokenizer, UNLIMITED).input_ids
        if ids[:len(prompt_ids)] != prompt_ids:
            at = next((i for i, (a, b) in enumerate(zip(prompt_ids, ids)) if a != b), len(prompt_ids))
            return Verdict("generation_prompt", "warning", "the chat prompt's tokens differ from training's at the "
                           "answer's start (the answer's first characters merge with the prompt's last token)",
                           evidence=f"chat {self.tokens(prompt_ids, None, at - CONTEXT, at + 1)} vs training "
                                    f"{self.tokens(ids, None, at - CONTEXT, at + 1)}",
                           fix="end the generation prompt with a special token or a newline")
        return Verdict("generation_prompt", "ok", f"the chat prompt equals training's up to the answer (ends "
                       f"{prompt[-24:]!r}, {len(prompt_ids)} tokens alike)")

    def reasoning(self) -> Verdict:
        """Reasoning in ``<think>…</think>``: kept, emptied or stripped in training and at chat time, and
        whether the two agree (only for templates or data that use it)."""
        template = getattr(self.tokenizer, "chat_template", None) or FALLBACK_TEMPLATE
        in_data = any(THINK_CLOSE in m["content"] for c in self.conversations for m in c if m["role"] == "assistant")
        if THINK_OPEN not in template and "reasoning_content" not in template and not in_data:
            return Verdict("reasoning", "ok", "no reasoning tags (<think>) in the template or the data sampled")
        reason = probe_text("Reasoning")
        answer = f"{THINK_OPEN}\n{reason}\n{THINK_CLOSE}\n\n{ANSWER1}"
        thought = [*TWO_TURNS[:1], {"role": "assistant", "content": answer}]
        kept = reason in self._trained(thought)
        plain = self._trained(TWO_TURNS[:2])
        emptied = THINK_OPEN in plain and THINK_CLOSE in plain
        try:
            history: bool | None = reason in self._trained([*thought, *TWO_TURNS[2:]])
        except ValueError:  # training cannot find the earlier answer once the template rewrites it
            history = None
        prompt = self.render(TWO_TURNS[:1], True)
        at_chat = ("the prompt opens <think>, so the model must reason" if prompt.rstrip().endswith(THINK_OPEN)
                   else "the prompt holds an empty <think></think>, so the model answers without reasoning"
                   if THINK_CLOSE in prompt[-40:] else "the prompt leaves it to the model whether to reason")
        earlier = {True: " and of earlier ones", False: " and strips it from earlier ones",
                   None: "; records whose earlier answers hold reasoning are refused, as the template rewrites them"}
        trained = (f"training keeps the reasoning of the last answer{earlier[history]}" if kept
                   else "training strips the reasoning from the answers")
        empty = "; answers without reasoning are trained with an empty <think></think> (the template adds it)" \
            if emptied else ""
        message = f"{THINK_OPEN}: {trained}{empty}; at chat time {at_chat}"
        if in_data and not kept:
            return Verdict("reasoning", "error", message, token=THINK_OPEN,
                           fix="the data's reasoning is not trained: use a template that keeps <think> in the last "
                               "answer, or drop the reasoning from the data")
        if emptied and not in_data and "must reason" not in at_chat:
            return Verdict("reasoning", "warning", message, token=THINK_OPEN,
                           fix="the tuned model learns to skip reasoning: chat with thinking off (enable_thinking="
                               "False) to match, or train answers with their reasoning")
        return Verdict("reasoning", "ok", message, token=THINK_OPEN)

    def _trained(self, messages: list[dict[str, str]]) -> str:
        enc = encode_conversation(messages, self.tokenizer, UNLIMITED)
        return self.tokenizer.decode([i for i, label in zip(enc.input_ids, enc.labels) if label != IGNORE_INDEX])


def generation_stop_ids(folder: str | Path) -> list[int] | None:
    """``eos_token_id`` of ``folder/generation_config.json`` as a list; None when the file is not there."""
    path = Path(folder) / "generation_config.json"
    try:
        value = json.loads(path.read_text(encoding="utf-8")).get("eos_token_id")
    except (OSError, ValueError, AttributeError):
        return None
    if value is None:
        return None
    return [int(v) for v in value] if isinstance(value, list) else [int(value)]


def diagnose(tokenizer: Any, stop_ids: Sequence[int] | None = None,
             conversations: Sequence[list[dict[str, str]]] = ()) -> list[Verdict]:
    """Every verdict on ``tokenizer``'s chat template (see :class:`Doctor`)."""
    return Doctor(tokenizer, stop_ids, conversations).verdicts()
