"""RLOO with Ziegler et al.'s adaptive KL coefficient and InstructGPT's pretraining mixture.

``rlhf_ext.RLOOTrainer`` is ``trl.RLOOTrainer`` plus the two pieces ``rlhf_ext.PPOTrainer`` adds (shared through
``rlhf_ext.kl_and_ptx.KLControlAndPtxMixin``):

- ``kl_target`` / ``kl_horizon``: RLOO's ``beta`` (its sequence-level penalty ``reward - beta * sum_t KL_t``) becomes
  the initial value of an :class:`~rlhf_ext.AdaptiveKLController`, updated after each batch with the mean over
  sequences of the summed k1 KL (RLOO's own estimator) and the batch's episode count, across processes;
- ``ptx_coef`` / ``ptx_dataset``: each optimizer step adds ``ptx_coef`` times the LM loss of one pretraining batch.

Both states are saved in every checkpoint (``rlhf_ext_state.json``) and restored on resume. Everything else is TRL's
RLOO.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import trl

from .base_trainer import TrainerMixin
from .data.validation import validate_prompt_dataset
from .kl_and_ptx import KLControlAndPtxMixin, validate_ptx_dataset


@dataclass
class RLOOConfig(trl.RLOOConfig):
    """``trl.RLOOConfig`` plus adaptive KL (``kl_target``, ``kl_horizon``) and PPO-ptx (``ptx_*``) options."""

    kl_target: float | None = field(
        default=None,
        metadata={
            "help": "Target KL (nats per episode, summed over response tokens) for Ziegler et al.'s adaptive "
            "controller, starting from `beta`. None keeps `beta` fixed."
        },
    )
    kl_horizon: float = field(default=10_000, metadata={"help": "Horizon (episodes) of the adaptive KL controller."})
    ptx_coef: float = field(
        default=0.0,
        metadata={"help": "InstructGPT's pretraining-loss coefficient gamma; 0 disables the pretraining mixture."},
    )
    ptx_batch_size: int | None = field(
        default=None,
        metadata={
            "help": "Pretraining rows per device per optimizer step. Defaults to per_device_train_batch_size * "
            "gradient_accumulation_steps."
        },
    )
    ptx_max_length: int = field(default=512, metadata={"help": "Pretraining texts are truncated to this many tokens."})

    def __post_init__(self):
        if self.kl_target is not None and not (math.isfinite(self.kl_target) and self.kl_target > 0):
            raise ValueError(f"`kl_target` must be > 0, got {self.kl_target!r}.")
        if self.kl_target is not None and self.beta <= 0:
            raise ValueError("`kl_target` needs a positive `beta` (the initial KL coefficient).")
        if not self.kl_horizon > 0:
            raise ValueError(f"`kl_horizon` must be > 0, got {self.kl_horizon!r}.")
        if self.ptx_coef < 0 or not math.isfinite(self.ptx_coef):
            raise ValueError(f"`ptx_coef` must be >= 0, got {self.ptx_coef!r}.")
        if self.ptx_batch_size is not None and not self.ptx_batch_size > 0:
            raise ValueError(f"`ptx_batch_size` must be > 0, got {self.ptx_batch_size!r}.")
        if not self.ptx_max_length > 0:
            raise ValueError(f"`ptx_max_length` must be > 0, got {self.ptx_max_length!r}.")
        super().__post_init__()


class RLOOTrainer(TrainerMixin, KLControlAndPtxMixin, trl.RLOOTrainer):
    """``trl.RLOOTrainer`` with an adaptive KL coefficient and a pretraining mixture; extra argument ``ptx_dataset``
    (a dataset with a ``text`` column, required when ``args.ptx_coef > 0``)."""

    _tag_names = ["trl", "rloo", "rlhf_ext"]
    _card_kind = "policy"
    _card_method = "RLOO (REINFORCE leave-one-out) with an optional adaptive KL coefficient and pretraining mixture"
    _card_citations = (
        "Ahmadian et al. 2024, *Back to Basics: Revisiting REINFORCE Style Optimization for Learning from Human "
        "Feedback in LLMs*, arXiv:2402.14740",
        "ziegler2019",
        "instructgpt",
        "trl",
    )
    _card_curves = ("reward", "objective/kl", "objective/kl_coef", "loss/ptx")
    _card_reward_kl = ("reward", "objective/kl")
    _card_hyperparameters = TrainerMixin._card_hyperparameters + (
        "beta",
        "kl_target",
        "kl_horizon",
        "ptx_coef",
        "num_generations",
        "max_completion_length",
    )

    def __init__(self, model, reward_funcs=None, args: RLOOConfig | None = None, *pos, ptx_dataset=None, **kwargs):
        if args is None:
            args = RLOOConfig(self.default_run_name(model, "RLOO"))
        if not isinstance(args, RLOOConfig):
            raise ValueError(f"`args` must be an rlhf_ext.RLOOConfig, got {type(args).__name__}.")
        validate_ptx_dataset(args, ptx_dataset)
        train_dataset = pos[0] if pos else kwargs.get("train_dataset")
        self._validate_datasets(
            validate_prompt_dataset, train_dataset, pos[1] if len(pos) > 1 else kwargs.get("eval_dataset")
        )
        super().__init__(model, reward_funcs, args, *pos, **kwargs)
        self._init_kl_and_ptx(args.beta, args, ptx_dataset)
        self._captured_logps = None

    def _get_per_token_logps_and_entropies(self, model, *args, **kwargs):
        result = super()._get_per_token_logps_and_entropies(model, *args, **kwargs)
        if self._captured_logps is not None:
            self._captured_logps.append(result[0])
        return result

    def _generate_and_score_completions(self, inputs):
        mode = "train" if self.model.training else "eval"
        if self.beta != 0.0:
            self.beta = float(self.kl_ctl.value)  # RLOO reads self.beta for its sequence-level penalty
        self._captured_logps = []
        try:
            out = super()._generate_and_score_completions(inputs)
            captured = self._captured_logps
        finally:
            self._captured_logps = None
        self._metrics[mode]["objective/kl_coef"].append(float(self.beta))
        if self.beta != 0.0 and len(captured) >= 2:
            # RLOO computes the policy's log-probs first, then the reference's (k1, as in its reward penalty).
            old, ref = captured[0], captured[1]
            seq_kl = self.accelerator.gather(((old - ref) * out["completion_mask"]).sum(dim=1).float())
            self._metrics[mode]["objective/kl"].append(seq_kl.mean().item())
            if mode == "train":
                self.kl_ctl.update(seq_kl.mean().item(), int(seq_kl.numel()))
        return out
