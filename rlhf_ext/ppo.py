"""PPO for current TRL: Ziegler et al. 2019's RLHF with an adaptive KL coefficient, and InstructGPT's PPO-ptx.

TRL deleted its PPOTrainer in 1.13. This module rebuilds PPO as a thin subclass of ``trl.GRPOTrainer``, which
already samples responses, scores them with reward models or functions, runs the reference model, prepares
everything for accelerate/DeepSpeed, logs, checkpoints and writes model cards. What PPO adds on top:

- a learned value function: a scalar head on the policy trunk (``rlhf_ext.value_head``), stripped on save, or a
  separate critic (``rlhf_ext.critic``), optionally copied from the reward model and warmed up alone;
- per-token rewards: ``-beta * KL(pi || pi_ref)`` on every response token (``k1`` or ``k3`` estimator) plus the
  sequence score on the last response token (the EOS or custom stop token); the score optionally normalised on a
  reference set and clipped (``rlhf_ext.reward_normalization``), then ``missing_eos_penalty`` subtracted or
  ``missing_eos_score`` substituted when a response never stops;
- GAE(gamma, lambda) advantages and returns, optional reward and advantage whitening;
- PPO's clipped surrogate (per-token ratio) plus a clipped value loss weighted by ``vf_coef``, for
  ``num_ppo_epochs`` passes over minibatches of each batch (reshuffled every epoch);
- Ziegler et al.'s adaptive KL controller (``kl_target``) or a fixed coefficient, and InstructGPT's pretraining
  mixture (``ptx_coef`` times the language-model loss of one ``ptx_dataset`` batch per optimizer step), both from
  ``rlhf_ext.kl_and_ptx``, which ``RLOOTrainer`` shares.

TRL 1.12's ``PPOTrainer`` arguments and ``PPOConfig`` fields are accepted with their meaning (``rlhf_ext.trl112``);
reward models score in their training format (``rlhf_ext.reward_scoring``); dropout is off in every model and the
scoring forwards number left-padded tokens as ``generate()`` did (``rlhf_ext.value_head.add_position_ids``).

The pure loss functions (``gae``, ``whiten``, ``masked_mean``, ``kl_penalty``, ``clipped_policy_loss``,
``clipped_value_loss``) live in ``rlhf_ext.losses`` with the library's other losses and are tested against hand
computations; they are importable from here too.
"""

from __future__ import annotations

import contextlib
import inspect
import textwrap

import torch
from torch import nn
from trl import GRPOTrainer

from . import trl112
from .base_trainer import TrainerMixin
from .checkpoints import read_checkpoint_state, write_checkpoint_state
from .critic import (
    attach_value_model,
    build_value_model,
    check_optimizer_holds,
    load_value_model_weights,
    save_value_model,
    set_critic_learning_rate,
    set_value_scale,
)
from .data.validation import validate_prompt_dataset
from .fast_rollouts import (
    SamplerRecorder,
    has_active_dropout,
    in_row_order,
    lora_merged,
    scoring_calls,
    trimmed_prefill,
)
from .kl_and_ptx import KLControlAndPtxMixin, validate_ptx_dataset
from .lm_head import add_compact_lm_head
from .losses import clipped_policy_loss, clipped_value_loss, gae, kl_penalty, masked_mean, whiten
from .nonfinite import check_finite
from .ppo_config import PPOConfig
from .reward_normalization import RewardNormalizer, clip_scores, reference_scores, validate_reference_dataset
from .reward_scoring import reward_model_scorers
from .value_head import add_position_ids, add_value_head, load_value_head, save_value_head, takes_position_ids

# Arguments of GRPO's log-prob pass that trim_prompt_padding handles; any other (image inputs) must be None.
_TEXT_SCORING_ARGUMENTS = {
    "model",
    "input_ids",
    "attention_mask",
    "logits_to_keep",
    "batch_size",
    "compute_entropy",
    "compute_aux_loss",
}


def disable_dropout(model: nn.Module) -> None:
    """Dropout off: ``nn.Dropout`` layers (TRL's ``disable_dropout_in_model``) and the functional attention dropout
    that Llama-family attention modules read from their ``attention_dropout`` attribute."""
    from trl.trainer.utils import disable_dropout_in_model

    disable_dropout_in_model(model)
    for module in model.modules():
        if isinstance(getattr(module, "attention_dropout", None), float):
            module.attention_dropout = 0.0


# ----------------------------------------------------------------------------------------------------------------
# Trainer
# ----------------------------------------------------------------------------------------------------------------


class PPOTrainer(TrainerMixin, KLControlAndPtxMixin, GRPOTrainer):
    """PPO (Ziegler et al. 2019; InstructGPT's PPO-ptx) as a subclass of ``trl.GRPOTrainer``.

    Args are GRPOTrainer's, plus ``ptx_dataset``: a ``datasets.Dataset`` with a ``text`` column of pretraining
    text, required when ``args.ptx_coef > 0``. ``tools``, ``rollout_func`` and ``environment_factory`` are rejected.
    Keyword-only: TRL 1.12's ``ref_model`` (a model or path), ``reward_model`` (one more reward function),
    ``value_model`` (the separate critic, a model or path) and ``data_collator``; ``reward_reference_dataset``
    (``prompt``/``completion`` rows) for ``reward_normalization="reference"``. ``model`` may be None when
    ``args.sft_model_path`` is set.

    Attributes:
        kl_ctl: the :class:`AdaptiveKLController` or :class:`FixedKLController` in use (``kl_ctl.value`` is beta).
        ptx_position: number of pretraining batches drawn so far (checkpointed).
        critic: the separate critic, or None when the value head sits on the policy trunk.
        reward_normalizer: the :class:`~rlhf_ext.reward_normalization.RewardNormalizer` (statistics checkpointed).
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
        "critic_from_reward_model",
        "critic_warmup_steps",
        "reward_normalization",
        "missing_eos_score",
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
        model=None,
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
        *,
        ref_model=None,
        reward_model=None,
        value_model=None,
        data_collator=None,
        reward_reference_dataset=None,
    ):
        trl112.reject_positional_call(model)
        if model is None and args is not None and getattr(args, "sft_model_path", None):
            model = args.sft_model_path
        if model is None:
            raise ValueError("`model` is required: the policy (a model or a path), or set `args.sft_model_path`.")
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
        # TRL 1.12's arguments: reward_model is one more reward function, prompts may come pre-tokenized.
        reward_funcs, reward_processing_classes, train_dataset, eval_dataset = trl112.normalize_arguments(
            args, reward_funcs, reward_model, reward_processing_classes, processing_class, data_collator, train_dataset,
            eval_dataset,
        )  # fmt: skip
        self._validate_inputs(reward_funcs, args, train_dataset, processing_class, ptx_dataset)
        self._validate_datasets(validate_prompt_dataset, train_dataset, eval_dataset)  # before anything is loaded
        validate_reference_dataset(args, reward_reference_dataset)
        reference = trl112.build_reference(model, ref_model, args, peft_config)
        critic = build_value_model(value_model, args, reward_funcs, reward_processing_classes, processing_class)
        self._batch_prompt_ids = None

        # With a reference of our own, GRPO must not build one: it sees beta = 0 until it is attached.
        beta, sync_ref = args.beta, args.sync_ref_model
        if reference is not None:
            args.beta, args.sync_ref_model = 0.0, False
        try:
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
        finally:
            args.beta, args.sync_ref_model = beta, sync_ref
        if reference is not None:
            trl112.attach_reference(self, reference)

        # A custom stop token ends generation and receives the score, like EOS.
        if args.stop_token_id is not None:
            self.eos_token_ids = [args.stop_token_id] + [t for t in self.eos_token_ids if t != args.stop_token_id]
            self.generation_kwargs["eos_token_id"] = self.eos_token_ids
            self.generation_config.eos_token_id = self.eos_token_ids

        # The value function: a separate critic, or a head on the policy trunk (inside PEFT's wrapper, next to the
        # fused LM head TRL added). Scoring forwards number left-padded tokens as generate() did.
        self._value_model = self._inner_causal_lm(self.model)
        if args.compact_lm_head:  # under the value forward, so that it wraps this head
            add_compact_lm_head(self._value_model, self.temperature)
            if self.ref_model is not None:
                add_compact_lm_head(self.accelerator.unwrap_model(self.ref_model), self.temperature)
        if critic is not None:
            attach_value_model(self._value_model, critic)
            check_optimizer_holds(critic, optimizers[0])
            self.card_info.method = self._card_method.replace(
                "value head on the policy trunk", "a separate critic (value model)"
            )
            if args.gradient_checkpointing:
                critic.gradient_checkpointing_enable(gradient_checkpointing_kwargs=args.gradient_checkpointing_kwargs)
        else:
            add_value_head(self._value_model)
        self.critic = critic
        add_position_ids(self._value_model)
        if self.ref_model is not None:
            add_position_ids(self.accelerator.unwrap_model(self.ref_model))
        scorers = [self._value_model, critic]
        if self.ref_model is not None:
            scorers.append(self.accelerator.unwrap_model(self.ref_model))
        self._numbers_tokens_by_mask = all(takes_position_ids(m) for m in scorers if m is not None)
        if args.disable_dropout:  # GRPO turns off only the nn.Dropout layers, and only of the policy and reference
            for module in (self.model, self.ref_model, *self.reward_funcs):
                if isinstance(module, nn.Module):
                    disable_dropout(module)
        self._collect_values = False
        self._collected_values = None
        self._sampled = None  # the sampler's own log-probs and values of the current rollout (logprobs_from_sampler)
        self._last_rewards_per_func = None
        self._reward_scorers = reward_model_scorers(self)  # reward models score in the training format

        self._init_kl_and_ptx(args.kl_coef, args, ptx_dataset)
        self.reward_normalizer = RewardNormalizer(args.reward_normalization, args.reward_normalization_std)
        self._reward_reference_dataset = reward_reference_dataset
        if args.num_sample_generations > 0 and eval_dataset is not None:
            self.add_callback(trl112.SampleGenerationsCallback(self))

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
        funcs = self.reward_funcs
        self.reward_funcs = [f if scorer is None else scorer for f, scorer in zip(funcs, self._reward_scorers)]
        try:
            rewards_per_func = super()._calculate_rewards(inputs, prompts, completions, completion_ids_list)
        finally:
            self.reward_funcs = funcs
        self._last_rewards_per_func = rewards_per_func
        return rewards_per_func

    def _set_signature_columns_if_needed(self):
        super()._set_signature_columns_if_needed()
        if "input_ids" not in self._signature_columns:  # TRL 1.12's pre-tokenized prompts
            self._signature_columns = [*self._signature_columns, "input_ids"]

    def _tokenize_prompts(self, prompts: list):
        if self._batch_prompt_ids is not None:  # pre-tokenized prompts: generate from exactly those ids
            return [list(ids) for ids in self._batch_prompt_ids], None, {}
        return super()._tokenize_prompts(prompts)

    def _get_per_token_logps_and_entropies(self, model, *args, **kwargs):
        rollout_batch = self.args.local_rollout_forward_batch_size
        if rollout_batch and not torch.is_grad_enabled():  # TRL 1.12's rollout forward batch size
            if len(args) > 3:
                args = (*args[:3], rollout_batch, *args[4:])
            else:
                kwargs["batch_size"] = rollout_batch
        collect = self._collect_values and model is self.model and self._policy_adapters_active()
        if not collect:
            return self._grouped_logps_pass(model, args, kwargs)[0]
        if self._sampled is not None and not torch.is_grad_enabled():  # GRPO's old log-prob pass: the sampler's
            input_ids = args[0] if args else kwargs["input_ids"]
            attention_mask = args[1] if len(args) > 1 else kwargs["attention_mask"]
            keep = args[2] if len(args) > 2 else kwargs["logits_to_keep"]
            self._sampled = self._sampled.scores(input_ids[:, -keep:], attention_mask[:, -keep:])
            if self._sampled is not None:
                self._collected_values = self._sampled.values
                return self._sampled.logps, None, None
        self._value_model._value_sink = []
        try:
            result, order = self._grouped_logps_pass(model, args, kwargs)
            logits_to_keep = args[2] if len(args) > 2 else kwargs["logits_to_keep"]
            values = [v[:, -logits_to_keep:] for v in self._value_model._value_sink]
            self._collected_values = in_row_order(values, order)
        finally:
            self._value_model._value_sink = None
        return result

    def _grouped_logps_pass(self, model, args, kwargs):
        """GRPO's log-prob pass, run in ``trim_prompt_padding``'s groups of rows when it applies (text only, no MoE
        auxiliary loss). Returns GRPO's result and the order that puts per-call outputs back in row order (None: the
        calls were GRPO's own)."""
        grpo_pass = super()._get_per_token_logps_and_entropies
        arguments = inspect.signature(grpo_pass).bind(model, *args, **kwargs).arguments
        text_only = all(arguments[name] is None for name in arguments if name not in _TEXT_SCORING_ARGUMENTS)
        if text_only and not arguments.get("compute_aux_loss") and self._trim_prompt_padding():
            input_ids, attention_mask, keep = (arguments[k] for k in ("input_ids", "attention_mask", "logits_to_keep"))
            calls, order = scoring_calls(attention_mask, keep, arguments.get("batch_size") or input_ids.size(0))
            if order is not None:
                entropy = arguments.get("compute_entropy", False)
                results = []
                for rows, first in calls:
                    ids, mask = input_ids[rows, first:], attention_mask[rows, first:]
                    results.append(grpo_pass(model, ids, mask, keep, compute_entropy=entropy))
                logps = in_row_order([r[0] for r in results], order)
                entropies = in_row_order([r[1] for r in results], order) if entropy else None
                return (logps, entropies, None), order
        return grpo_pass(model, *args, **kwargs), None

    def _trim_prompt_padding(self) -> bool:
        """Whether scoring passes may cut the prompts' shared left padding (``trim_prompt_padding``): one process (every
        process of a distributed run must make the same forward calls) and scoring forwards that number tokens from
        the attention mask."""
        return self.args.trim_prompt_padding and self.accelerator.num_processes == 1 and self._numbers_tokens_by_mask

    def _generate_single_turn(self, prompt_ids, images, multimodal_fields, num_generations, has_tool_images=False):
        # rlhf_ext.fast_rollouts: sample with LoRA merged and the prompt pass without the shared padding, and keep
        # the sampler's own log-probs and values.
        if self.use_vllm or self.use_transformers_continuous_batching:
            return super()._generate_single_turn(
                prompt_ids, images, multimodal_fields, num_generations, has_tool_images
            )
        policy = self.accelerator.unwrap_model(self.model)
        recorder = None
        with contextlib.ExitStack() as stack:
            if self.args.merge_adapters_for_generation:
                stack.enter_context(lora_merged(policy))
            if self._trim_prompt_padding():
                stack.enter_context(trimmed_prefill(self._value_model))
            if self._collect_values and self._sampler_scores_usable():
                value_head = self._value_model.v_head if self.critic is None else None
                recorder = stack.enter_context(SamplerRecorder(self._value_model, self.temperature, value_head))
            completion_ids, logprobs = super()._generate_single_turn(
                prompt_ids, images, multimodal_fields, num_generations, has_tool_images
            )
        if recorder is not None:
            self._sampled = recorder.result(completion_ids)
        return completion_ids, logprobs

    def _sampler_scores_usable(self) -> bool:
        """Whether the sampler computes exactly the rollout's log-probs: float32 weights, no autocast, no dropout."""
        if not self.args.logprobs_from_sampler or self.accelerator.mixed_precision != "no":
            return False
        if self._value_model.get_output_embeddings().weight.dtype != torch.float32:
            return False
        return not has_active_dropout(self._value_model)

    def _policy_logps_and_values(self, model, inputs, batch_size=None, compute_entropy=False, values_only=False):
        """Per-token log-probs, values and (optionally) entropies of the episodes in ``inputs``. ``values_only`` (critic
        warm-up): values alone, from a separate critic without running the policy, from a trunk head on detached
        hidden states; the log-probs returned are then None."""
        prompt_ids, prompt_mask = inputs["prompt_ids"], inputs["prompt_mask"]
        completion_ids, completion_mask = inputs["completion_ids"], inputs["completion_mask"]
        input_ids = torch.cat([prompt_ids, completion_ids], dim=1)
        attention_mask = torch.cat([prompt_mask, completion_mask], dim=1)
        keep = completion_ids.size(1)
        calls, order = scoring_calls(
            attention_mask, keep, batch_size or input_ids.size(0), self._trim_prompt_padding()
        )
        logps, values, entropies = [], [], []
        for rows, first in calls:
            ids, attn = input_ids[rows, first:], attention_mask[rows, first:]
            labels = ids.masked_fill(attn == 0, -100)
            labels[:, :-keep] = -100
            with self.accelerator.autocast():
                out = model(
                    input_ids=ids,
                    attention_mask=attn,
                    labels=labels,
                    fused_lm_head=True,
                    return_values=True,
                    values_only=values_only and self.critic is not None,
                    detach_trunk=values_only,
                )
            values.append(out.value_preds[:, -keep:])
            if not values_only:
                logps.append(out.log_probs[:, -keep:])
            if compute_entropy and not values_only:
                entropies.append(out.entropy[:, -keep:])
        entropy = in_row_order(entropies, order) if entropies else None
        return (in_row_order(logps, order) if logps else None), in_row_order(values, order), entropy

    def _generate_and_score_completions(self, inputs):
        from trl.models.utils import disable_gradient_checkpointing

        mode = "train" if self.model.training else "eval"
        normalizer = self.reward_normalizer
        if normalizer.enabled and not normalizer.fitted and normalizer.source == "reference":
            batch = self.args.local_rollout_forward_batch_size or self.args.per_device_train_batch_size
            normalizer.fit(reference_scores(self, self._reward_reference_dataset, batch))
            self._scale_critic_to_rewards()
        self._collected_values = None
        self._collect_values = True
        self._batch_prompt_ids = [x["input_ids"] for x in inputs] if inputs and "input_ids" in inputs[0] else None
        try:
            out = super()._generate_and_score_completions(inputs)
            sampled = self._sampled
        finally:
            self._collect_values = False
            self._batch_prompt_ids = None
            self._sampled = None
        completion_ids, mask = out["completion_ids"], out["completion_mask"]
        device = completion_ids.device

        # Rollout-time log-probs and values: the sampler's own (logprobs_from_sampler), else GRPO's old log-prob pass
        # when it ran; a separate critic, or whatever is still missing, gets a forward of our own.
        old_logps, values = out.get("old_per_token_logps"), self._collected_values
        sampled = sampled.scores(completion_ids, mask) if sampled is not None else None
        if sampled is not None:
            old_logps, values = sampled.logps, sampled.values
        if old_logps is None or values is None or values.shape != completion_ids.shape:
            batch_size = self.args.local_rollout_forward_batch_size or (
                self.args.per_device_train_batch_size if mode == "train" else self.args.per_device_eval_batch_size
            )
            values_only = old_logps is not None and old_logps.shape == completion_ids.shape and self.critic is not None
            with torch.no_grad(), disable_gradient_checkpointing(self.model, self.args.gradient_checkpointing_kwargs):
                logps, values, _ = self._policy_logps_and_values(self.model, out, batch_size, values_only=values_only)
            old_logps = old_logps if values_only else logps
        self._collected_values = None
        maskf = mask.to(torch.float32)
        values = values.float() * maskf
        old_logps = old_logps.float()
        out["old_per_token_logps"] = old_logps

        # Sequence scores (weighted sum over reward functions; gathered over processes), this process's rows.
        all_raw = (self._last_rewards_per_func.to(device) * self.reward_weights.to(device).unsqueeze(0)).nansum(dim=1)
        n_local = completion_ids.size(0)
        rank = self.accelerator.process_index
        raw_scores = all_raw[rank * n_local : (rank + 1) * n_local].float()
        if normalizer.enabled and not normalizer.fitted:  # "initial_policy": this first batch is the reference set
            normalizer.fit(all_raw)
            if self._scale_critic_to_rewards():  # these values were read before the critic was rescaled
                values = (values - normalizer.mean) / normalizer.std * maskf
        stop_ids = torch.tensor(self.eos_token_ids, device=device)
        has_stop = (torch.isin(completion_ids, stop_ids) & mask.bool()).any(dim=1)
        scores = self._final_scores(raw_scores, has_stop)

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
        if normalizer.enabled:
            metrics["objective/raw_scores"].append(all_raw.mean().item())
        metrics["objective/kl_coef"].append(beta)
        metrics["val/num_eos_tokens"].append(gather(has_stop.float()).sum().item())

        # Ziegler et al.: after each batch, feed the mean summed KL and the number of episodes to the controller.
        if mode == "train" and not self._in_critic_warmup():  # a frozen policy's KL says nothing about beta
            self.kl_ctl.update(seq_kl.mean().item(), int(seq_kl.numel()))
        return out

    def _final_scores(self, raw_scores: torch.Tensor, has_stop: torch.Tensor) -> torch.Tensor:
        """Normalised (``reward_normalization``), clipped (``reward_clip_range``), then the missing-EOS rule: subtract
        ``missing_eos_penalty`` or replace by ``missing_eos_score`` when a response has no EOS / stop token."""
        scores = clip_scores(self.reward_normalizer(raw_scores), self.args.reward_clip_range)
        if self.args.missing_eos_penalty is not None:
            scores = torch.where(has_stop, scores, scores - self.args.missing_eos_penalty)
        if self.args.missing_eos_score is not None:
            scores = torch.where(has_stop, scores, torch.full_like(scores, self.args.missing_eos_score))
        return scores

    def _scale_critic_to_rewards(self) -> bool:
        """A critic copied from the reward model predicts raw scores: put it on the normalised scale (True if done)."""
        normalizer = self.reward_normalizer
        if self.critic is None or not self.args.critic_from_reward_model or not normalizer.fitted:
            return False
        set_value_scale(self.critic, normalizer.mean, normalizer.std)
        return True

    def _in_critic_warmup(self) -> bool:
        """True during the first ``critic_warmup_steps`` optimizer steps (callers check that they are training)."""
        return self.state.global_step < self.args.critic_warmup_steps

    def _ptx_active(self) -> bool:
        return super()._ptx_active() and not self._in_critic_warmup()

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
        if mode == "train" and self._in_critic_warmup():
            return self._critic_warmup_loss(model, inputs, mask)
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

    def _critic_warmup_loss(self, model, inputs, mask):
        """``critic_warmup_steps``: the value loss alone; the policy gets no gradient, so Adam leaves it untouched."""
        _, values, _ = self._policy_logps_and_values(model, inputs, values_only=True)
        vf_loss, vf_stats = clipped_value_loss(
            values, inputs["old_values"], inputs["returns"], mask, self.args.cliprange_value
        )
        check_finite(self, {"value": vf_loss})
        stats = self.accelerator.gather(torch.stack([vf_loss.detach(), vf_stats["clipfrac"]]).unsqueeze(0))
        self._metrics["train"]["loss/value_avg"].append(stats[:, 0].mean().item())
        self._metrics["train"]["val/clipfrac_avg"].append(stats[:, 1].mean().item())
        return self.args.vf_coef * vf_loss / self.current_gradient_accumulation_steps

    def create_optimizer(self, model=None):
        created = self.optimizer is None
        optimizer = super().create_optimizer(model)
        if created and self.args.critic_learning_rate is not None:
            inner = self.critic if self.critic is not None else self._value_model.v_head
            set_critic_learning_rate(optimizer, list(inner.parameters()), self.args.critic_learning_rate)
        return optimizer

    def generate_completions(self, sampling: bool = False) -> list[dict]:
        """TRL 1.12's sample table: near-greedy completions of the eval prompts and their scores (see ``trl112``)."""
        return trl112.generate_completions(self, sampling)

    # ------------------------------------------------------------------------------------------------------------
    # Saving and resuming
    # ------------------------------------------------------------------------------------------------------------

    def _save(self, output_dir: str | None = None, state_dict=None):
        # save_pretrained leaves the value head / critic out (`_keys_to_ignore_on_save`): the folder is a plain
        # causal LM; the value function is saved beside it (value_head/ or value_model/).
        super()._save(output_dir, state_dict=state_dict)
        if self.args.should_save:
            folder = output_dir if output_dir is not None else self.args.output_dir
            if self.critic is not None:
                save_value_model(self.accelerator.unwrap_model(self.model), folder, state_dict=state_dict)
            else:
                save_value_head(self._value_model, folder)

    def _save_checkpoint(self, model, trial):
        super()._save_checkpoint(model, trial)
        if self.reward_normalizer.enabled:
            write_checkpoint_state(self, trial, "reward_normalization", self.reward_normalizer.state_dict())

    def _load_optimizer_and_scheduler(self, checkpoint):
        super()._load_optimizer_and_scheduler(checkpoint)
        if checkpoint is None:
            return
        state = read_checkpoint_state(checkpoint, "reward_normalization")
        if state is not None:
            self.reward_normalizer.load_state_dict(state)
            self._scale_critic_to_rewards()
        if self.critic is None:
            load_value_head(self._value_model, checkpoint)
        elif not self.is_deepspeed_enabled:  # DeepSpeed's own checkpoint already restored the critic
            load_value_model_weights(self._value_model, checkpoint)
