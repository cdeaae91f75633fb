"""Evaluation helpers shared by the recipes: head-to-head win rates with confidence intervals.

A labeler (or a human) compares the trained policy's sample with the initial policy's sample on the same
prompt; Ziegler et al. 2019 report such "vs zero-shot" preferences (86-88% with humans, sentiment task).
Ties count as half a win, so a policy that changes nothing scores 0.5.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class WinRate:
    rate: float
    low: float
    high: float
    wins: int
    ties: int
    losses: int
    confidence: float

    @property
    def n(self) -> int:
        return self.wins + self.ties + self.losses

    def __str__(self) -> str:
        pct = round(self.confidence * 100)
        return (
            f"{self.rate:.3f} ({pct}% CI {self.low:.3f}-{self.high:.3f}; "
            f"{self.wins} wins, {self.ties} ties, {self.losses} losses of {self.n})"
        )


def win_rate(
    scores_a: Sequence[float],
    scores_b: Sequence[float],
    confidence: float = 0.9,
    tie_tolerance: float = 0.0,
    n_bootstrap: int = 10_000,
    seed: int = 0,
) -> WinRate:
    """Share of prompts where A's score beats B's (ties count half), with a percentile-bootstrap interval.

    ``scores_a[i]`` and ``scores_b[i]`` must score the two policies' samples for the same prompt ``i``.
    The bootstrap resamples prompts, which is what varies between evaluations.
    """
    if len(scores_a) != len(scores_b):
        raise ValueError(f"scores_a has {len(scores_a)} entries but scores_b has {len(scores_b)}: pair them by prompt")
    if not scores_a:
        raise ValueError("win_rate needs at least one pair of scores")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    outcomes = []
    for a, b in zip(scores_a, scores_b):
        if abs(a - b) <= tie_tolerance:
            outcomes.append(0.5)
        else:
            outcomes.append(1.0 if a > b else 0.0)
    n = len(outcomes)
    rate = sum(outcomes) / n
    rng = random.Random(seed)
    means = sorted(sum(rng.choice(outcomes) for _ in range(n)) / n for _ in range(n_bootstrap))
    alpha = (1 - confidence) / 2
    low = means[max(0, math.floor(alpha * n_bootstrap))]
    high = means[min(n_bootstrap - 1, math.ceil((1 - alpha) * n_bootstrap) - 1)]
    return WinRate(
        rate=rate,
        low=low,
        high=high,
        wins=outcomes.count(1.0),
        ties=outcomes.count(0.5),
        losses=outcomes.count(0.0),
        confidence=confidence,
    )
