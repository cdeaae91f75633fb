"""Agreement between labelers who ranked the same prompts, as InstructGPT reports it (72.6 +- 1.5% between its
training labelers, 77.3 +- 1.3% for held-out labelers; Ouyang et al. 2022, on their human data collection).

For two labelers who both ranked a prompt with K completions, each of its C(K, 2) pairs of completions is one
comparison; they *agree* on it when both put the same one first, or both tie them. The agreement of that (prompt,
labeler pair) is the fraction of its comparisons they agree on. The reported agreement is the mean over all (prompt,
labeler pair) units, +- the standard error of that mean (sample standard deviation / sqrt(units)); a labeler's
agreement with the others is the same mean over the units that involve them. Skipped prompts do not count.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from itertools import combinations
from typing import Any

INSTRUCTGPT_AGREEMENT = "72.6 +- 1.5% (InstructGPT's training labelers; 77.3 +- 1.3% for held-out labelers)"


def _relation(ranks: Sequence[int], i: int, j: int) -> int:
    return (ranks[i] > ranks[j]) - (ranks[i] < ranks[j])


def pair_agreement(ranks_a: Sequence[int], ranks_b: Sequence[int]) -> tuple[int, int]:
    """(comparisons agreed on, comparisons) between two rankings of the same K completions."""
    if len(ranks_a) != len(ranks_b):
        raise ValueError(f"two rankings of one prompt differ in length: {len(ranks_a)} and {len(ranks_b)}")
    pairs = list(combinations(range(len(ranks_a)), 2))
    agreed = sum(_relation(ranks_a, i, j) == _relation(ranks_b, i, j) for i, j in pairs)
    return agreed, len(pairs)


def _summary(values: list[float]) -> dict[str, Any]:
    n = len(values)
    if n == 0:
        return {"agreement": None, "stderr": None, "units": 0}
    mean = sum(values) / n
    stderr = None
    if n > 1:
        stderr = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1) / n)
    return {"agreement": mean, "stderr": stderr, "units": n}


def agreement(rankings: Iterable[tuple[Any, str, Sequence[int]]]) -> dict[str, Any]:
    """Agreement statistics from ``(prompt_key, labeler, ranks)`` triples (one ranking per labeler and prompt).

    Returns ``{"overall": {...}, "per_labeler": {name: {...}}, "per_pair": {"a & b": {...}}, "shared_prompts": n,
    "comparisons": n}``; each ``{...}`` holds ``agreement`` (a fraction), ``stderr`` and ``units``.
    """
    by_prompt: dict[Any, dict[str, Sequence[int]]] = defaultdict(dict)
    for key, labeler, ranks in rankings:
        if labeler in by_prompt[key]:
            raise ValueError(f"labeler {labeler!r} ranked prompt {key!r} twice")
        by_prompt[key][labeler] = ranks
    overall: list[float] = []
    per_labeler: dict[str, list[float]] = defaultdict(list)
    per_pair: dict[str, list[float]] = defaultdict(list)
    shared = comparisons = 0
    for by_labeler in by_prompt.values():
        if len(by_labeler) < 2:
            continue
        shared += 1
        for a, b in combinations(sorted(by_labeler), 2):
            agreed, total = pair_agreement(by_labeler[a], by_labeler[b])
            if total == 0:
                continue
            comparisons += total
            value = agreed / total
            overall.append(value)
            per_labeler[a].append(value)
            per_labeler[b].append(value)
            per_pair[f"{a} & {b}"].append(value)
    labelers = sorted({labeler for by_labeler in by_prompt.values() for labeler in by_labeler})
    return {
        "overall": _summary(overall),
        "per_labeler": {name: _summary(per_labeler[name]) for name in labelers},
        "per_pair": {pair: _summary(values) for pair, values in sorted(per_pair.items())},
        "shared_prompts": shared,
        "comparisons": comparisons,
    }


def _percent(summary: dict[str, Any]) -> str:
    if summary["agreement"] is None:
        return "n/a (no prompt ranked by two labelers)"
    text = f"{100 * summary['agreement']:.1f}"
    if summary["stderr"] is not None:
        text += f" +- {100 * summary['stderr']:.1f}"
    return text + f"% ({summary['units']} prompt x labeler-pair units)"


def format_agreement(stats: dict[str, Any]) -> str:
    """A Markdown section: overall agreement next to InstructGPT's, then each labeler's agreement with the others."""
    lines = [
        f"Pairwise agreement between labelers on shared prompts: **{_percent(stats['overall'])}**, over "
        f"{stats['shared_prompts']} prompts ranked by two or more labelers and {stats['comparisons']} comparisons. "
        f"For reference: {INSTRUCTGPT_AGREEMENT}.",
        "",
        "| labeler | agreement with the others |",
        "|---|---|",
    ]
    lines += [f"| {name} | {_percent(summary)} |" for name, summary in stats["per_labeler"].items()]
    if stats["per_pair"]:
        lines += ["", "| labeler pair | agreement |", "|---|---|"]
        lines += [f"| {pair} | {_percent(summary)} |" for pair, summary in stats["per_pair"].items()]
    return "\n".join(lines)
