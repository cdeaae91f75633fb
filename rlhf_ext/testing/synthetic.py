"""Synthetic ranked data with a known right answer, for tests and benchmarks of ranked reward training."""

from __future__ import annotations

import random

FILLER_WORDS = ("bad", "sad", "dark", "cruel", "ugly", "awful", "kind", "bright")


def count_ranked(n: int, seed: int, k: int = 4, length: int = 8, noise: float = 0.0) -> list[dict]:
    """``n`` ranked rows of K word sequences, ranked by how often they contain "good" (more is better).

    Each completion has ``length`` words, 0-4 of them "good". ``noise`` adds Gaussian noise of that sd to the
    counts before ranking (a noisy labeler); equal labels tie. Rows where all K completions tie are redrawn.
    """
    if length < 4:
        raise ValueError(f"length must be >= 4 to hold up to 4 'good' words, got {length}")
    rng = random.Random(seed)
    rows = []
    while len(rows) < n:
        counts = [rng.randint(0, 4) for _ in range(k)]
        if len(set(counts)) < 2:
            continue
        completions = []
        for c in counts:
            words = ["good"] * c + [rng.choice(FILLER_WORDS) for _ in range(length - c)]
            rng.shuffle(words)
            completions.append(" " + " ".join(words))
        labeled = [c + rng.gauss(0, noise) for c in counts] if noise else counts
        ranks = [sorted(set(labeled), reverse=True).index(v) for v in labeled]
        rows.append({"prompt": "Review:", "completions": completions, "ranks": ranks})
    return rows
