"""Inputs of the summarization experiments (Ziegler et al. 2019, Stiennon et al. 2020, Huang et al. 2024).

Every summarization recipe reads its data through these two functions, so one config value switches a
recipe between the papers' Hub datasets and the offline stand-ins:

- :func:`summarization_dataset` gives ``prompt`` / ``completion`` rows (TRL's prompt-completion format):
  ``trl-lib/tldr`` as it is on the Hub; ``abisee/cnn_dailymail`` (``article``, ``highlights``) turned into
  the same format with :data:`PROMPT_TEMPLATE`; ``offline-tldr`` and ``offline-cnndm``, the news stand-ins of
  :mod:`rlhf_ext.offline.corpora` (TL;DR-sized and CNN/DM-sized articles, the headline as reference).
- :func:`preference_dataset` gives preference rows: ranked (``prompt``, ``completions``, ``ranks``) from a
  folder written by ``recipes/sample_and_label.py``, or pairwise (``prompt``, ``chosen``, ``rejected``)
  from the Hub (``trl-lib/tldr-preference``).
"""

from __future__ import annotations

import os

# TL;DR-style prompt for article datasets, as the news stand-ins write it (the completion starts with a space).
PROMPT_TEMPLATE = "ARTICLE: {article}\n\nTL;DR:"


def _as_prompt_completion(dataset, source: str):
    columns = dataset.column_names
    if {"prompt", "completion"} <= set(columns):
        return dataset.select_columns(["prompt", "completion"])
    if {"article", "highlights"} <= set(columns):
        return dataset.map(
            lambda row: {
                "prompt": PROMPT_TEMPLATE.format(article=" ".join(row["article"].split())),
                "completion": " " + " ".join(row["highlights"].split()),
            },
            remove_columns=columns,
        )
    raise ValueError(
        f"the summarization dataset {source!r} needs 'prompt'/'completion' (TL;DR) or 'article'/'highlights' "
        f"(CNN/DailyMail) columns, it has {columns}"
    )


def summarization_dataset(
    source: str = "offline-tldr", split: str = "train", config: str | None = None, max_article_words: int | None = None
):
    """A ``datasets.Dataset`` of ``prompt`` / ``completion`` rows (the completion is the reference summary).

    ``source``: ``"offline-tldr"`` or ``"offline-cnndm"`` (stand-ins; splits ``train``/``test``), a Hub
    dataset id (``trl-lib/tldr``; ``abisee/cnn_dailymail`` with ``config="3.0.0"``) or a local folder saved
    with ``save_to_disk``. ``max_article_words`` shortens the stand-ins' articles (default: 120 words for
    ``offline-tldr``, 300 for ``offline-cnndm``); Hub data is never cut here (the trainers truncate tokens).
    """
    cut = {} if max_article_words is None else {"max_article_words": max_article_words}
    if source == "offline-tldr":
        from .offline.corpora import news_tldr_standin

        return news_tldr_standin(split, **cut)
    if source == "offline-cnndm":
        from .offline.corpora import news_cnndm_standin

        return _as_prompt_completion(news_cnndm_standin(split, **cut), source)
    if os.path.isdir(source):
        from datasets import load_from_disk

        data = load_from_disk(source)
        return _as_prompt_completion(data[split] if hasattr(data, "keys") else data, source)
    from datasets import load_dataset

    return _as_prompt_completion(load_dataset(source, config, split=split), source)


def preference_dataset(source: str, split: str = "train"):
    """Preference rows, ranked or pairwise, from a ``save_to_disk`` folder or a Hub dataset id.

    Only the columns the trainers read are kept: ``prompt`` plus ``completions``/``ranks`` (ranked) or
    ``chosen``/``rejected`` (pairwise).
    """
    if os.path.isdir(source):
        from datasets import load_from_disk

        data = load_from_disk(source)
        if hasattr(data, "keys"):
            if split not in data:
                raise ValueError(f"the preference folder {source!r} has splits {sorted(data)}, not {split!r}")
            data = data[split]
    else:
        from datasets import load_dataset

        data = load_dataset(source, split=split)
    columns = set(data.column_names)
    for wanted in (("prompt", "completions", "ranks"), ("prompt", "chosen", "rejected")):
        if set(wanted) <= columns:
            return data.select_columns(list(wanted))
    raise ValueError(
        f"the preference dataset {source!r} ({split}) needs ranked columns prompt/completions/ranks or pairwise "
        f"columns prompt/chosen/rejected, it has {sorted(columns)}"
    )
