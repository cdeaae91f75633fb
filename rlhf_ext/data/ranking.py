"""Comparisons of ranked rows and conversions between the formats of :mod:`rlhf_ext.data.formats`.

Every ordered pair (winner, loser) with ``ranks[winner] < ranks[loser]`` of a ranked row is one comparison, so a fully
ranked row of K completions carries C(K, 2) comparisons (InstructGPT, Ouyang et al. 2022).

- :func:`ranked_pairs`: the comparison pairs of one row;
- :func:`ranks_from_scores`: dense ranks from a labeler's scores (:func:`scores_shared_by_copies` first);
- :func:`to_ranked` / :func:`pairwise_row_to_ranked`: TRL preference rows (``chosen``/``rejected``) as ranked rows with
  K = 2; :func:`pairs_to_ranked`: pairwise rows grouped by prompt into one ranked row per prompt;
- :func:`ranked_to_pairs`: ranked rows back to TRL pairwise rows (e.g. for ``trl.DPOTrainer``).
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from .formats import describe, is_pairwise_row, is_ranked_row, pairwise_row_to_ranked, row_key, to_dataset
from .validation import validate_ranked_row

logger = logging.getLogger(__name__)

__all__ = [
    "PAIRINGS",
    "pairs_to_ranked",
    "pairwise_row_to_ranked",
    "ranked_pairs",
    "ranked_to_pairs",
    "ranks_from_scores",
    "scores_shared_by_copies",
    "to_ranked",
]


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


def scores_shared_by_copies(completions: Sequence, scores: Sequence[float]) -> list[float]:
    """``scores`` with every copy of a completion given the score of its first occurrence.

    A labeler's scores of one text can differ in the last bits with its place in a batch (padding changes the
    embedding arithmetic), and any difference, however small, ranks two copies apart: a comparison of a completion
    with itself, which ``validate_ranked_row`` rejects. Copies that share a score share a rank.
    """
    if len(completions) != len(scores):
        raise ValueError(f"{len(completions)} completions but {len(scores)} scores")
    first: dict[str, float] = {}
    return [first.setdefault(row_key(c), s) for c, s in zip(completions, scores)]


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


def pairs_to_ranked(rows: Iterable[Mapping[str, Any]], on_cycle: str = "raise"):
    """Group pairwise rows (``prompt``, ``chosen``, ``rejected``) by prompt into ranked rows.

    For each prompt the comparisons form a directed graph chosen -> rejected. When it is acyclic, each completion's
    rank is the length of the longest chain of wins above it (rank 0 = never beaten), so every labeled pair keeps its
    order. Completions that were never compared may end up with different ranks and so form *implied* pairs; ties
    arise only between completions at the same depth. A cycle (including a contradictory A > B and B > A) has no
    consistent ranking: ``on_cycle="raise"`` (default) raises ``ValueError`` naming the prompt, ``on_cycle="drop"``
    drops that prompt's rows and logs a warning with the count. A row whose ``chosen`` and ``rejected`` are the same
    completion is no comparison and no cycle either: it raises ``ValueError`` naming the row, as the trainers' row
    checks do. Rows without ``prompt`` have their implicit prompt split off first. Other columns are not carried over.
    """
    if on_cycle not in ("raise", "drop"):
        raise ValueError("on_cycle must be 'raise' or 'drop'.")
    groups: dict[str, dict[str, Any]] = {}
    for index, row in enumerate(rows):
        ranked = pairwise_row_to_ranked(row) if is_pairwise_row(row) else None
        if ranked is None:
            raise ValueError(f"pairs_to_ranked row {index}: expected 'chosen'/'rejected' columns.")
        prompt, (chosen, rejected) = ranked["prompt"], ranked["completions"]
        if row_key(chosen) == row_key(rejected):
            raise ValueError(
                f"pairs_to_ranked row {index}: 'chosen' and 'rejected' are identical; a pair needs two different "
                "completions (drop the row or fix the data)."
            )
        group = groups.setdefault(row_key(prompt), {"prompt": prompt, "nodes": {}, "edges": set()})
        for c in (chosen, rejected):
            group["nodes"].setdefault(row_key(c), c)
        group["edges"].add((row_key(chosen), row_key(rejected)))

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
                    f"pairs_to_ranked: the comparisons of prompt {describe(group['prompt'])} contain a cycle "
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
    return to_dataset(out)


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
    return to_dataset(out)
