"""The chat-template doctor's verdicts on real families' templates, and on templates broken on purpose.

Tokenizers come from tests/fixtures/templates (each family's template, special tokens, BOS behaviour and
generation stop ids over a byte-level vocabulary) and are loaded as training loads them.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from engine.data.template_doctor import diagnose, generation_stop_ids
from engine.models.tokenizer import load_tokenizer

_spec = importlib.util.spec_from_file_location("template_fixtures",
                                               Path(__file__).parents[1] / "fixtures/templates/build.py")
templates = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(templates)

CHECKS = ["template", "roles", "system", "end_of_turn", "stop", "multi_turn", "bos", "generation_prompt",
          "reasoning"]
END_OF_TURN = {"smollm2": "<|im_end|>", "qwen2_5": "<|im_end|>", "llama3": "<|eot_id|>", "mistral": "</s>",
               "gemma": "<end_of_turn>", "phi3": "<|end|>", "qwen3": "<|im_end|>"}
CHATML_EOT_NEXT_TURN = ("{% for m in messages %}{% if not loop.first %}<|im_end|>\n{% endif %}"
                        "<|im_start|>{{ m['role'] }}\n{{ m['content'] }}{% endfor %}"
                        "{% if add_generation_prompt %}<|im_end|>\n<|im_start|>assistant\n{% endif %}")


@pytest.fixture(scope="module")
def make(tmp_path_factory: pytest.TempPathFactory):
    """``make(family, **changes)``: (tokenizer, stop ids) of a family's fixture with ``changes`` to its facts."""
    def build(name: str, **changes):
        folder = templates.build({**templates.family(name), **changes}, tmp_path_factory.mktemp(name))
        return load_tokenizer(str(folder)), generation_stop_ids(folder)
    return build


def verdicts(make, name: str, conversations=(), **changes) -> dict:
    tokenizer, stops = make(name, **changes)
    return {v.check: v for v in diagnose(tokenizer, stops, conversations)}


def chat(*turns: tuple[str, str]) -> list[dict[str, str]]:
    return [{"role": role, "content": content} for role, content in turns]


@pytest.mark.parametrize("name", templates.FAMILIES)
def test_every_verdict_on_a_real_family_names_its_end_of_turn_token(make, name: str) -> None:
    found = verdicts(make, name)
    assert list(found) == CHECKS
    assert found["end_of_turn"].severity == "ok" and found["end_of_turn"].token == END_OF_TURN[name]
    assert END_OF_TURN[name] in found["end_of_turn"].line()
    assert not [v.line() for v in found.values() if v.is_error]


def test_an_end_of_turn_token_written_at_the_next_turn_is_not_trained_and_is_an_error(make) -> None:
    found = verdicts(make, "qwen2_5", chat_template=CHATML_EOT_NEXT_TURN)
    eot = found["end_of_turn"]
    assert eot.severity == "error" and eot.token == "<|im_end|>"
    assert "not trained (0 of 2 answers)" in eot.message
    assert "'<|im_end|>'#256-" in eot.evidence  # the evidence shows the token and that it is masked


def test_a_template_that_writes_no_end_of_turn_token_is_an_error(make) -> None:
    plain = ("{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"
             "{% if add_generation_prompt %}assistant: {% endif %}")
    eot = verdicts(make, "qwen2_5", chat_template=plain)["end_of_turn"]
    assert eot.severity == "error" and "writes no end-of-turn token after an answer" in eot.message
    assert "'ProbeAnswerOneZq'" not in eot.evidence and "#" in eot.evidence  # tokens around the answer's end


def test_a_generation_config_that_does_not_stop_on_the_end_of_turn_token_is_a_warning(make) -> None:
    gemma = verdicts(make, "gemma")["stop"]  # gemma-7b-it's generation_config stops on <eos> only
    assert gemma.severity == "warning" and gemma.token == "<end_of_turn>" and "add 261" in gemma.fix
    fixed = verdicts(make, "gemma", generation_eos=["<eos>", "<end_of_turn>"])["stop"]
    assert fixed.severity == "ok" and "<end_of_turn>" in fixed.message


def test_a_template_that_writes_bos_twice_is_an_error(make) -> None:
    good = verdicts(make, "llama3")["bos"]
    assert good.severity == "ok" and good.token == "<|begin_of_text|>" and "adds another" in good.message
    doubled = verdicts(make, "llama3", chat_template="{{ bos_token }}" + templates.family("llama3")["chat_template"])
    assert doubled["bos"].severity == "error" and "comes twice" in doubled["bos"].message
    assert doubled["bos"].evidence.startswith("'<|begin_of_text|>'#256- '<|begin_of_text|>'#256-")


def test_data_starting_with_the_bos_text_doubles_it(make) -> None:
    record = chat(("user", "<s>Hi"), ("assistant", "Hello"))
    found = verdicts(make, "qwen2_5", [record], chat_template="{{ '<s>' }}" + templates.family("qwen2_5")
                     ["chat_template"], bos_token="<s>")["bos"]
    assert found.severity == "ok"  # the template's <s> then '<|im_start|>system': no record starts with two
    found = verdicts(make, "mistral", [chat(("user", "<s>Hi"), ("assistant", "Hello"))],
                     chat_template="{{ bos_token }}{% for m in messages %}{{ m['content'] }}{% endfor %}")["bos"]
    assert found.severity == "error" and "sampled record 0" in found.message


def test_a_system_prompt_dropped_or_refused_is_an_error_when_the_data_has_one(make) -> None:
    record = chat(("system", "Answer in French."), ("user", "Hi"), ("assistant", "Bonjour"))
    phi3 = verdicts(make, "phi3", [record])["system"]  # Phi-3-mini's template skips system turns silently
    assert phi3.severity == "error" and "silently drops" in phi3.message and "1 of 1 sampled" in phi3.message
    assert verdicts(make, "phi3")["system"].severity == "warning"  # no system prompt in the data: a warning
    gemma = verdicts(make, "gemma", [record])["system"]
    assert gemma.severity == "error" and "refuses a system turn (System role not supported)" in gemma.message
    assert verdicts(make, "qwen2_5", [record])["system"].severity == "ok"


def test_roles_the_template_rejects_in_the_data_are_an_error(make) -> None:
    record = chat(("user", "One"), ("user", "Two"), ("assistant", "Both"))
    found = verdicts(make, "mistral", [record])["roles"]
    assert found.severity == "error" and "(user, user, assistant)" in found.message and "alternate" in found.message
    assert verdicts(make, "qwen2_5", [record])["roles"].severity == "ok"


def test_a_template_that_renders_only_the_last_answer_trains_too_little(make) -> None:
    last_only = ("{% for m in messages %}{% if m['role'] != 'assistant' or loop.last %}<|im_start|>{{ m['role'] }}\n"
                 "{{ m['content'] }}<|im_end|>\n{% endif %}{% endfor %}"
                 "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
    found = verdicts(make, "qwen2_5", chat_template=last_only)
    assert found["multi_turn"].severity == "error" and found["roles"].severity == "error"
    assert verdicts(make, "qwen2_5")["multi_turn"].message.startswith("every assistant turn is trained (2 of 2")


def test_a_chat_prompt_unlike_the_training_prompt_is_an_error(make) -> None:
    chatml = templates.family("qwen2_5")["chat_template"]
    other = verdicts(make, "qwen2_5", chat_template=chatml.replace("'<|im_start|>assistant\\n' }}\n{%- endif %}",
                                                                   "'<|im_start|>model\\n' }}\n{%- endif %}"))
    assert other["generation_prompt"].severity == "error" and "differs" in other["generation_prompt"].message
    assert "model" in other["generation_prompt"].evidence
    none = verdicts(make, "qwen2_5", chat_template=chatml.split("{%- if add_generation_prompt %}")[0])
    assert none["generation_prompt"].severity == "error"
    assert "no generation prompt" in none["generation_prompt"].message


def test_reasoning_kept_in_training_or_stripped_from_the_data(make) -> None:
    thought = chat(("user", "2+2?"), ("assistant", "<think>\nTwo and two.\n</think>\n\n4"))
    kept = verdicts(make, "qwen3", [thought])["reasoning"]
    assert kept.severity == "ok" and kept.token == "<think>"
    assert "keeps the reasoning of the last answer" in kept.message
    plain = verdicts(make, "qwen3")["reasoning"]
    assert plain.severity == "warning" and "empty <think></think>" in plain.message
    qwen3 = templates.family("qwen3")["chat_template"]
    stripping = verdicts(make, "qwen3", [thought], chat_template=qwen3.replace(
        "{%- if loop.index0 > ns.last_query_index %}", "{%- if false %}"))["reasoning"]
    assert stripping.severity == "error" and "strips the reasoning" in stripping.message
    assert verdicts(make, "qwen2_5")["reasoning"].severity == "ok"


def test_a_base_model_without_a_template_is_told_which_template_training_uses(make) -> None:
    found = verdicts(make, "mistral", chat_template=None)
    assert found["template"].severity == "warning" and "fallback" in found["template"].message
    assert "'user: ProbeUserOneZq" in found["template"].evidence
    assert found["end_of_turn"].severity == "ok" and found["end_of_turn"].token == "</s>"
