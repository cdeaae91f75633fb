"""DPO (Rafailov et al. 2023) with rlhf_ext's model card: ``trl.DPOTrainer`` plus :class:`~rlhf_ext.base_trainer.TrainerMixin`.

DPO optimises the policy directly on comparisons against a frozen reference policy, with no reward model and no
sampling. Everything is TRL's; the trainer adds the card, token-free ``training_args.bin`` and retried Hub pushes.
Ranked rows become DPO's pairs with ``rlhf_ext.data.ranking.ranked_to_pairs``.
"""

from __future__ import annotations

import trl

from .base_trainer import TrainerMixin

__all__ = ["DPOTrainer"]


class DPOTrainer(TrainerMixin, trl.DPOTrainer):
    """``trl.DPOTrainer`` with rlhf_ext's model card; same arguments."""

    _card_method = "DPO (direct preference optimisation against a frozen reference policy)"
    _card_citations = ("dpo", "trl")
    _card_curves = ("loss", "rewards/accuracies", "rewards/margins")
    _card_hyperparameters = TrainerMixin._card_hyperparameters + ("beta", "max_length")
