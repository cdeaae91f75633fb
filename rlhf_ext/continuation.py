"""Inputs of the stylistic-continuation experiments (Ziegler et al. 2019): the policy and its prompts.

Recipes name a policy as ``"offline"`` (SmolLM2-135M-Instruct from the offline default) or as a Hub id or
folder (``openai-community/gpt2`` in the ``paper`` configs), and prompts as ``"offline"`` (Rotten Tomatoes
openings) or a Hub dataset with a ``prompt`` column, or with a ``text`` column cut to its opening words.
"""

from __future__ import annotations


def load_policy(name: str, dtype=None):
    """(model, tokenizer) for generation: left padding, and a pad token (EOS when the tokenizer has none)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from rlhf_ext.offline import load_policy as load_offline_policy

    if name == "offline":
        return load_offline_policy(dtype)
    tok = AutoTokenizer.from_pretrained(name)
    tok.padding_side = "left"
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return AutoModelForCausalLM.from_pretrained(name, dtype=dtype or torch.float32), tok


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
