"""Converters from public preference datasets to ranked rows (``prompt``, ``completions``, ``ranks``).

- :func:`from_lm_human_preferences`: Ziegler et al. 2019's best-of-4 labels (``openai/lm-human-preferences``);
- :func:`from_ultrafeedback` (``openbmb/UltraFeedback``, 4 rated completions) and
  :func:`from_ultrafeedback_binarized` (``HuggingFaceH4/ultrafeedback_binarized``, pairs);
- :func:`from_nectar`: ``berkeley-nest/Nectar``, 7 answers ranked by GPT-4;
- :func:`from_oasst`: ``OpenAssistant/oasst1``/``oasst2`` ranked sibling replies.

Each returns a ``datasets.Dataset`` that the trainers accept: a converted row the trainers would reject (e.g. two
identical completions with different ranks, or an empty completion) is skipped, and a warning says how many were
skipped and why the first one was; source data in the wrong schema raises ``ValueError`` naming the row.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from .formats import RANKED_COLUMNS, pairwise_row_to_ranked, to_dataset
from .ranking import ranks_from_scores
from .validation import is_integer, validate_ranked_row

logger = logging.getLogger(__name__)

__all__ = [
    "from_lm_human_preferences",
    "from_nectar",
    "from_oasst",
    "from_ultrafeedback",
    "from_ultrafeedback_binarized",
]


def _accepted(converted: list[tuple[int, dict]], source: str):
    """The converted rows (with their source row index) that pass the trainers' checks, as a ``datasets.Dataset``."""
    kept, skipped, first = [], 0, None
    for index, row in converted:
        try:
            validate_ranked_row(row, index, f"{source} source")
        except ValueError as err:
            skipped += 1
            first = first or str(err)
            continue
        kept.append(row)
    if skipped:
        logger.warning("%s: skipped %d row(s) the trainers would reject; the first: %s", source, skipped, first)
    return to_dataset(kept)


def _decoder(tokenizer) -> Callable[[Any], str]:
    def decode(value):
        if isinstance(value, str):
            return value
        if tokenizer is None:
            raise ValueError(
                "lm-human-preferences rows hold GPT-2 token ids; pass `tokenizer=` (e.g. a GPT-2 tokenizer) to decode."
            )
        return tokenizer.decode(list(value))

    return decode


def from_lm_human_preferences(rows: Iterable[Mapping[str, Any]], tokenizer=None, num_samples: int = 4):
    """Best-of-4 labels of ``openai/lm-human-preferences`` -> ranked rows (best is rank 0, the other three tie at 1).

    The label files (``https://openaipublic.blob.core.windows.net/lm-human-preferences/labels/<task>/offline_5k.json``
    for ``sentiment``/``descriptiveness``, ``online_45k.json`` for ``tldr``/``cnndm``; mirrored on the Hub as
    e.g. ``vwxyzjn/lm-human-preferences``) hold rows ``{"query", "sample0", ..., "sample3", "best"}`` where
    ``query``/``sampleN`` are GPT-2 token ids and ``best`` is the labeler's pick in 0..3. Token ids are decoded with
    ``tokenizer``; text fields pass through. Each row gives 3 comparisons (best over each other sample).
    """
    decode = _decoder(tokenizer)
    out = []
    for index, row in enumerate(rows):
        best = row["best"]
        if not is_integer(best) or not 0 <= int(best) < num_samples:
            raise ValueError(f"lm-human-preferences row {index}: 'best' must be an integer in [0, {num_samples}).")
        converted = {
            "prompt": decode(row["query"]),
            "completions": [decode(row[f"sample{i}"]) for i in range(num_samples)],
            "ranks": [0 if i == int(best) else 1 for i in range(num_samples)],
        }
        out.append((index, converted))
    return _accepted(out, "from_lm_human_preferences")


def _ultrafeedback_score(completion: Mapping[str, Any], score: str) -> float | None:
    if score in ("overall_score", "fine-grained_score"):
        value = completion.get(score)
        return None if value is None else float(value)
    # An aspect of the `annotations` dict, e.g. "helpfulness": {"Rating": "4", "Rationale": ...}.
    rating = (completion.get("annotations") or {}).get(score, {})
    rating = rating.get("Rating") if isinstance(rating, Mapping) else None
    try:
        return float(rating)
    except (TypeError, ValueError):  # "N/A"
        return None


def from_ultrafeedback(rows: Iterable[Mapping[str, Any]], score: str = "overall_score", conversational: bool = False):
    """``openbmb/UltraFeedback`` -> ranked rows; completions ranked by ``score`` (higher is better, equal ties).

    UltraFeedback rows are ``{"source", "instruction", "models", "completions": [{"model", "response",
    "overall_score", "fine-grained_score", "annotations": {"helpfulness": {"Rating", "Rationale"}, ...}, ...}]}``
    with 4 completions each. ``score`` is ``"overall_score"``, ``"fine-grained_score"`` or an annotation aspect
    (``"helpfulness"``, ``"honesty"``, ``"instruction_following"``, ``"truthfulness"``). Completions without a score
    or with an empty response are dropped; rows left with fewer than 2 completions, or all tied, are skipped (the
    number skipped is logged). ``conversational=True`` wraps the texts as user/assistant messages.
    """
    out, skipped = [], 0
    for index, row in enumerate(rows):
        kept = []
        for completion in row["completions"]:
            value = _ultrafeedback_score(completion, score)
            response = completion.get("response") or ""
            if value is not None and response.strip():
                kept.append((response, value))
        if len(kept) < 2 or len({v for _, v in kept}) < 2:
            skipped += 1
            continue
        prompt = row["instruction"]
        completions = [r for r, _ in kept]
        if conversational:
            prompt = [{"role": "user", "content": prompt}]
            completions = [[{"role": "assistant", "content": r}] for r in completions]
        ranks = ranks_from_scores([v for _, v in kept])
        out.append((index, {"prompt": prompt, "completions": completions, "ranks": ranks}))
    if skipped:
        logger.warning(
            "from_ultrafeedback: skipped %d row(s) with fewer than 2 scored completions or all tied.", skipped
        )
    return _accepted(out, "from_ultrafeedback")


def from_ultrafeedback_binarized(rows: Iterable[Mapping[str, Any]]):
    """``HuggingFaceH4/ultrafeedback_binarized`` (splits ``train_prefs``/``test_prefs``) -> ranked rows with K = 2.

    Its rows are ``{"prompt", "prompt_id", "chosen": [messages], "rejected": [messages], "messages",
    "score_chosen", "score_rejected"}``, where ``chosen``/``rejected`` repeat the user turn. The user turn becomes
    the prompt; pairs whose scores are equal are skipped (they would be a tie, not a comparison), and so are pairs the
    trainers would reject, e.g. an identical chosen and rejected answer or an empty one (a warning counts both).
    """
    out, skipped = [], 0
    for index, row in enumerate(rows):
        if row.get("score_chosen") is not None and row.get("score_chosen") == row.get("score_rejected"):
            skipped += 1
            continue
        ranked = pairwise_row_to_ranked({"chosen": row["chosen"], "rejected": row["rejected"]})
        out.append((index, {k: ranked[k] for k in RANKED_COLUMNS}))
    if skipped:
        logger.warning("from_ultrafeedback_binarized: skipped %d tied row(s).", skipped)
    return _accepted(out, "from_ultrafeedback_binarized")


def from_nectar(rows: Iterable[Mapping[str, Any]]):
    """``berkeley-nest/Nectar`` -> ranked rows (7 answers per prompt, ranked 1..7 by GPT-4; 1 is best).

    Nectar rows are ``{"prompt", "answers": [{"answer", "model", "rank"}], "turns", "num_responses", "source",
    "good_natured"}``; ``prompt`` is an Anthropic-style transcript ending in ``"\\n\\nAssistant:"`` and ``rank``
    is stored as a float (``1.0``). Ranks are converted to integers (a fractional rank raises); equal ranks tie.
    Empty answers are dropped.
    """
    out = []
    for index, row in enumerate(rows):
        answers = [a for a in row["answers"] if (a.get("answer") or "").strip()]
        ranks = []
        for a in answers:
            rank = a["rank"]
            if isinstance(rank, float) and rank.is_integer():
                rank = int(rank)
            if not is_integer(rank):
                raise ValueError(f"Nectar row {index}: answer rank {rank!r} is not an integer.")
            ranks.append(int(rank))
        completions = [a["answer"] for a in answers]
        out.append((index, {"prompt": row["prompt"], "completions": completions, "ranks": ranks}))
    return _accepted(out, "from_nectar")


def from_oasst(
    messages: Iterable[Mapping[str, Any]],
    conversational: bool = True,
    lang: str | Sequence[str] | None = None,
    include_deleted: bool = False,
):
    """``OpenAssistant/oasst1`` (or ``oasst2``) flat messages -> one ranked row per prompter message.

    Each message is ``{"message_id", "parent_id", "message_tree_id", "role": "prompter"|"assistant", "text",
    "rank", "lang", "deleted", "review_result", ...}``. Sibling assistant replies that share a parent prompter message
    and carry a ``rank`` (0 = best, ``None`` for unranked) become the completions of one row. With
    ``conversational=True`` the prompt is the whole thread from the root to that parent as messages (prompter ->
    ``user``) and completions are ``[{"role": "assistant", ...}]``; otherwise the prompt is the parent's text.
    Groups with fewer than 2 ranked replies or all tied are skipped.
    """
    messages = list(messages)
    by_id = {m["message_id"]: m for m in messages}
    langs = {lang} if isinstance(lang, str) else (set(lang) if lang is not None else None)
    children = defaultdict(list)
    for m in messages:
        if m.get("role") != "assistant" or m.get("parent_id") is None or m.get("rank") is None:
            continue
        if not include_deleted and m.get("deleted"):
            continue
        if langs is not None and m.get("lang") not in langs:
            continue
        if not (m.get("text") or "").strip():
            continue
        children[m["parent_id"]].append(m)

    def thread(message_id):
        path = []
        while message_id is not None and message_id in by_id:
            m = by_id[message_id]
            role = "user" if m["role"] == "prompter" else "assistant"
            path.append({"role": role, "content": m["text"]})
            message_id = m.get("parent_id")
        return path[::-1]

    out = []
    position = {m["message_id"]: i for i, m in enumerate(messages)}
    for parent_id, replies in children.items():
        parent = by_id.get(parent_id)
        if parent is None or parent.get("role") != "prompter":
            continue
        ranks = [int(r["rank"]) for r in replies]
        if len(replies) < 2 or len(set(ranks)) < 2:
            continue
        if conversational:
            prompt = thread(parent_id)
            completions = [[{"role": "assistant", "content": r["text"]}] for r in replies]
        else:
            prompt, completions = parent["text"], [r["text"] for r in replies]
        out.append((position[parent_id], {"prompt": prompt, "completions": completions, "ranks": ranks}))
    return _accepted(out, "from_oasst")
