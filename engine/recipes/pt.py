"""Continued pre-training (stage ``pt``): the model reads raw text and learns every token.

The loop is supervised fine-tuning's (:mod:`engine.recipes.sft`) unchanged: only the data
differs, and ``build_datasets`` makes it from the stage. Documents (``.txt`` blocks, JSON Lines
``text`` fields, a datasets folder's ``text`` column) are tokenised with an end-of-sequence token
after each, cut into ``cutoff_len`` pieces (no token is dropped) and packed end to end into
``cutoff_len`` sequences whose position ids restart at every piece, so no piece attends to
another — the same packing SFT's ``data.packing`` uses.
"""

from __future__ import annotations

from engine.recipes.sft import train

__all__ = ["train"]
