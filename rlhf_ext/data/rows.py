"""The one rule recipes use to take part of a dataset: the first N rows, all of them, or a clear error.

A config that asks for more rows than a dataset has is a mistake (a wrong split, a smaller stand-in than expected),
not something to shrink silently: the run would train or evaluate on less than its card and results say.
"""

from __future__ import annotations

__all__ = ["take_rows"]


def take_rows(dataset, n: int | None, *, seed: int | None = None, option: str = "num_rows", what: str = "the dataset"):
    """The first ``n`` rows of ``dataset`` (a ``datasets.Dataset``), after a shuffle with ``seed`` when one is given.

    ``n=None`` returns the whole dataset, unshuffled. ``n`` larger than the dataset raises ``ValueError`` naming the
    config ``option`` and ``what`` was asked for (e.g. ``option="num_prompts", what="the held-out split"``).
    """
    if n is None:
        return dataset
    if n < 0:
        raise ValueError(f"{option}={n} must be >= 0 (or None for all rows)")
    if n > len(dataset):
        raise ValueError(f"{option}={n} but {what} has only {len(dataset)} rows")
    if seed is not None:
        dataset = dataset.shuffle(seed=seed)
    return dataset.select(range(n))
