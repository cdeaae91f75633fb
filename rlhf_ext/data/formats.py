"""The two row formats of preference data, and how a pairwise row reads as a ranked one.

A *ranked row* is ``{"prompt": ..., "completions": [...], "ranks": [...]}``: K >= 2 completions of one prompt, each
with a rank (lower is better, equal ranks tie). A *pairwise row* is TRL's preference row, ``{"prompt": ...,
"chosen": ..., "rejected": ...}``, with an explicit prompt or one implicit in the shared beginning of ``chosen`` and
``rejected``; it reads as a ranked row with K = 2 (:func:`pairwise_row_to_ranked`). Prompts and completions are
strings, or lists of chat messages.

This module is the bottom of ``rlhf_ext.data``: :mod:`~rlhf_ext.data.validation`, :mod:`~rlhf_ext.data.ranking` and
:mod:`~rlhf_ext.data.sources` build on it. It imports neither torch nor TRL.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

__all__ = [
    "PAIRWISE_COLUMNS",
    "RANKED_COLUMNS",
    "describe",
    "is_pairwise_row",
    "is_ranked_row",
    "pairwise_row_to_ranked",
    "row_key",
    "split_common_prefix",
    "to_dataset",
]

RANKED_COLUMNS = ("prompt", "completions", "ranks")
PAIRWISE_COLUMNS = ("chosen", "rejected")


def is_ranked_row(row: Mapping[str, Any]) -> bool:
    """Whether ``row`` has ranked columns (``completions`` or ``ranks``); it need not be valid."""
    return "completions" in row or "ranks" in row


def is_pairwise_row(row: Mapping[str, Any]) -> bool:
    """Whether ``row`` is a TRL preference row (``chosen`` or ``rejected``, no ranked columns); it need not be valid."""
    return not is_ranked_row(row) and ("chosen" in row or "rejected" in row)


def describe(value: Any) -> str:
    """``repr(value)`` cut to 60 characters, for error messages that name a bad value."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def row_key(value: Any) -> str:
    """A hashable identity of a prompt or completion: the string itself, or its messages as sorted JSON."""
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=repr)


def split_common_prefix(chosen: Any, rejected: Any) -> tuple[Any, Any, Any]:
    """Split an implicit prompt off two completions so that ``prompt + completion`` is the original text.

    Messages split at the last message they share; text splits at the longest common prefix, moved back to the
    preceding space so the completions start with it (the same convention as ``trl.extract_prompt``).
    """
    if isinstance(chosen, list) and isinstance(rejected, list):
        n = 0
        while n < min(len(chosen), len(rejected)) - 1 and chosen[n] == rejected[n]:
            n += 1
        return chosen[:n], chosen[n:], rejected[n:]
    if isinstance(chosen, str) and isinstance(rejected, str):
        n = 0
        limit = min(len(chosen), len(rejected))
        while n < limit and chosen[n] == rejected[n]:
            n += 1
        if n == limit:  # one is a prefix of the other: keep a non-empty completion on both sides
            n = max(0, chosen.rfind(" ", 0, n))
        elif n > 0 and chosen[n - 1] == " ":
            n -= 1
        return chosen[:n], chosen[n:], rejected[n:]
    return ("" if isinstance(chosen, str) else []), chosen, rejected


def pairwise_row_to_ranked(row: Mapping[str, Any]) -> dict[str, Any]:
    """One TRL preference row -> one ranked row with ``completions=[chosen, rejected]`` and ``ranks=[0, 1]``.

    Other columns (e.g. ``margin``) are kept. A row without ``prompt`` gets the implicit prompt split off.
    """
    out = {k: v for k, v in row.items() if k not in ("prompt", "chosen", "rejected")}
    chosen, rejected = row.get("chosen"), row.get("rejected")
    if "prompt" in row:
        prompt = row["prompt"]
    else:
        prompt, chosen, rejected = split_common_prefix(chosen, rejected)
    out.update(prompt=prompt, completions=[chosen, rejected], ranks=[0, 1])
    return out


def to_dataset(rows: list[dict]):
    """``datasets.Dataset.from_list(rows)``, importing ``datasets`` only when a dataset is built."""
    from datasets import Dataset

    return Dataset.from_list(rows)
