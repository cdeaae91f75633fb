"""Ranked preference data: K >= 2 completions of one prompt with a rank each (lower is better).

A *ranked row* is ``{"prompt": ..., "completions": [...], "ranks": [...]}``:

- ``prompt``: a string, or a list of chat messages (``{"role": ..., "content": ...}``);
- ``completions``: K >= 2 non-empty strings, or K non-empty lists of messages when the prompt is a message list;
- ``ranks``: K integers, lower is better; equal ranks are a tie and form no comparison pair.

Every ordered pair (winner, loser) with ``ranks[winner] < ranks[loser]`` is one comparison, so a fully ranked
row of K completions carries C(K, 2) comparisons (InstructGPT, Ouyang et al. 2022).

This module is import-light (no torch, no TRL): the reward trainer and the ORPO trainer both use it. It holds

- :func:`ranked_pairs`, the comparison pairs of one row;
- :func:`validate_ranked_row` / :func:`validate_ranked_dataset`, which raise ``ValueError`` naming the row;
- :func:`validate_prompt_dataset`, the same for the prompt rows of ``PPOTrainer`` and ``RLOOTrainer``;
- :func:`to_ranked`, which turns TRL preference rows (``chosen``/``rejected``) into ranked rows with K = 2;
- converters from public data sets: :func:`from_lm_human_preferences`, :func:`from_ultrafeedback`,
  :func:`from_nectar`, :func:`from_oasst`, and :func:`pairs_to_ranked` (pairwise rows grouped by prompt).
"""

from __future__ import annotations

import json
import logging
import math
import numbers
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

logger = logging.getLogger(__name__)

RANKED_COLUMNS = ("prompt", "completions", "ranks")
PAIRWISE_COLUMNS = ("chosen", "rejected")

__all__ = [
    "RANKED_COLUMNS",
    "PAIRWISE_COLUMNS",
    "ranked_pairs",
    "is_ranked_row",
    "is_pairwise_row",
    "validate_ranked_row",
    "validate_ranked_dataset",
    "validate_prompt_dataset",
    "validate_trainer_prompts",
    "to_ranked",
    "pairwise_row_to_ranked",
    "from_lm_human_preferences",
    "from_ultrafeedback",
    "from_ultrafeedback_binarized",
    "from_nectar",
    "from_oasst",
    "pairs_to_ranked",
    "ranked_to_pairs",
    "ranks_from_scores",
]


# ---------------------------------------------------------------------------------------------------------------
# Pairs and validation
# ---------------------------------------------------------------------------------------------------------------


def ranked_pairs(ranks: Sequence[int]) -> list[tuple[int, int]]:
    """All comparison pairs ``(winner_index, loser_index)`` of one row; ties form no pair.

    >>> ranked_pairs([1, 0, 1])
    [(1, 0), (1, 2)]
    """
    ranks = list(ranks)
    return [
        (i, j) if ranks[i] < ranks[j] else (j, i)
        for i in range(len(ranks))
        for j in range(i + 1, len(ranks))
        if ranks[i] != ranks[j]
    ]


def is_ranked_row(row: Mapping[str, Any]) -> bool:
    return "completions" in row or "ranks" in row


def is_pairwise_row(row: Mapping[str, Any]) -> bool:
    return not is_ranked_row(row) and ("chosen" in row or "rejected" in row)


def _is_integer(value: Any) -> bool:
    # bool is an int subclass in Python (and numpy.bool_ is not Integral), so exclude it explicitly.
    return isinstance(value, numbers.Integral) and not isinstance(value, bool) and type(value).__name__ != "bool_"


def _is_bool(value: Any) -> bool:
    return isinstance(value, bool) or type(value).__name__ == "bool_"


def _message_problem(value: Any, offset: int = 0) -> str | None:
    """Why ``value`` is not a list of chat messages (``{"role": str, "content": str}``), or None if it is one.

    ``content`` may also be a list of content parts, or None in an assistant turn that carries ``tool_calls``.
    Messages are numbered from ``offset`` (their place in the conversation a split-off prompt was taken from).
    """
    if not isinstance(value, list):
        return f"must be a list of messages, got {type(value).__name__}: {_describe(value)}"
    for m, message in enumerate(value, start=offset):
        if not isinstance(message, Mapping):
            return f"message {m} must be a dict with 'role' and 'content', got {type(message).__name__}"
        for key in ("role", "content"):
            if key not in message:
                return f"message {m} has no '{key}'"
        if not isinstance(message["role"], str) or not message["role"]:
            return f"message {m} has role {_describe(message['role'])}; a role must be a non-empty string"
        content = message["content"]
        if not isinstance(content, (str, list)) and not (content is None and message.get("tool_calls")):
            return f"message {m} has content {_describe(content)}; content must be a string"
    return None


def _has_text(messages: list) -> bool:
    """Whether valid ``messages`` say anything: some non-blank content, content parts or a tool call."""
    return any(
        (m["content"].strip() if isinstance(m["content"], str) else m["content"]) or m.get("tool_calls")
        for m in messages
    )


def _describe(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _identity(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=repr)


def validate_ranked_row(
    row: Mapping[str, Any], index: int | None = None, name: str = "dataset", generation_prompt: bool = False
) -> None:
    """Raise ``ValueError`` naming ``name`` row ``index`` and the problem if ``row`` is not a valid ranked row.

    TRL preference rows (``chosen``/``rejected``, with or without ``prompt``) are checked after conversion by
    :func:`pairwise_row_to_ranked`. Besides types and shapes, a row may not rank a completion against an identical
    copy of itself (``chosen == rejected``, or equal completions with different ranks): such a "comparison" carries
    no preference (its gradient is zero) and usually means a data bug. Equal completions with equal ranks are a tie.

    ``generation_prompt=True`` (ORPO, which renders prompts with TRL's ``apply_chat_template``) also requires a
    conversational prompt to end with a ``user``, ``tool`` or ``assistant`` message, as that function does.
    """
    where = f"{name} row {index}" if index is not None else f"{name} row"
    if not isinstance(row, Mapping):
        raise ValueError(f"{where}: expected a dict with columns {list(RANKED_COLUMNS)}, got {type(row).__name__}.")
    labels = None
    implicit = ""
    offset = 0  # where the completions' messages start in the original 'chosen'/'rejected' conversations
    if is_pairwise_row(row):
        missing = [c for c in PAIRWISE_COLUMNS if c not in row]
        if missing:
            raise ValueError(
                f"{where}: missing column(s) {missing}; a preference row needs both 'chosen' and 'rejected' "
                f"(or use ranked columns {list(RANKED_COLUMNS)})."
            )
        for column in PAIRWISE_COLUMNS:
            if not isinstance(row[column], (str, list)):
                raise ValueError(
                    f"{where}: '{column}' must be a string or a list of messages, got {type(row[column]).__name__}."
                )
        if row["chosen"] == row["rejected"]:
            raise ValueError(
                f"{where}: 'chosen' and 'rejected' are identical; a pair needs two different completions."
            )
        if "prompt" not in row:
            if type(row["chosen"]) is not type(row["rejected"]):
                raise ValueError(f"{where}: 'chosen' and 'rejected' must both be strings or both lists of messages.")
            implicit = " once the prompt it shares with the other completion is split off"
        labels = ["'chosen'", "'rejected'"]
        row = pairwise_row_to_ranked(row)
        offset = len(row["prompt"]) if implicit and isinstance(row["prompt"], list) else 0
    missing = [c for c in RANKED_COLUMNS if c not in row]
    if missing:
        raise ValueError(
            f"{where}: missing column(s) {missing}; a ranked row needs {list(RANKED_COLUMNS)} "
            "(or 'chosen'/'rejected' for a pairwise row)."
        )
    prompt, completions, ranks = row["prompt"], row["completions"], row["ranks"]
    conversational = isinstance(prompt, list)
    if conversational:
        problem = _message_problem(prompt)
        if problem:
            raise ValueError(f"{where}: 'prompt' {problem}.")
    elif not isinstance(prompt, str):
        raise ValueError(f"{where}: 'prompt' must be a string or a list of messages, got {type(prompt).__name__}.")
    if not isinstance(completions, (list, tuple)):
        raise ValueError(f"{where}: 'completions' must be a list, got {type(completions).__name__}.")
    if len(completions) < 2:
        raise ValueError(
            f"{where}: 'completions' has {len(completions)} entry(ies); a ranked row needs at least 2 completions."
        )
    for k, completion in enumerate(completions):
        label = labels[k] if labels else f"completion {k}"
        if conversational:
            if not isinstance(completion, list):
                raise ValueError(
                    f"{where}: {label} must be a list of messages (the prompt is conversational), got "
                    f"{type(completion).__name__}: {_describe(completion)}."
                )
            problem = _message_problem(completion, offset)
            if problem:
                raise ValueError(f"{where}: {label} {problem}.")
            if not _has_text(completion):
                raise ValueError(f"{where}: {label} is empty{implicit}.")
        else:
            if not isinstance(completion, str):
                raise ValueError(
                    f"{where}: {label} must be a string (the prompt is a string), got {type(completion).__name__}."
                )
            if not completion.strip():
                raise ValueError(f"{where}: {label} is empty{implicit}.")
    if conversational and not prompt:  # the trainers read a conversation's first message to tell it from text
        shared = " ('chosen' and 'rejected' share no leading message)" if implicit else ""
        raise ValueError(f"{where}: 'prompt' is an empty list of messages{shared}.")
    if generation_prompt and conversational and prompt[-1]["role"] not in ("user", "tool", "assistant"):
        raise ValueError(
            f"{where}: 'prompt' ends with a {prompt[-1]['role']!r} message; a prompt to answer must end with a "
            "'user', 'tool' or 'assistant' message (TRL's apply_chat_template rule)."
        )
    if not isinstance(ranks, (list, tuple)):
        raise ValueError(f"{where}: 'ranks' must be a list of integers, got {type(ranks).__name__}.")
    if len(ranks) != len(completions):
        raise ValueError(
            f"{where}: 'ranks' has {len(ranks)} entries but 'completions' has {len(completions)}; "
            "they must have the same length."
        )
    for k, rank in enumerate(ranks):
        if not _is_integer(rank):
            raise ValueError(
                f"{where}: rank {k} is {_describe(rank)} ({type(rank).__name__}); ranks must be integers "
                "(not bool or float), lower is better."
            )
    if len(set(ranks)) < 2:
        raise ValueError(f"{where}: all {len(ranks)} completions are tied (ranks {list(ranks)}); no pair to compare.")
    first: dict[str, int] = {}
    for k, completion in enumerate(completions):
        j = first.setdefault(_identity(completion), k)
        if ranks[j] != ranks[k]:
            raise ValueError(
                f"{where}: completions {j} and {k} are identical but ranked {ranks[j]} and {ranks[k]}; "
                "a completion cannot be compared with itself (give copies equal ranks, or drop one)."
            )
    margin = row.get("margin")
    if margin is not None and (
        not isinstance(margin, numbers.Real) or _is_bool(margin) or not math.isfinite(float(margin))
    ):
        raise ValueError(
            f"{where}: 'margin' must be a finite number, got {_describe(margin)} ({type(margin).__name__})."
        )


def _iter_rows(dataset, columns: Sequence[str] | None = None):
    """Rows of ``dataset`` as dicts; a map-style ``datasets.Dataset`` is read a batch of columns at a time.

    Decoding a ``Dataset`` row by row costs about 10 us per row; column batches make 100k rows cheap. The dataset's
    format (e.g. ``"torch"``) is ignored: the checks look at the Python values the trainers' ``map`` calls see.
    """
    if hasattr(dataset, "iter") and hasattr(dataset, "with_format") and hasattr(dataset, "__len__"):
        if columns is not None:
            dataset = dataset.select_columns(list(columns))
        for batch in dataset.with_format(None).iter(batch_size=1000):
            keys = list(batch)
            yield from (dict(zip(keys, values)) for values in zip(*batch.values()))
    else:
        yield from dataset


def validate_ranked_dataset(
    dataset: Iterable[Mapping[str, Any]],
    name: str = "train_dataset",
    limit: int | None = None,
    generation_prompt: bool = False,
):
    """Validate every row (or the first ``limit`` rows) of ``dataset``; raise ``ValueError`` naming the row.

    ``dataset`` may be a ``datasets.Dataset``, an ``IterableDataset`` (pass ``limit`` to bound the scan) or any
    iterable of dicts. ``generation_prompt``: see :func:`validate_ranked_row`. Returns the number of rows checked.
    """
    columns = getattr(dataset, "column_names", None)
    if columns is not None:
        columns = list(columns)
        if not any(c in columns for c in ("completions", "ranks", "chosen", "rejected")):
            raise ValueError(
                f"{name}: missing columns; expected ranked columns {list(RANKED_COLUMNS)} or preference columns "
                f"{list(PAIRWISE_COLUMNS)}, got {columns}."
            )
    count = 0
    for index, row in enumerate(_iter_rows(dataset)):
        if limit is not None and index >= limit:
            break
        validate_ranked_row(row, index, name, generation_prompt)
        count += 1
    if count == 0:
        raise ValueError(f"{name} is empty.")
    return count


# ---------------------------------------------------------------------------------------------------------------
# Prompt rows (PPOTrainer, RLOOTrainer)
# ---------------------------------------------------------------------------------------------------------------


def _prompt_problem(prompt: Any) -> str | None:
    if isinstance(prompt, str):
        return None if prompt.strip() else f"is empty ({_describe(prompt)})"
    if isinstance(prompt, list):
        problem = _message_problem(prompt)
        if problem is None and not _has_text(prompt):
            problem = "is empty (no message has any content)"
        return problem
    return f"must be a string or a list of messages, got {type(prompt).__name__}: {_describe(prompt)}"


def validate_prompt_dataset(
    dataset: Iterable[Mapping[str, Any]], name: str = "train_dataset", limit: int | None = None
) -> int:
    """Check the ``prompt`` of every row (or the first ``limit`` rows); raise ``ValueError`` naming the row.

    A prompt is a non-blank string or a non-empty list of chat messages (``{"role": str, "content": str}``) with
    some content. A ``datasets.Dataset`` is read one column batch at a time (100k text prompts: about 0.1 s).
    Returns the number of rows checked.
    """
    columns = getattr(dataset, "column_names", None)
    if columns is not None and "prompt" not in columns:
        raise ValueError(f"{name} must have a 'prompt' column; it has {list(columns)}.")
    count = 0
    for index, row in enumerate(_iter_rows(dataset, ["prompt"] if columns is not None else None)):
        if limit is not None and index >= limit:
            break
        if not isinstance(row, Mapping) or "prompt" not in row:
            raise ValueError(f"{name} row {index}: missing column 'prompt'.")
        problem = _prompt_problem(row["prompt"])
        if problem:
            raise ValueError(f"{name} row {index}: 'prompt' {problem}.")
        count += 1
    if count == 0:
        raise ValueError(f"{name} is empty.")
    return count


def validate_trainer_prompts(train_dataset, eval_dataset=None, stream_rows: int = 100) -> None:
    """:func:`validate_prompt_dataset` on a trainer's ``train_dataset`` and ``eval_dataset`` (one or a dict).

    Errors name ``train_dataset``, ``eval_dataset`` or ``eval_dataset['key']``. Datasets without a length
    (``IterableDataset``) are checked on their first ``stream_rows`` rows.
    """
    evals = eval_dataset if isinstance(eval_dataset, Mapping) else {None: eval_dataset}
    named = [("train_dataset", train_dataset)]
    named += [("eval_dataset" if key is None else f"eval_dataset[{key!r}]", ds) for key, ds in evals.items()]
    for name, dataset in named:
        if dataset is not None:
            validate_prompt_dataset(dataset, name, limit=None if hasattr(dataset, "__len__") else stream_rows)


# ---------------------------------------------------------------------------------------------------------------
# Pairwise (TRL preference) rows -> ranked rows
# ---------------------------------------------------------------------------------------------------------------


def _split_common_prefix(chosen: Any, rejected: Any) -> tuple[Any, Any, Any]:
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
        prompt, chosen, rejected = _split_common_prefix(chosen, rejected)
    out.update(prompt=prompt, completions=[chosen, rejected], ranks=[0, 1])
    return out


def to_ranked(dataset):
    """Turn ``chosen``/``rejected`` rows into ranked rows (``ranks=[0, 1]``); ranked rows are returned unchanged.

    Works on ``datasets.Dataset``/``IterableDataset`` (lazily, through ``map``) and on a list of dicts.
    """
    if isinstance(dataset, list):
        return [pairwise_row_to_ranked(r) if is_pairwise_row(r) else dict(r) for r in dataset]
    columns = list(getattr(dataset, "column_names", None) or next(iter(dataset)).keys())
    if "completions" in columns or "ranks" in columns or "chosen" not in columns:
        return dataset
    drop = [c for c in ("prompt", "chosen", "rejected") if c in columns]
    return dataset.map(pairwise_row_to_ranked, remove_columns=drop)


# ---------------------------------------------------------------------------------------------------------------
# Converters for public data sets
# ---------------------------------------------------------------------------------------------------------------


def ranks_from_scores(scores: Sequence[float], higher_is_better: bool = True, tie_tolerance: float = 0.0) -> list[int]:
    """Dense ranks (0 = best) from scores; equal scores tie. ``[7, 9, 7] -> [1, 0, 1]``.

    Scores within ``tie_tolerance`` of a better distinct score share its rank (labelers with continuous
    scores use it to call near-equal completions a tie).
    """
    if tie_tolerance < 0:
        raise ValueError(f"tie_tolerance must be >= 0, got {tie_tolerance}")
    keyed = [s if higher_is_better else -s for s in scores]
    distinct: list[float] = []
    for s in sorted(keyed, reverse=True):
        if not distinct or distinct[-1] - s > tie_tolerance:
            distinct.append(s)
    return [next(i for i, d in enumerate(distinct) if d - s <= tie_tolerance) for s in keyed]


def _from_list(rows: list[dict]):
    from datasets import Dataset

    return Dataset.from_list(rows)


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
        if not _is_integer(best) or not 0 <= int(best) < num_samples:
            raise ValueError(f"lm-human-preferences row {index}: 'best' must be an integer in [0, {num_samples}).")
        out.append(
            {
                "prompt": decode(row["query"]),
                "completions": [decode(row[f"sample{i}"]) for i in range(num_samples)],
                "ranks": [0 if i == int(best) else 1 for i in range(num_samples)],
            }
        )
    return _from_list(out)


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
    for row in rows:
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
        out.append({"prompt": prompt, "completions": completions, "ranks": ranks_from_scores([v for _, v in kept])})
    if skipped:
        logger.warning(
            "from_ultrafeedback: skipped %d row(s) with fewer than 2 scored completions or all tied.", skipped
        )
    return _from_list(out)


def from_ultrafeedback_binarized(rows: Iterable[Mapping[str, Any]]):
    """``HuggingFaceH4/ultrafeedback_binarized`` (splits ``train_prefs``/``test_prefs``) -> ranked rows with K = 2.

    Its rows are ``{"prompt", "prompt_id", "chosen": [messages], "rejected": [messages], "messages",
    "score_chosen", "score_rejected"}``, where ``chosen``/``rejected`` repeat the user turn. The user turn becomes
    the prompt; pairs whose scores are equal are skipped (they would be a tie, not a comparison).
    """
    out, skipped = [], 0
    for row in rows:
        if row.get("score_chosen") is not None and row.get("score_chosen") == row.get("score_rejected"):
            skipped += 1
            continue
        ranked = pairwise_row_to_ranked({"chosen": row["chosen"], "rejected": row["rejected"]})
        out.append({k: ranked[k] for k in RANKED_COLUMNS})
    if skipped:
        logger.warning("from_ultrafeedback_binarized: skipped %d tied row(s).", skipped)
    return _from_list(out)


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
            if not _is_integer(rank):
                raise ValueError(f"Nectar row {index}: answer rank {rank!r} is not an integer.")
            ranks.append(int(rank))
        completions = [a["answer"] for a in answers]
        out.append({"prompt": row["prompt"], "completions": completions, "ranks": ranks})
    return _from_list(out)


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
        out.append({"prompt": prompt, "completions": completions, "ranks": ranks})
    return _from_list(out)


def _key(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True)


def pairs_to_ranked(rows: Iterable[Mapping[str, Any]], on_cycle: str = "raise"):
    """Group pairwise rows (``prompt``, ``chosen``, ``rejected``) by prompt into ranked rows.

    For each prompt the comparisons form a directed graph chosen -> rejected. When it is acyclic, each completion's
    rank is the length of the longest chain of wins above it (rank 0 = never beaten), so every labeled pair keeps its
    order. Completions that were never compared may end up with different ranks and so form *implied* pairs; ties
    arise only between completions at the same depth. A cycle (including a contradictory A > B and B > A) has no
    consistent ranking: ``on_cycle="raise"`` (default) raises ``ValueError`` naming the prompt, ``on_cycle="drop"``
    drops that prompt's rows and logs a warning with the count. Rows without ``prompt`` have their implicit prompt
    split off first. Other columns are not carried over.
    """
    if on_cycle not in ("raise", "drop"):
        raise ValueError("on_cycle must be 'raise' or 'drop'.")
    groups: dict[str, dict[str, Any]] = {}
    for index, row in enumerate(rows):
        ranked = pairwise_row_to_ranked(row) if is_pairwise_row(row) else None
        if ranked is None:
            raise ValueError(f"pairs_to_ranked row {index}: expected 'chosen'/'rejected' columns.")
        prompt, (chosen, rejected) = ranked["prompt"], ranked["completions"]
        group = groups.setdefault(_key(prompt), {"prompt": prompt, "nodes": {}, "edges": set()})
        for c in (chosen, rejected):
            group["nodes"].setdefault(_key(c), c)
        group["edges"].add((_key(chosen), _key(rejected)))

    out, dropped = [], 0
    for group in groups.values():
        nodes = list(group["nodes"])
        beats = defaultdict(set)
        indegree = dict.fromkeys(nodes, 0)
        for w, loser in group["edges"]:
            if loser not in beats[w]:
                beats[w].add(loser)
                indegree[loser] += 1
        # Kahn's algorithm with longest-path depth.
        depth = dict.fromkeys(nodes, 0)
        ready = [n for n in nodes if indegree[n] == 0]
        seen = 0
        while ready:
            n = ready.pop()
            seen += 1
            for m in beats[n]:
                depth[m] = max(depth[m], depth[n] + 1)
                indegree[m] -= 1
                if indegree[m] == 0:
                    ready.append(m)
        if seen < len(nodes):
            if on_cycle == "raise":
                raise ValueError(
                    f"pairs_to_ranked: the comparisons of prompt {_describe(group['prompt'])} contain a cycle "
                    "(e.g. A > B > A); no consistent ranking exists. Fix the data or pass on_cycle='drop'."
                )
            dropped += 1
            continue
        out.append(
            {
                "prompt": group["prompt"],
                "completions": [group["nodes"][n] for n in nodes],
                "ranks": [depth[n] for n in nodes],
            }
        )
    if dropped:
        logger.warning("pairs_to_ranked: dropped %d prompt(s) whose comparisons contain a cycle.", dropped)
    return _from_list(out)


PAIRINGS = ("all", "best_vs_worst")


def ranked_to_pairs(dataset, pairing: str = "all"):
    """Ranked rows to TRL pairwise rows (``prompt``, ``chosen``, ``rejected``), e.g. for ``trl.DPOTrainer``.

    ``pairing="all"``: every ranked pair of a prompt (C(K,2) rows when there are no ties), the comparisons
    ``RankedRewardTrainer`` and ``ORPOTrainer`` learn from; ``"best_vs_worst"``: one row per prompt, a
    best-ranked against a worst-ranked completion (the first of each in list order). Rows are validated as
    the trainers validate them (an all-tied row is an error naming it). Pairwise rows pass through unchanged.
    """
    if pairing not in PAIRINGS:
        raise ValueError(f"pairing must be one of {PAIRINGS}, got {pairing!r}")
    rows = list(dataset)
    out = []
    for index, row in enumerate(rows):
        if not is_ranked_row(row):
            out.append(dict(row))
            continue
        validate_ranked_row(row, index)
        completions, ranks = row["completions"], list(row["ranks"])
        if pairing == "all":
            pairs = ranked_pairs(ranks)
        else:
            pairs = [(ranks.index(min(ranks)), ranks.index(max(ranks)))]
        out.extend({"prompt": row["prompt"], "chosen": completions[w], "rejected": completions[lo]} for w, lo in pairs)
    return _from_list(out)
