"""PPO for current TRL: Ziegler et al. 2019's RLHF with an adaptive KL coefficient, and InstructGPT's PPO-ptx.

TRL deleted its PPOTrainer in 1.13. This module rebuilds PPO as a thin subclass of ``trl.GRPOTrainer``, which
already samples responses, scores them with reward models or functions, runs the reference model, prepares
everything for accelerate/DeepSpeed, logs, checkpoints and writes model cards. What PPO adds on top:

- a learned value function: a scalar head on the policy trunk (``rlhf_ext.value_head``), stripped on save;
- per-token rewards: ``-beta * KL(pi || pi_ref)`` on every response token (``k1`` or ``k3`` estimator) plus the
  sequence score on the last response token (the EOS or custom stop token), with ``missing_eos_penalty``
  subtracted when a response never stops;
- GAE(gamma, lambda) advantages and returns, optional reward and advantage whitening;
- PPO's clipped surrogate (per-token ratio) plus a clipped value loss weighted by ``vf_coef``, for
  ``num_ppo_epochs`` passes over minibatches of each batch (reshuffled every epoch);
- Ziegler et al.'s adaptive KL controller (``kl_target``) or a fixed coefficient, and InstructGPT's pretraining
  mixture (``ptx_coef`` times the language-model loss of one ``ptx_dataset`` batch per optimizer step), both from
  ``rlhf_ext.kl_and_ptx``, which ``RLOOTrainer`` shares.

The pure loss functions (``gae``, ``whiten``, ``masked_mean``, ``kl_penalty``, ``clipped_policy_loss``,
``clipped_value_loss``) live in ``rlhf_ext.losses`` with the library's other losses and are tested against hand
computations; they are importable from here too.
"""

from __future__ import annotations

import dataclasses
import math
import textwrap
from dataclasses import dataclass, field

import torch
from torch import nn
from trl import GRPOConfig, GRPOTrainer

from .base_trainer import TrainerMixin
from .data.validation import validate_prompt_dataset
from .kl_and_ptx import KLControlAndPtxMixin, validate_ptx_dataset
from .losses import clipped_policy_loss, clipped_value_loss, gae, kl_penalty, masked_mean, whiten
from .nonfinite import check_finite
from .value_head import add_value_head, load_value_head, save_value_head

# ----------------------------------------------------------------------------------------------------------------
# Config
# ----------------------------------------------------------------------------------------------------------------

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


@dataclass
class PPOConfig(GRPOConfig):
    r"""Configuration for :class:`PPOTrainer`: every ``GRPOConfig`` option plus PPO's.

    ``kl_coef`` replaces GRPO's ``beta``, ``cliprange`` its ``epsilon``, ``num_ppo_epochs`` its ``num_iterations``.
    Minibatches are GRPO's: each generation batch (``generation_batch_size`` episodes) is split into
    ``steps_per_generation`` minibatches of ``per_device_train_batch_size`` episodes per device; one optimizer step
    per ``gradient_accumulation_steps`` minibatches. ``num_generations`` defaults to 1 response per prompt.
    Options the PPO loss would ignore (``loss_type``, ``scale_rewards``, entropy bonuses, ``use_vllm``...) raise.
    """

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
            "help": "Subtracted from the score of a response that contains no EOS (or stop_token_id) token. "
            "Huang et al.: 1.0."
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
        # GRPOConfig insists on >= 2 generations (its advantages need groups); PPO's do not.
        single = self.num_generations == 1
        if single:
            self.num_generations = 2
        try:
            super().__post_init__()
        except ValueError as err:
            if single and "num_generations (2)" in str(err):
                raise ValueError(str(err).replace("num_generations (2)", "num_generations (1)")) from None
            raise
        if single:
            self.num_generations = 1


# ----------------------------------------------------------------------------------------------------------------
# Trainer
# ----------------------------------------------------------------------------------------------------------------


class PPOTrainer(TrainerMixin, KLControlAndPtxMixin, GRPOTrainer):
    """PPO (Ziegler et al. 2019; InstructGPT's PPO-ptx) as a subclass of ``trl.GRPOTrainer``.

    Args are GRPOTrainer's, plus ``ptx_dataset``: a ``datasets.Dataset`` with a ``text`` column of pretraining
    text, required when ``args.ptx_coef > 0``. ``tools``, ``rollout_func`` and ``environment_factory`` are rejected.

    Attributes:
        kl_ctl: the :class:`AdaptiveKLController` or :class:`FixedKLController` in use (``kl_ctl.value`` is beta).
        ptx_position: number of pretraining batches drawn so far (checkpointed).
    """

    _tag_names = ["trl", "ppo", "rlhf_ext"]
    _name = "PPO"
    # rlhf_ext's model card (TrainerMixin replaces TRL's create_model_card).
    _card_kind = "policy"
    _card_method = (
        "PPO with a KL penalty to the initial policy (Ziegler et al. 2019), value head on the policy trunk, GAE, "
        "optional adaptive KL coefficient and InstructGPT's pretraining mixture (PPO-ptx)"
    )
    _card_citations = ("ziegler2019", "instructgpt", "ppo", "gae", "trl")
    _card_curves = (
        "objective/scores",
        "objective/kl",
        "objective/kl_coef",
        "loss/policy_avg",
        "loss/value_avg",
        "loss/ptx",
    )
    _card_reward_kl = ("objective/scores", "objective/kl")
    _card_hyperparameters = TrainerMixin._card_hyperparameters + (
        "kl_coef",
        "kl_target",
        "kl_horizon",
        "kl_estimator",
        "ptx_coef",
        "num_ppo_epochs",
        "cliprange",
        "cliprange_value",
        "vf_coef",
        "gamma",
        "lam",
        "num_generations",
        "max_completion_length",
        "temperature",
        "missing_eos_penalty",
    )
    _paper = {
        "title": "Fine-Tuning Language Models from Human Preferences",
        "id": "1909.08593",
        # docstyle-ignore
        "citation": textwrap.dedent("""\
            @article{ziegler2019fine,
                title        = {{Fine-Tuning Language Models from Human Preferences}},
                author       = {Daniel M. Ziegler and Nisan Stiennon and Jeffrey Wu and Tom B. Brown and Alec Radford and Dario Amodei and Paul Christiano and Geoffrey Irving},
                year         = 2019,
                eprint       = {arXiv:1909.08593},
            }"""),
    }

    def __init__(
        self,
        model,
        reward_funcs=None,
        args: PPOConfig | None = None,
        train_dataset=None,
        eval_dataset=None,
        processing_class=None,
        reward_processing_classes=None,
        callbacks=None,
        optimizers=(None, None),
        quantization_config=None,
        peft_config=None,
        ptx_dataset=None,
        tools=None,
        rollout_func=None,
        environment_factory=None,
    ):
        if args is None:
            args = PPOConfig(self.default_run_name(model, "PPO"))
        if not isinstance(args, PPOConfig):
            raise ValueError(f"`args` must be a PPOConfig, got {type(args).__name__}.")
        for name, value in (
            ("tools", tools),
            ("rollout_func", rollout_func),
            ("environment_factory", environment_factory),
        ):
            if value:
                raise ValueError(
                    f"PPOTrainer does not support `{name}`: PPO's per-token rewards assume plain sampling."
                )
        self._validate_inputs(reward_funcs, args, train_dataset, processing_class, ptx_dataset)
        self._validate_datasets(validate_prompt_dataset, train_dataset, eval_dataset)  # before anything is loaded

        super().__init__(
            model=model,
            reward_funcs=reward_funcs,
            args=args,
            train_dataset=train_dataset,
            eval_dataset=eval_dataset,
            processing_class=processing_class,
            reward_processing_classes=reward_processing_classes,
            callbacks=callbacks,
            optimizers=optimizers,
            quantization_config=quantization_config,
            peft_config=peft_config,
        )

        # A custom stop token ends generation and receives the score, like EOS.
        if args.stop_token_id is not None:
            self.eos_token_ids = [args.stop_token_id] + [t for t in self.eos_token_ids if t != args.stop_token_id]
            self.generation_kwargs["eos_token_id"] = self.eos_token_ids
            self.generation_config.eos_token_id = self.eos_token_ids

        # Value head on the policy trunk (inside PEFT's wrapper, next to the fused LM head TRL added).
        self._value_model = self._inner_causal_lm(self.model)
        add_value_head(self._value_model)
        self._collect_values = False
        self._collected_values = None
        self._last_rewards_per_func = None

        self._init_kl_and_ptx(args.kl_coef, args, ptx_dataset)

    # ------------------------------------------------------------------------------------------------------------
    # Validation and setup
    # ------------------------------------------------------------------------------------------------------------

    @staticmethod
    def _validate_inputs(reward_funcs, args, train_dataset, processing_class, ptx_dataset):
        from transformers import AutoConfig, ProcessorMixin

        if train_dataset is None:
            raise ValueError("`train_dataset` is required: a dataset of prompts with a `prompt` column.")
        if processing_class is not None:
            if isinstance(processing_class, ProcessorMixin):
                raise ValueError("PPOTrainer supports text models only: pass a tokenizer as `processing_class`.")
            if processing_class.pad_token_id is None:
                raise ValueError(
                    "`processing_class` has no pad token: set `tokenizer.pad_token` (a token that is not EOS, so that "
                    "padding is never mistaken for the end of a response)."
                )
        funcs = reward_funcs if isinstance(reward_funcs, list) else [reward_funcs]
        if reward_funcs is None or not funcs:
            raise ValueError("`reward_funcs` is required: a scalar reward model (num_labels=1) or a reward function.")
        for i, func in enumerate(funcs):
            if isinstance(func, str):
                num_labels = getattr(AutoConfig.from_pretrained(func), "num_labels", 1)
            elif isinstance(func, nn.Module):
                num_labels = getattr(getattr(func, "config", None), "num_labels", 1)
            else:
                continue
            if num_labels != 1:
                raise ValueError(
                    f"`reward_funcs[{i}]` must be a reward model with a scalar head (num_labels=1); it has "
                    f"num_labels={num_labels}."
                )
        validate_ptx_dataset(args, ptx_dataset)

    @staticmethod
    def _inner_causal_lm(model: nn.Module) -> nn.Module:
        from accelerate.utils import is_peft_model

        return model.get_base_model() if is_peft_model(model) else model

    def _policy_adapters_active(self) -> bool:
        """False while GRPO computes reference log-probs through the policy with PEFT adapters disabled."""
        from accelerate.utils import is_peft_model

        model = self.accelerator.unwrap_model(self.model)
        if not is_peft_model(model):
            return True
        if getattr(model, "active_adapter", None) == "ref":
            return False
        from peft.tuners.tuners_utils import BaseTunerLayer

        for module in model.modules():
            if isinstance(module, BaseTunerLayer):
                return not module.disable_adapters
        return True

    # Rollouts: scores, per-token rewards, values, GAE
    # ------------------------------------------------------------------------------------------------------------

    def _calculate_rewards(self, inputs, prompts, completions, completion_ids_list):
        rewards_per_func = super()._calculate_rewards(inputs, prompts, completions, completion_ids_list)
        self._last_rewards_per_func = rewards_per_func
        return rewards_per_func

    def _get_per_token_logps_and_entropies(self, model, *args, **kwargs):
        collect = self._collect_values and model is self.model and self._policy_adapters_active()
        if not collect:
            return super()._get_per_token_logps_and_entropies(model, *args, **kwargs)
        self._value_model._value_sink = []
        try:
            result = super()._get_per_token_logps_and_entropies(model, *args, **kwargs)
            logits_to_keep = args[2] if len(args) > 2 else kwargs["logits_to_keep"]
            self._collected_values = torch.cat(self._value_model._value_sink, dim=0)[:, -logits_to_keep:]
        finally:
            self._value_model._value_sink = None
        return result

    def _policy_logps_and_values(self, model, inputs, batch_size=None, compute_entropy=False):
        prompt_ids, prompt_mask = inputs["prompt_ids"], inputs["prompt_mask"]
        completion_ids, completion_mask = inputs["completion_ids"], inputs["completion_mask"]
        input_ids = torch.cat([prompt_ids, completion_ids], dim=1)
        attention_mask = torch.cat([prompt_mask, completion_mask], dim=1)
        keep = completion_ids.size(1)
        batch_size = batch_size or input_ids.size(0)
        logps, values, entropies = [], [], []
        for start in range(0, input_ids.size(0), batch_size):
            ids, attn = input_ids[start : start + batch_size], attention_mask[start : start + batch_size]
            labels = ids.masked_fill(attn == 0, -100)
            labels[:, :-keep] = -100
            with self.accelerator.autocast():
                out = model(input_ids=ids, attention_mask=attn, labels=labels, fused_lm_head=True, return_values=True)
            logps.append(out.log_probs[:, -keep:])
            values.append(out.value_preds[:, -keep:])
            if compute_entropy:
                entropies.append(out.entropy[:, -keep:])
        entropy = torch.cat(entropies) if compute_entropy else None
        return torch.cat(logps), torch.cat(values), entropy

    def _generate_and_score_completions(self, inputs):
        from trl.models.utils import disable_gradient_checkpointing

        mode = "train" if self.model.training else "eval"
        self._collected_values = None
        self._collect_values = True
        try:
            out = super()._generate_and_score_completions(inputs)
        finally:
            self._collect_values = False
        completion_ids, mask = out["completion_ids"], out["completion_mask"]
        device = completion_ids.device

        # Rollout-time log-probs and values: reuse GRPO's old log-prob pass when it ran, else one forward of our own.
        old_logps, values = out.get("old_per_token_logps"), self._collected_values
        if old_logps is None or values is None or values.shape != completion_ids.shape:
            batch_size = (
                self.args.per_device_train_batch_size if mode == "train" else self.args.per_device_eval_batch_size
            )
            with torch.no_grad(), disable_gradient_checkpointing(self.model, self.args.gradient_checkpointing_kwargs):
                old_logps, values, _ = self._policy_logps_and_values(self.model, out, batch_size)
        self._collected_values = None
        maskf = mask.to(torch.float32)
        values = values.float() * maskf
        old_logps = old_logps.float()
        out["old_per_token_logps"] = old_logps

        # Sequence scores (weighted sum over reward functions) for this process's rows.
        rewards_per_func = self._last_rewards_per_func
        n_local = completion_ids.size(0)
        rank = self.accelerator.process_index
        local = rewards_per_func[rank * n_local : (rank + 1) * n_local].to(device)
        scores = (local * self.reward_weights.to(device).unsqueeze(0)).nansum(dim=1).float()
        stop_ids = torch.tensor(self.eos_token_ids, device=device)
        has_stop = (torch.isin(completion_ids, stop_ids) & mask.bool()).any(dim=1)
        if self.args.missing_eos_penalty is not None:
            scores = torch.where(has_stop, scores, scores - self.args.missing_eos_penalty)

        # Per-token rewards: -beta * KL on each response token, the score on the last one (the EOS / stop token).
        beta = float(self.kl_ctl.value)
        ref_logps = out.get("ref_per_token_logps")
        if ref_logps is not None:
            kl = kl_penalty(old_logps, ref_logps.float(), self.args.kl_estimator) * maskf
        else:
            kl = torch.zeros_like(maskf)
        non_score_reward = -beta * kl
        rewards = non_score_reward.clone()
        last = (mask.sum(dim=1) - 1).clamp(min=0)
        rows = torch.arange(rewards.size(0), device=device)
        rewards[rows, last] += scores * (mask.sum(dim=1) > 0)
        if self.args.whiten_rewards:
            rewards = whiten(rewards, maskf, shift_mean=False)

        if mode == "train":  # name the cause here: a non-finite score or KL would surface later as the policy loss
            check_finite(self, {"reward": scores, "kl": kl, "value": values})
        advantages, returns = gae(rewards, values, maskf, self.args.gamma, self.args.lam)
        if self.args.whiten_advantages:
            advantages = whiten(advantages, maskf)
        out["advantages"] = advantages
        out["returns"] = returns
        out["old_values"] = values
        out["rewards"] = rewards  # per-token, for inspection (the loss does not read them)
        out["scores"] = scores
        out["kl"] = kl

        # Rollout metrics (TRL 1.12 PPOTrainer names), averaged over sequences of all processes.
        gather = self.accelerator.gather
        seq_kl = gather(kl.sum(dim=1))
        metrics = self._metrics[mode]
        metrics["objective/kl"].append(seq_kl.mean().item())
        metrics["objective/entropy"].append(gather((-old_logps * maskf).sum(dim=1)).mean().item())
        seq_non_score = gather(non_score_reward.sum(dim=1))
        all_scores = gather(scores)
        metrics["objective/non_score_reward"].append(seq_non_score.mean().item())
        metrics["objective/rlhf_reward"].append((all_scores + seq_non_score).mean().item())
        metrics["objective/scores"].append(all_scores.mean().item())
        metrics["objective/kl_coef"].append(beta)
        metrics["val/num_eos_tokens"].append(gather(has_stop.float()).sum().item())

        # Ziegler et al.: after each batch, feed the mean summed KL and the number of episodes to the controller.
        if mode == "train":
            self.kl_ctl.update(seq_kl.mean().item(), int(seq_kl.numel()))
        return out

    def _prepare_inputs(self, generation_batch):
        # A new PPO epoch over the buffered batch: draw a fresh minibatch split (GRPO replays the same slices).
        from trl.trainer.utils import shuffle_sequence_dict, split_tensor_dict

        spg = self.args.steps_per_generation
        if self.model.training and self._buffered_inputs is not None and spg > 1:
            generate_every = spg * self.num_iterations
            if self._step % generate_every != 0 and self._step % spg == 0:
                merged = {}
                for key, first in self._buffered_inputs[0].items():
                    if isinstance(first, torch.Tensor) and first.ndim > 0:
                        merged[key] = torch.cat([b[key] for b in self._buffered_inputs], dim=0)
                    else:
                        merged[key] = first
                self._buffered_inputs = split_tensor_dict(shuffle_sequence_dict(merged), spg)
        return super()._prepare_inputs(generation_batch)

    # ------------------------------------------------------------------------------------------------------------
    # Loss
    # ------------------------------------------------------------------------------------------------------------

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        if return_outputs:
            raise ValueError("PPOTrainer does not support returning outputs")
        mode = "train" if self.model.training else "eval"
        mask = inputs["completion_mask"].to(torch.float32)
        logps, values, entropy = self._policy_logps_and_values(model, inputs, compute_entropy=True)
        pg_loss, pg_stats = clipped_policy_loss(
            logps.float(), inputs["old_per_token_logps"], inputs["advantages"], mask, self.args.cliprange
        )
        vf_loss, vf_stats = clipped_value_loss(
            values, inputs["old_values"], inputs["returns"], mask, self.args.cliprange_value
        )
        loss = pg_loss + self.args.vf_coef * vf_loss
        if mode == "train":
            check_finite(self, {"policy": pg_loss, "value": vf_loss})
            loss = loss / self.current_gradient_accumulation_steps  # GRPO's loss is pre-scaled for accumulation

        gather = self.accelerator.gather
        stats = torch.stack(
            [
                pg_stats["approxkl"],
                pg_stats["clipfrac"],
                pg_loss.detach(),
                vf_loss.detach(),
                vf_stats["clipfrac"],
                pg_stats["ratio"],
                masked_mean(entropy.detach().float(), mask),
            ]
        )
        stats = gather(stats.unsqueeze(0)).mean(dim=0).tolist()
        names = (
            "policy/approxkl_avg",
            "policy/clipfrac_avg",
            "loss/policy_avg",
            "loss/value_avg",
            "val/clipfrac_avg",
            "val/ratio",
            "policy/entropy_avg",
        )
        for name, value in zip(names, stats, strict=True):
            self._metrics[mode][name].append(value)
        return loss

    # ------------------------------------------------------------------------------------------------------------
    # Saving and resuming
    # ------------------------------------------------------------------------------------------------------------

    def _save(self, output_dir: str | None = None, state_dict=None):
        # save_pretrained drops the value head (`_keys_to_ignore_on_save`): the folder is a plain causal LM.
        super()._save(output_dir, state_dict=state_dict)
        if self.args.should_save:
            save_value_head(self._value_model, output_dir if output_dir is not None else self.args.output_dir)

    def _load_optimizer_and_scheduler(self, checkpoint):
        super()._load_optimizer_and_scheduler(checkpoint)
        if checkpoint is not None:
            load_value_head(self._value_model, checkpoint)
