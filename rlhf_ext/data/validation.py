"""Checks of preference rows and prompt rows: every problem is a ``ValueError`` naming the dataset, the row and the field.

- :func:`validate_ranked_row` / :func:`validate_ranked_dataset`: ranked rows and TRL pairwise rows (the formats of
  :mod:`rlhf_ext.data.formats`), as ``RankedRewardTrainer`` and ``ORPOTrainer`` read them;
- :func:`validate_prompt_dataset` / :func:`validate_trainer_prompts`: the ``prompt`` rows of ``PPOTrainer`` and
  ``RLOOTrainer``;
- :func:`is_integer`: an integer that is not a bool (numpy integers included), the type a rank must have.

The trainers run these checks in ``__init__``, before anything is loaded or written. A ``datasets.Dataset`` is read
a batch of columns at a time, so 100k rows take about a second.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from .formats import PAIRWISE_COLUMNS, RANKED_COLUMNS, describe, is_pairwise_row, pairwise_row_to_ranked, row_key

__all__ = [
    "is_integer",
    "named_datasets",
    "validate_prompt_dataset",
    "validate_ranked_dataset",
    "validate_ranked_row",
    "validate_trainer_prompts",
]


def is_integer(value: Any) -> bool:
    """True for an int or numpy integer, False for bool (an int subclass) and numpy.bool_."""
    # bool is an int subclass in Python (and numpy.bool_ is not Integral), so exclude it explicitly.
    return isinstance(value, numbers.Integral) and not isinstance(value, bool) and type(value).__name__ != "bool_"


def _is_bool(value: Any) -> bool:
    return isinstance(value, bool) or type(value).__name__ == "bool_"


def _message_problem(value: Any, offset: int = 0) -> str | None:
    """Why ``value`` is not a list of chat messages (``{"role": str, "content": str}``), or None if it is one.

    ``content`` may also be a list of content parts; a turn that carries ``tool_calls`` may have no ``content``
    (missing or None), as in TRL's tool-calling data. Messages are numbered from ``offset`` (their place in the
    conversation a split-off prompt was taken from).
    """
    if not isinstance(value, list):
        return f"must be a list of messages, got {type(value).__name__}: {describe(value)}"
    for m, message in enumerate(value, start=offset):
        if not isinstance(message, Mapping):
            return f"message {m} must be a dict with 'role' and 'content', got {type(message).__name__}"
        calls_tools = bool(message.get("tool_calls"))
        for key in ("role",) if calls_tools else ("role", "content"):
            if key not in message:
                return f"message {m} has no '{key}'"
        if not isinstance(message["role"], str) or not message["role"]:
            return f"message {m} has role {describe(message['role'])}; a role must be a non-empty string"
        content = message.get("content")
        if not isinstance(content, (str, list)) and not (content is None and calls_tools):
            return f"message {m} has content {describe(content)}; content must be a string"
    return None


def _has_text(messages: list) -> bool:
    """Whether valid ``messages`` say anything: some non-blank content, content parts or a tool call."""
    return any(
        (m["content"].strip() if isinstance(m.get("content"), str) else m.get("content")) or m.get("tool_calls")
        for m in messages
    )


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
                    f"{type(completion).__name__}: {describe(completion)}."
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
        if not is_integer(rank):
            raise ValueError(
                f"{where}: rank {k} is {describe(rank)} ({type(rank).__name__}); ranks must be integers "
                "(not bool or float), lower is better."
            )
    if len(set(ranks)) < 2:
        raise ValueError(f"{where}: all {len(ranks)} completions are tied (ranks {list(ranks)}); no pair to compare.")
    first: dict[str, int] = {}
    for k, completion in enumerate(completions):
        j = first.setdefault(row_key(completion), k)
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
            f"{where}: 'margin' must be a finite number, got {describe(margin)} ({type(margin).__name__})."
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


def _prompt_problem(prompt: Any) -> str | None:
    if isinstance(prompt, str):
        return None if prompt.strip() else f"is empty ({describe(prompt)})"
    if isinstance(prompt, list):
        problem = _message_problem(prompt)
        if problem is None and not _has_text(prompt):
            problem = "is empty (no message has any content)"
        return problem
    return f"must be a string or a list of messages, got {type(prompt).__name__}: {describe(prompt)}"


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


def named_datasets(train_dataset=None, eval_dataset=None) -> list[tuple[str, Any]]:
    """``(name, dataset)`` for a trainer's datasets as errors name them: ``train_dataset``, and ``eval_dataset`` or,
    for a dict of eval datasets, ``eval_dataset['key']`` each. None is left out."""
    evals = eval_dataset if isinstance(eval_dataset, Mapping) else {None: eval_dataset}
    named = [("train_dataset", train_dataset)]
    named += [("eval_dataset" if key is None else f"eval_dataset[{key!r}]", ds) for key, ds in evals.items()]
    return [(name, dataset) for name, dataset in named if dataset is not None]


def validate_trainer_prompts(train_dataset, eval_dataset=None, stream_rows: int = 100) -> None:
    """:func:`validate_prompt_dataset` on a trainer's ``train_dataset`` and ``eval_dataset`` (one or a dict).

    Errors name ``train_dataset``, ``eval_dataset`` or ``eval_dataset['key']``. Datasets without a length
    (``IterableDataset``) are checked on their first ``stream_rows`` rows.
    """
    for name, dataset in named_datasets(train_dataset, eval_dataset):
        validate_prompt_dataset(dataset, name, limit=None if hasattr(dataset, "__len__") else stream_rows)
