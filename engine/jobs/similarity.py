"""BLEU-4 and ROUGE of a prediction against its reference, computed as LLaMA-Factory reports them.

LLaMA-Factory's ``ComputeSimilarity`` (``src/llamafactory/train/sft/metric.py``) is what users
compare against, so the same recipe is followed step by step:

* ROUGE-1/2/L: both texts are cut into words by jieba (Chinese word segmentation; English and
  other text splits at spaces and punctuation), joined with spaces and scored by rouge-chinese's
  ``Rouge`` (the F score). When either side has no word left, every ROUGE score is 0.
* BLEU-4: NLTK's ``sentence_bleu`` over **characters** (``list(text)``, not words), with
  ``SmoothingFunction().method3`` so a short answer without 4-gram matches is not 0.
* Each score is scaled to 0–100 and rounded to 4 decimals per record; the summary is the plain
  mean over records.

The libraries are imported on first use: jieba builds its dictionary once (about 0.6 s, cached
in the temporary folder).
"""

from __future__ import annotations

import logging
from typing import Any

KEYS = ("bleu_4", "rouge_1", "rouge_2", "rouge_l")
"""The scores of one prediction, in the order they are shown."""

_tools: dict[str, Any] = {}


def _load() -> dict[str, Any]:
    """jieba, rouge-chinese and NLTK's BLEU, imported once."""
    if not _tools:
        import jieba
        from nltk.translate.bleu_score import SmoothingFunction, sentence_bleu
        from rouge_chinese import Rouge

        jieba.setLogLevel(logging.WARNING)  # its dictionary banner would fill engine.log
        _tools.update(cut=jieba.cut, rouge=Rouge(), bleu=sentence_bleu, smooth=SmoothingFunction().method3)
    return _tools


def scores(prediction: str, reference: str) -> dict[str, float]:
    """BLEU-4 and ROUGE-1/2/L of ``prediction`` against ``reference``, each 0–100."""
    tools = _load()
    hypothesis = " ".join(tools["cut"](prediction))
    truth = " ".join(tools["cut"](reference))
    if not hypothesis.split() or not truth.split():
        rouge = {"rouge-1": 0.0, "rouge-2": 0.0, "rouge-l": 0.0}
    else:
        found = tools["rouge"].get_scores(hypothesis, truth)[0]
        rouge = {key: value["f"] for key, value in found.items()}
    bleu = tools["bleu"]([list(reference)], list(prediction), smoothing_function=tools["smooth"])
    return {"bleu_4": round(bleu * 100, 4), "rouge_1": round(rouge["rouge-1"] * 100, 4),
            "rouge_2": round(rouge["rouge-2"] * 100, 4), "rouge_l": round(rouge["rouge-l"] * 100, 4)}


def mean_scores(per_record: list[dict[str, float]]) -> dict[str, float | None]:
    """The mean of each score over records (None for each when there is no record)."""
    if not per_record:
        return {key: None for key in KEYS}
    return {key: round(sum(s[key] for s in per_record) / len(per_record), 4) for key in KEYS}
