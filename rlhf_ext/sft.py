"""Supervised fine-tuning with rlhf_ext's model card: ``trl.SFTTrainer`` plus :class:`~rlhf_ext.base_trainer.TrainerMixin`.

The first stage of the papers' pipelines (Stiennon et al. 2020, Ouyang et al. 2022, Huang et al. 2024): the policy
that the reward model, PPO and DPO start from. Everything is TRL's; the trainer adds the card (learning curves, data
provenance, evaluation table), token-free ``training_args.bin`` and retried Hub pushes.
"""

from __future__ import annotations

import trl

from .base_trainer import TrainerMixin

__all__ = ["SFTTrainer"]


class SFTTrainer(TrainerMixin, trl.SFTTrainer):
    """``trl.SFTTrainer`` with rlhf_ext's model card; same arguments."""

    _card_method = "supervised fine-tuning (SFT)"
    _card_citations = ("trl",)
    _card_curves = ("loss", "mean_token_accuracy")
