"""DPO (Rafailov et al. 2023) with rlhf_ext's model card: ``trl.DPOTrainer`` plus :class:`~rlhf_ext.base_trainer.TrainerMixin`.

DPO optimises the policy directly on comparisons against a frozen reference policy, with no reward model and no
sampling. The loss and everything else are TRL's; the trainer adds the card, token-free ``training_args.bin``, retried
Hub pushes, and on CPU :func:`rlhf_ext.lm_head.add_compact_lm_head` under TRL's fused LM head: the policy and
reference passes project only the completion positions through the LM head, where TRL's CPU path projects every
position (prompt and padding included). Same log-probabilities, loss and metrics up to float32 rounding; a
TL;DR-shaped step (8 pairs of ~130 prompt + ~13 summary tokens) ran 1.5-2.9x faster on a shared 2-core machine
(``benchmarks/bench_dpo.py``).
Ranked rows become DPO's pairs with ``rlhf_ext.data.ranking.ranked_to_pairs``.
"""

from __future__ import annotations

import trl
from accelerate.utils import is_peft_model

from .base_trainer import TrainerMixin
from .lm_head import add_compact_lm_head

__all__ = ["DPOTrainer"]

# The per-token fields trl.DPOTrainer asks of its fused LM head for the policy (loss and metrics); with
# `use_weighting` it also asks for `log_sum_sq_probs`, which the compact head does not compute: TRL's head stays then.
_POLICY_OUTPUTS = ("log_probs", "entropy", "mean_logits", "is_top1")


class DPOTrainer(TrainerMixin, trl.DPOTrainer):
    """``trl.DPOTrainer`` with rlhf_ext's model card and the compact LM head on CPU; same arguments."""

    _card_method = "DPO (direct preference optimisation against a frozen reference policy)"
    _card_citations = ("dpo", "trl")
    _card_curves = ("loss", "rewards/accuracies", "rewards/margins")
    _card_hyperparameters = TrainerMixin._card_hyperparameters + ("beta", "max_length")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # The models TRL gave its fused head (the policy under its adapter; a separate reference, if any), on top of it
        policy = self.model.get_base_model() if is_peft_model(self.model) else self.model
        outputs = _POLICY_OUTPUTS + (("log_sum_sq_probs",) if self.use_weighting else ())
        add_compact_lm_head(policy, 1.0, outputs)
        if self.ref_model is not None:
            add_compact_lm_head(self.accelerator.unwrap_model(self.ref_model), 1.0)
