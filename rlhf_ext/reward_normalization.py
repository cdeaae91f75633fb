"""Reward hygiene of the reference PPOs: normalise the score on a reference set, clip it.

Huang et al. 2024 (summarize_from_feedback_details, ``reward.py``) shift their reward model so that the SFT data's
reference summaries score 0 on average, and give a summary without EOS the constant -1 on that scale. A reward
model's raw scores have an arbitrary offset and spread, so a constant such as -1, or a ``missing_eos_penalty``, means
nothing until the scores are put on a known scale. ``PPOConfig(reward_normalization=...)``:

- ``"reference"``: the mean (and standard deviation) of the scores of ``reward_reference_dataset`` (``prompt`` and
  ``completion`` columns, e.g. the SFT data's reference completions), scored once before the first rollout;
- ``"initial_policy"``: those of the first batch of episodes, sampled by the initial policy.

Each score then becomes ``(score - mean) / std`` (``reward_normalization_std=False``: ``score - mean``, Huang et
al.'s shift), so the reference set scores 0 on average; ``reward_clip_range`` then clips it to ``[-c, c]`` (OpenRLHF's
``reward_clip_range``). The statistics are part of the trainer's checkpointed state, so a resumed run keeps them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch
from tqdm.auto import tqdm

SOURCES = ("none", "reference", "initial_policy")


@dataclass
class RewardNormalizationOptions:
    """``PPOConfig`` options for normalising and clipping the sequence score."""

    reward_normalization: str = field(
        default="none",
        metadata={
            "help": "Normalise scores so that a reference set scores 0 on average: 'reference' (the "
            "reward_reference_dataset passed to the trainer, e.g. the SFT data's reference completions; Huang et al.), "
            "'initial_policy' (the first batch of episodes), or 'none'.",
            "choices": list(SOURCES),
        },
    )
    reward_normalization_std: bool = field(
        default=True,
        metadata={
            "help": "Also divide by the reference set's standard deviation, so scores (and missing_eos_score) are in "
            "units of its spread. False: only subtract the mean (Huang et al.)."
        },
    )
    reward_clip_range: float | None = field(
        default=None,
        metadata={"help": "Clip the (normalised) score to [-c, c] (OpenRLHF's reward_clip_range). None: no clipping."},
    )

    def _reward_normalization_post_init(self) -> None:
        if self.reward_normalization not in SOURCES:
            raise ValueError(f"`reward_normalization` must be one of {SOURCES}, got {self.reward_normalization!r}.")
        clip = self.reward_clip_range
        if clip is not None and not (math.isfinite(clip) and clip > 0):
            raise ValueError(f"`reward_clip_range` must be > 0, got {clip!r}.")


class RewardNormalizer:
    """Mean/standard deviation of a reference set's scores, and the map ``score -> (score - mean) / std``."""

    def __init__(self, source: str = "none", use_std: bool = True):
        self.source = source
        self.use_std = use_std
        self.mean = 0.0
        self.std = 1.0
        self.count = 0

    @property
    def enabled(self) -> bool:
        return self.source != "none"

    @property
    def fitted(self) -> bool:
        return self.count > 0

    def fit(self, scores: torch.Tensor) -> None:
        """Take the statistics of ``scores`` (all of the reference set, on every process)."""
        scores = scores.detach().double().flatten()
        scores = scores[torch.isfinite(scores)]
        if scores.numel() == 0:
            raise ValueError("reward normalisation: the reference set has no finite score")
        self.mean = float(scores.mean())
        std = float(scores.std(unbiased=False)) if scores.numel() > 1 else 0.0
        # A reference set whose scores are all equal has no spread to divide by: only shift.
        self.std = std if (self.use_std and std > 1e-8) else 1.0
        self.count = int(scores.numel())

    def __call__(self, scores: torch.Tensor) -> torch.Tensor:
        if not self.enabled:
            return scores
        if not self.fitted:
            raise RuntimeError("RewardNormalizer used before fit()")
        return (scores - self.mean) / self.std

    def state_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "use_std": self.use_std,
            "mean": self.mean,
            "std": self.std,
            "count": self.count,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state["source"] != self.source:
            raise ValueError(
                f"the checkpoint normalised rewards with source {state['source']!r}, this run with {self.source!r}"
            )
        self.use_std, self.mean, self.std, self.count = state["use_std"], state["mean"], state["std"], state["count"]


def validate_reference_dataset(args, dataset) -> None:
    """``reward_normalization="reference"`` needs a dataset of ``prompt`` and ``completion``; others ignore it."""
    import warnings

    if args.reward_normalization == "reference":
        columns = getattr(dataset, "column_names", None)
        if dataset is None or columns is None or not {"prompt", "completion"} <= set(columns):
            raise ValueError(
                "`reward_normalization='reference'` needs `reward_reference_dataset`: a dataset with `prompt` and "
                f"`completion` columns (e.g. the SFT data's reference completions); got {columns}."
            )
        if len(dataset) == 0:
            raise ValueError("`reward_reference_dataset` is empty.")
    elif dataset is not None:
        warnings.warn("reward_reference_dataset is ignored unless reward_normalization='reference'.", stacklevel=3)


def clip_scores(scores: torch.Tensor, clip_range: float | None) -> torch.Tensor:
    return scores if clip_range is None else scores.clamp(-clip_range, clip_range)


def reference_scores(trainer, dataset, batch_size: int) -> torch.Tensor:
    """Weighted scores of every row of ``dataset`` (``prompt``, ``completion``) by ``trainer``'s reward functions.

    Each process scores its share through the trainer's own reward path (reward models see the training format), in
    equal-sized chunks so that every process joins every gather; the result, on every process, has one score per row.
    """
    world, rank = trainer.accelerator.num_processes, trainer.accelerator.process_index
    n = len(dataset)
    per_rank = math.ceil(n / world)
    mine = [min(n - 1, rank * per_rank + i) for i in range(per_rank)]  # padded with the last row, dropped below
    valid = torch.tensor([rank * per_rank + i < n for i in range(per_rank)], device=trainer.accelerator.device)
    tok = trainer.processing_class
    scores, keep = [], []
    weights = trainer.reward_weights.to(trainer.accelerator.device)
    starts = range(0, per_rank, batch_size)
    desc = "Scoring the reward normalisation's reference set"
    for start in tqdm(starts, desc=desc, disable=not trainer.accelerator.is_local_main_process):
        rows = [dataset[i] for i in mine[start : start + batch_size]]
        prompts = [r["prompt"] for r in rows]
        completions = [r["completion"] for r in rows]
        completion_ids = [
            tok(c, add_special_tokens=False)["input_ids"] if isinstance(c, str) else [] for c in completions
        ]
        rewards = trainer._calculate_rewards(rows, prompts, completions, completion_ids)  # gathered over processes
        scores.append((rewards * weights.unsqueeze(0)).nansum(dim=1))
        keep.append(trainer.accelerator.gather(valid[start : start + batch_size]))
    # Gathered chunks hold [rank 0 rows, rank 1 rows, ...]; order does not matter for the statistics.
    return torch.cat(scores)[torch.cat(keep)]
