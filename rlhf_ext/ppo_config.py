"""Configuration of :class:`rlhf_ext.PPOTrainer`: GRPO's options, PPO's, and the options of the PPO parts that live in
modules of their own (TRL 1.12's field names, the critic, reward normalisation).

``PPOConfig`` extends ``trl.GRPOConfig`` (the trainer is a ``GRPOTrainer`` subclass) and refuses every GRPO option the
PPO loss would silently ignore. Each field has a help text, so ``TrlParser`` / ``HfArgumentParser`` turn it into a CLI
and YAML configs; the paper values are in the help texts.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

from trl import GRPOConfig

from . import trl112
from .critic import CriticOptions
from .fast_rollouts import FastRolloutOptions
from .reward_normalization import RewardNormalizationOptions

# GRPOConfig options that the PPO loss would silently ignore: any value but GRPO's default is rejected.
_IGNORED_GRPO_OPTIONS = (
    "loss_type",
    "multi_objective_aggregation",
    "importance_sampling_level",
    "epsilon_high",
    "delta",
    "sapo_temperature_neg",
    "sapo_temperature_pos",
    "vespo_k_pos",
    "vespo_lambda_pos",
    "vespo_k_neg",
    "vespo_lambda_neg",
    "top_entropy_quantile",
    "entropy_coef",
    "use_adaptive_entropy",
    "off_policy_mask_threshold",
    "use_bias_correction_kl",
    "mask_truncated_completions",
    "max_tool_calling_iterations",
    "router_aux_loss_coef",
    "use_vllm",
)
_WHY = {
    "scale_rewards": "PPO does not normalise rewards per group; use whiten_rewards / whiten_advantages",
    "mask_truncated_completions": "it zeroes truncated samples; use missing_eos_penalty",
    "use_vllm": "vLLM weight sync of the value head is not supported yet; generate with transformers",
    "router_aux_loss_coef": "the PPO loss does not add the MoE load-balancing loss",
    "loss_type": "PPO has its own clipped per-token loss",
}


@trl112.rejects_trl112_computed_fields
@dataclass
class PPOConfig(trl112.Trl112Options, CriticOptions, RewardNormalizationOptions, FastRolloutOptions, GRPOConfig):
    r"""Configuration for :class:`PPOTrainer`: every ``GRPOConfig`` option plus PPO's.

    ``kl_coef`` replaces GRPO's ``beta``, ``cliprange`` its ``epsilon``, ``num_ppo_epochs`` its ``num_iterations``.
    Minibatches are GRPO's: each generation batch (``generation_batch_size`` episodes) is split into
    ``steps_per_generation`` minibatches of ``per_device_train_batch_size`` episodes per device; one optimizer step
    per ``gradient_accumulation_steps`` minibatches. ``num_generations`` defaults to 1 response per prompt.
    Options the PPO loss would ignore (``loss_type``, ``scale_rewards``, entropy bonuses, ``use_vllm``...) raise.
    TRL 1.12's field names (``total_episodes``, ``response_length``, ``num_mini_batches``, ...) are accepted with their
    meaning (``rlhf_ext.trl112``); the critic's options are ``rlhf_ext.critic``'s, reward normalisation's
    ``rlhf_ext.reward_normalization``'s, the speed-up switches ``rlhf_ext.fast_rollouts``'.
    """

    disable_dropout: bool = field(
        default=True,
        metadata={
            "help": "Disable dropout in the policy, reference, reward and value models (TRL 1.12, Huang et al.): "
            "with dropout the ratio and KL of identical weights are noisy."
        },
    )

    num_generations: int | None = field(
        default=1,
        metadata={"help": "Responses sampled per prompt. PPO needs no groups, so 1 (the default) is allowed."},
    )
    kl_coef: float = field(
        default=0.05,
        metadata={
            "help": "Initial (or fixed) coefficient beta of the per-token KL penalty -beta*KL(pi||pi_ref). 0 with "
            "kl_target=None disables the penalty and the reference model. Ziegler et al.: 0.15 adaptive; "
            "Huang et al. TL;DR: 0.05 fixed."
        },
    )
    kl_target: float | None = field(
        default=None,
        metadata={
            "help": "Target KL in nats per episode (summed over response tokens) for Ziegler et al.'s adaptive "
            "controller. None keeps kl_coef fixed. Ziegler et al.: 6.0."
        },
    )
    kl_horizon: float = field(
        default=10_000,
        metadata={"help": "Horizon (episodes) of the adaptive KL controller. Ziegler et al.: 10,000."},
    )
    kl_estimator: str = field(
        default="k1",
        metadata={
            "help": "Per-token KL estimator in the reward: 'k1' (log pi - log pi_ref, as Ziegler et al.) or 'k3' "
            "(r - 1 - log r, non-negative per token).",
            "choices": ["k1", "k3"],
        },
    )
    gamma: float = field(default=1.0, metadata={"help": "Discount factor of GAE."})
    lam: float = field(default=0.95, metadata={"help": "Lambda of GAE."})
    cliprange: float = field(default=0.2, metadata={"help": "Clip range of the per-token policy ratio."})
    cliprange_value: float = field(
        default=0.2, metadata={"help": "Values may move at most this far from their rollout-time estimate."}
    )
    vf_coef: float = field(default=0.1, metadata={"help": "Weight of the value loss in the total loss."})
    num_ppo_epochs: int = field(
        default=4, metadata={"help": "Optimisation passes over each batch of episodes (sets num_iterations)."}
    )
    whiten_rewards: bool = field(
        default=False, metadata={"help": "Whiten the per-token rewards (without shifting their mean) before GAE."}
    )
    whiten_advantages: bool = field(default=True, metadata={"help": "Whiten the advantages of each batch."})
    missing_eos_penalty: float | None = field(
        default=None,
        metadata={
            "help": "Subtracted from the score of a response that contains no EOS (or stop_token_id) token (TRL "
            "1.12's meaning). Exclusive with missing_eos_score."
        },
    )
    missing_eos_score: float | None = field(
        default=None,
        metadata={
            "help": "Replaces the score of a response that contains no EOS (or stop_token_id) token: Huang et al.'s "
            "EOS trick, -1 on a reward normalised so that reference completions score 0 (reward_normalization)."
        },
    )
    stop_token_id: int | None = field(
        default=None,
        metadata={
            "help": "A token id that ends a response besides EOS: generation stops on it, the score is placed on "
            "it and it counts as a stop for missing_eos_penalty."
        },
    )
    ptx_coef: float = field(
        default=0.0,
        metadata={
            "help": "InstructGPT's pretraining-loss coefficient gamma (PPO-ptx): each optimizer step adds "
            "ptx_coef * LM loss of one ptx_dataset batch. 0 = plain PPO. InstructGPT: 27.8."
        },
    )
    ptx_batch_size: int | None = field(
        default=None,
        metadata={
            "help": "Pretraining rows per device per optimizer step (split across gradient-accumulation "
            "micro-steps). Defaults to per_device_train_batch_size * gradient_accumulation_steps."
        },
    )
    ptx_max_length: int = field(default=512, metadata={"help": "Pretraining texts are truncated to this many tokens."})

    def __post_init__(self):
        self._trl112_before_grpo()
        self._critic_post_init()
        self._reward_normalization_post_init()
        if self.missing_eos_penalty is not None and self.missing_eos_score is not None:
            raise ValueError("Set either `missing_eos_penalty` (subtract) or `missing_eos_score` (replace), not both.")
        grpo_defaults = {f.name: f.default for f in dataclasses.fields(GRPOConfig)}
        for name in _IGNORED_GRPO_OPTIONS:
            if getattr(self, name) != grpo_defaults[name]:
                why = _WHY.get(name, "the PPO loss would ignore it")
                raise ValueError(f"PPOConfig does not support `{name}={getattr(self, name)!r}`: {why}.")
        if self.scale_rewards not in (True, "group"):
            raise ValueError(
                f"PPOConfig does not support `scale_rewards={self.scale_rewards!r}`: {_WHY['scale_rewards']}."
            )
        if self.beta not in (0.0, self.kl_coef):
            raise ValueError("PPOConfig sets GRPO's `beta` from `kl_coef`; set `kl_coef` instead of `beta`.")
        if self.num_iterations not in (1, self.num_ppo_epochs):
            raise ValueError("PPOConfig sets `num_iterations` from `num_ppo_epochs`; set `num_ppo_epochs` instead.")
        if self.epsilon not in (0.2, self.cliprange):
            raise ValueError("PPOConfig sets GRPO's `epsilon` from `cliprange`; set `cliprange` instead.")

        def positive(name, value, allow_none=False):
            if value is None and allow_none:
                return
            if value is None or not value > 0:
                raise ValueError(f"`{name}` must be > 0, got {value!r}.")

        positive("kl_target", self.kl_target, allow_none=True)
        positive("kl_horizon", self.kl_horizon)
        positive("num_ppo_epochs", self.num_ppo_epochs)
        positive("max_completion_length", self.max_completion_length)
        positive("per_device_train_batch_size", self.per_device_train_batch_size)
        positive("gradient_accumulation_steps", self.gradient_accumulation_steps)
        positive("ptx_batch_size", self.ptx_batch_size, allow_none=True)
        positive("ptx_max_length", self.ptx_max_length)
        positive("num_generations", self.num_generations)
        positive("cliprange", self.cliprange)
        positive("cliprange_value", self.cliprange_value)
        if self.kl_coef < 0 or not math.isfinite(self.kl_coef):
            raise ValueError(f"`kl_coef` must be >= 0, got {self.kl_coef!r}.")
        if self.kl_target is not None and self.kl_coef == 0:
            raise ValueError("`kl_target` needs `kl_coef` > 0: the adaptive controller scales it and 0 stays 0.")
        if self.ptx_coef < 0 or not math.isfinite(self.ptx_coef):
            raise ValueError(f"`ptx_coef` must be >= 0, got {self.ptx_coef!r}.")
        if self.vf_coef < 0:
            raise ValueError(f"`vf_coef` must be >= 0, got {self.vf_coef!r}.")
        if self.kl_estimator not in ("k1", "k3"):
            raise ValueError(f"`kl_estimator` must be 'k1' or 'k3', got {self.kl_estimator!r}.")
        if not 0.0 <= self.gamma <= 1.0 or not 0.0 <= self.lam <= 1.0:
            raise ValueError(f"`gamma` and `lam` must lie in [0, 1], got {self.gamma!r}, {self.lam!r}.")

        self.beta = float(self.kl_coef)
        self.num_iterations = int(self.num_ppo_epochs)
        self.epsilon = float(self.cliprange)
        # GRPOConfig insists on >= 2 generations dividing the generation batch (its advantages need groups); PPO's
        # do not: it sees one group of a process's whole batch (any size >= 2) while it checks the rest.
        single, eval_generations = self.num_generations == 1, self.num_generations_eval
        stand_in = 2
        if single:
            steps = self.steps_per_generation or self.gradient_accumulation_steps
            stand_in = max(2, self.generation_batch_size or self.per_device_train_batch_size * steps)
            self.num_generations = stand_in
            self.num_generations_eval = eval_generations or 1
        try:
            super().__post_init__()
        except ValueError as err:
            if single and f"num_generations ({stand_in})" in str(err):
                raise ValueError(str(err).replace(f"num_generations ({stand_in})", "num_generations (1)")) from None
            raise
        if single:
            self.num_generations, self.num_generations_eval = 1, eval_generations
        self._trl112_after_grpo()
