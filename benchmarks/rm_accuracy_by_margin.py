"""Where a reward model's held-out errors are: its pairwise accuracy by the judge's score margin.

Scores every completion of the labels' held-out split (and, for comparison, of the first ``--train_rows`` training
articles) with the reward model, then reports the accuracy on all ranked pairs and on each quarter of the pairs
sorted by the judge's score gap. A reward model that is right on the pairs the judge separates clearly and at chance
on near-ties is limited by how learnable the labels are; one that is wrong on clear pairs is not.

    python benchmarks/rm_accuracy_by_margin.py --root outputs/tldr          # after make summarize
"""

from __future__ import annotations

import argparse
import itertools

import numpy as np


def pairs_by_margin(rows, scores) -> np.ndarray:
    """(P, 2): the judge's score gap and 1 / 0.5 / 0 for the reward model right / tied / wrong, per ranked pair."""
    out, k = [], 0
    for row in rows:
        n = len(row["completions"])
        own, judge, ranks = scores[k : k + n], row["scores"], row["ranks"]
        k += n
        for a, b in itertools.combinations(range(n), 2):
            if ranks[a] == ranks[b]:
                continue
            win, lose = (a, b) if ranks[a] < ranks[b] else (b, a)
            right = 1.0 if own[win] > own[lose] else 0.5 if own[win] == own[lose] else 0.0
            out.append((abs(judge[a] - judge[b]), right))
    return np.array(out)


def report(name: str, pairs: np.ndarray) -> None:
    print(f"{name}: {len(pairs)} pairs, accuracy {pairs[:, 1].mean():.3f}")
    edges = np.quantile(pairs[:, 0], [0, 0.25, 0.5, 0.75, 1])
    for q, (low, high) in enumerate(itertools.pairwise(edges)):
        inside = (pairs[:, 0] >= low) & ((pairs[:, 0] < high) if q < 3 else (pairs[:, 0] <= high))
        print(f"  quarter {q + 1}: judge gap {low:.3f}-{high:.3f}, {inside.sum()} pairs, accuracy {pairs[inside, 1].mean():.3f}")  # fmt: skip


def main():
    from datasets import load_from_disk

    from rlhf_ext.sampling import reward_model_scores

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--root", default="outputs/tldr", help="A make summarize root (its labels/ and reward/).")
    ap.add_argument("--reward_model", default=None, help="Reward model folder (default: <root>/reward).")
    ap.add_argument("--train_rows", type=int, default=64, help="Training articles scored for comparison (0: none).")
    args = ap.parse_args()

    labels = load_from_disk(f"{args.root}/labels")
    splits = {"held-out": labels["test"]}
    if args.train_rows:
        splits[f"training (first {args.train_rows} articles)"] = labels["train"].select(range(args.train_rows))
    for name, rows in splits.items():
        prompts = [r["prompt"] for r in rows for _ in r["completions"]]
        completions = [c for r in rows for c in r["completions"]]
        scores = reward_model_scores(args.reward_model or f"{args.root}/reward", prompts, completions,
                                     shared_prompt=True, progress=f"scoring {name}")  # fmt: skip
        report(name, pairs_by_margin(rows, scores))


if __name__ == "__main__":
    main()
