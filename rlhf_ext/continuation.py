"""Prompts of the stylistic-continuation experiments (Ziegler et al. 2019).

Recipes name prompts as ``"offline"`` (Rotten Tomatoes openings) or a Hub dataset with a ``prompt`` column, or with a
``text`` column cut to its opening words. Policies are loaded by ``rlhf_ext.models.load_policy`` (also importable
from here, its place in earlier releases).
"""

from __future__ import annotations

from .models import load_policy  # the import path of earlier releases

__all__ = ["load_policy", "prompt_dataset"]


def prompt_dataset(source: str = "offline", split: str = "train", min_words: int = 3, max_words: int = 8):
    """A ``datasets.Dataset`` with a ``prompt`` column (and ``text`` when prompts were cut from texts)."""
    from datasets import Dataset

    from rlhf_ext.offline.corpora import openings, review_prompts_standin

    if source == "offline":
        return review_prompts_standin(split, min_words=min_words, max_words=max_words)
    from datasets import load_dataset

    ds = load_dataset(source, split=split)
    if "prompt" in ds.column_names:
        return ds
    if "text" in ds.column_names:
        return Dataset.from_list(openings(ds["text"], min_words, max_words))
    raise ValueError(f"the prompt dataset {source!r} has neither a 'prompt' nor a 'text' column: {ds.column_names}")
