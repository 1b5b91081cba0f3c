"""An export's artefacts checked against training: they must ask the tuned model as training taught it.

After an export writes its outputs (:mod:`engine.jobs.export`), each is asked to render one sample
conversation for chat, and the result is compared with what training's own code renders and tokenises
(:func:`engine.data.encode.render`, the run's tokenizer):

* ``merged/``: its tokenizer (files and chat template) renders it to the same token ids;
* each GGUF: the chat template it embeds (``tokenizer.chat_template``, read with ``gguf``'s
  ``GGUFReader``) renders the same text, its vocabulary holds the same token at every id of it, and the
  end-of-turn token is there under its id;
* the ``Modelfile``: its ``TEMPLATE`` (rendered by :mod:`engine.export.go_template`) gives the same text
  (less the BOS the GGUF's tokenizer adds itself), and its ``stop`` parameters hold the end-of-turn token.

Each gives a :class:`engine.data.verdicts.Verdict`; an error fails the export (its files stay, complete).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from engine.data.encode import render
from engine.data.template_doctor import TWO_TURNS, Doctor
from engine.data.verdicts import Verdict, show_tokens
from engine.export import go_template, plan
from engine.models.tokenizer import load_tokenizer

SAMPLE = TWO_TURNS[:3]
"""A user turn, its answer and a second question: the prompt a served model gets for its second answer."""
FIX = "re-export from this tuitune, or copy the base model's chat template and special tokens into it"


def check_export(tokenizer: Any, destination: Path, names: list[str]) -> list[Verdict]:
    """A verdict on each of ``names`` (outputs in ``destination``) that renders chats: merged/, GGUFs, Modelfile."""
    prompt = render(SAMPLE, tokenizer, True)
    ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    eot = Doctor(tokenizer).end_token() or tokenizer.eos_token
    verdicts = []
    for name in names:
        path = destination / name
        if name == plan.MERGED_DIR:
            verdicts.append(check_merged(path, ids, tokenizer))
        elif name.endswith(".gguf"):
            verdicts.append(check_gguf(path, prompt, ids, eot, tokenizer))
        elif name == plan.MODELFILE:
            verdicts.append(check_modelfile(path, prompt, eot, tokenizer, _gguf_adds_bos(destination, names)))
    return verdicts


def check_merged(folder: Path, ids: list[int], tokenizer: Any) -> Verdict:
    """The merged folder's own tokenizer renders the sample to training's token ids."""
    merged = load_tokenizer(str(folder))
    got = merged(render(SAMPLE, merged, True), add_special_tokens=False)["input_ids"]
    if got != ids:
        return Verdict("merged", "error", f"{folder.name}/ renders the sample chat to other tokens than training",
                       evidence=_first_difference(got, ids, tokenizer), fix=FIX)
    return Verdict("merged", "ok", f"{folder.name}/'s tokenizer renders the sample chat to the same {len(ids)} tokens "
                   "as training")


def check_gguf(path: Path, prompt: str, ids: list[int], eot: str, tokenizer: Any) -> Verdict:
    """The GGUF's embedded template renders training's text; its vocabulary agrees on those ids and on ``eot``."""
    fields = gguf_fields(path)
    template = fields.get("tokenizer.chat_template")
    if not template:
        return Verdict("gguf", "error", f"{path.name} embeds no chat template, so llama.cpp and Ollama fall back to "
                       "a guess", token=eot, fix=FIX)
    try:
        text = tokenizer.apply_chat_template(SAMPLE, chat_template=template, tokenize=False,
                                             add_generation_prompt=True)
    except Exception as exc:  # a template written for other special tokens, or broken
        return Verdict("gguf", "error", f"{path.name}'s chat template fails on the sample chat: {exc}", token=eot,
                       fix=FIX)
    if text != prompt:
        return Verdict("gguf", "error", f"{path.name}'s chat template renders the sample chat unlike training",
                       token=eot, evidence=_text_difference(text, prompt), fix=FIX)
    vocab = fields.get("tokenizer.ggml.tokens") or []
    eot_id = tokenizer.convert_tokens_to_ids(eot)
    wrong = [i for i in [*ids, eot_id] if i >= len(vocab) or vocab[i] != tokenizer.convert_ids_to_tokens(i)]
    if wrong:
        found = vocab[wrong[0]] if wrong[0] < len(vocab) else "nothing"
        trained = tokenizer.convert_ids_to_tokens(wrong[0])
        return Verdict("gguf", "error", f"{path.name}'s vocabulary differs from training's: id {wrong[0]} is "
                       f"{found!r} there, {trained!r} in training", token=eot, fix=FIX)
    return Verdict("gguf", "ok", f"{path.name} embeds the chat template, which renders the sample chat as training "
                   f"did ({len(ids)} tokens, the same ids in its vocabulary); {eot} is id {eot_id} there", token=eot)


def check_modelfile(path: Path, prompt: str, eot: str, tokenizer: Any, adds_bos: bool) -> Verdict:
    """The Modelfile's TEMPLATE renders training's text for Ollama, and its stop words hold ``eot``."""
    source = path.read_text(encoding="utf-8")
    found = re.search(r'^TEMPLATE """(.*?)"""', source, re.S | re.M)
    if found is None:
        return Verdict("modelfile", "error", f"{path.name} has no TEMPLATE, so Ollama formats the chat its own way",
                       token=eot, fix=FIX)
    try:
        text = go_template.render(found.group(1), SAMPLE)
    except go_template.GoTemplateError as exc:
        return Verdict("modelfile", "error", f"{path.name}'s TEMPLATE cannot be checked: {exc}", token=eot, fix=FIX)
    expected = prompt.removeprefix(tokenizer.bos_token) if adds_bos and tokenizer.bos_token else prompt
    if text != expected:
        return Verdict("modelfile", "error", f"{path.name}'s TEMPLATE renders the sample chat unlike training",
                       token=eot, evidence=_text_difference(text, expected), fix=FIX)
    stops = [json.loads(m.group(1)) for m in re.finditer(r"^PARAMETER stop (\".*\")$", source, re.M)]
    if eot not in stops:
        return Verdict("modelfile", "error", f"{path.name} does not stop on {eot} (its stop words: {stops}), so "
                       "Ollama's answers run on past the end of the turn", token=eot,
                       fix=f'add PARAMETER stop "{eot}" to {path.name}')
    bos = " (less the BOS the GGUF adds itself)" if expected != prompt else ""
    return Verdict("modelfile", "ok", f"{path.name}'s TEMPLATE renders the sample chat as training did{bos}, and "
                   f"it stops on {eot}", token=eot)


def gguf_fields(path: Path) -> dict[str, Any]:
    """The tokenizer fields of a GGUF file: ``tokenizer.chat_template`` (str), ``tokenizer.ggml.tokens``
    (list of str), ``tokenizer.ggml.add_bos_token`` (bool), when present."""
    from gguf import GGUFReader

    reader = GGUFReader(str(path))
    out: dict[str, Any] = {}
    for name in ("tokenizer.chat_template", "tokenizer.ggml.tokens", "tokenizer.ggml.add_bos_token"):
        field = reader.fields.get(name)
        if field is None:
            continue
        values = [field.parts[i] for i in field.data]
        if name == "tokenizer.ggml.add_bos_token":
            out[name] = bool(values[0][0])
        elif name == "tokenizer.ggml.tokens":
            out[name] = [bytes(v).decode("utf-8", errors="replace") for v in values]
        else:
            out[name] = bytes(values[0]).decode("utf-8", errors="replace")
    return out


def _gguf_adds_bos(destination: Path, names: list[str]) -> bool:
    gguf = next((name for name in names if name.endswith(".gguf")), None)
    return bool(gguf and gguf_fields(destination / gguf).get("tokenizer.ggml.add_bos_token"))


def _first_difference(got: list[int], want: list[int], tokenizer: Any) -> str:
    at = next((i for i, (a, b) in enumerate(zip(got, want)) if a != b), min(len(got), len(want)))

    def around(ids: list[int]) -> str:
        return show_tokens([(tokenizer.decode([t]), t, False) for t in ids[max(0, at - 2):at + 3]])
    return f"at token {at}: exported {around(got)} vs training {around(want)}"


def _text_difference(got: str, want: str) -> str:
    at = next((i for i, (a, b) in enumerate(zip(got, want)) if a != b), min(len(got), len(want)))
    return f"at character {at}: exported {got[max(0, at - 30):at + 30]!r} vs training {want[max(0, at - 30):at + 30]!r}"

