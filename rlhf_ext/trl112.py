"""TRL <= 1.12's ``PPOTrainer`` interface on rlhf_ext's PPO: its config fields and constructor arguments.

TRL 1.13 deleted ``trl.experimental.ppo.PPOTrainer`` (huggingface/trl PR 7020). Its users switch by changing the
import: every ``PPOConfig`` field and constructor argument of TRL 1.12 is accepted here, and either means what it
meant there or raises an error that says what to use instead (docs/ppo.md has the table). This module holds:

- :class:`Trl112Options`, the 1.12 config fields ``rlhf_ext.PPOConfig`` adds to GRPO's, and their translation
  (``num_mini_batches`` into GRPO's minibatching, ``total_episodes`` into ``max_steps``, ``response_length`` into
  ``max_completion_length``, ...);
- the constructor's 1.12 arguments: ``ref_model`` (a model or path; also the fix for in-memory policies, whose
  reference GRPO would reload from a path they do not have), ``reward_model``, ``data_collator``, pre-tokenized
  ``input_ids`` prompt datasets;
- ``generate_completions`` and ``num_sample_generations`` (sample tables during training).
"""

from __future__ import annotations

import copy
import functools
import logging
import math
from dataclasses import dataclass, field

import torch
from torch import nn
from transformers import TrainerCallback

logger = logging.getLogger(__name__)

# TRL 1.12 computed these in the trainer and overwrote whatever the user passed; here they are read-only attributes.
_COMPUTED = ("num_total_batches", "micro_batch_size", "local_batch_size", "batch_size", "local_mini_batch_size")
_COMPUTED_ALL = ("world_size", *_COMPUTED, "mini_batch_size")


@dataclass
class Trl112Options:
    """TRL 1.12 ``PPOConfig`` fields that GRPO's config lacks, with their 1.12 meaning (docs/ppo.md, migration)."""

    total_episodes: int | None = field(
        default=None,
        metadata={
            "help": "TRL 1.12: episodes to train on. Sets max_steps = ceil(total_episodes / episodes per batch) x "
            "num_ppo_epochs x minibatches per batch. None: num_train_epochs passes over the prompts."
        },
    )
    response_length: int | None = field(
        default=None, metadata={"help": "TRL 1.12's name of max_completion_length (response tokens)."}
    )
    num_mini_batches: int | None = field(
        default=None,
        metadata={
            "help": "TRL 1.12: minibatches (optimizer steps) per batch and PPO epoch. A batch is "
            "per_device_train_batch_size x gradient_accumulation_steps episodes per device; sets steps_per_generation "
            "= gradient_accumulation_steps and gradient_accumulation_steps /= num_mini_batches. None = 1."
        },
    )
    local_rollout_forward_batch_size: int | None = field(
        default=None,
        metadata={
            "help": "TRL 1.12: rows per no-grad forward during rollouts (reference, old log-probs and values, "
            "reward model). None: per_device_train_batch_size. Generation itself runs as one batch per process."
        },
    )
    num_sample_generations: int = field(
        default=10,
        metadata={
            "help": "TRL 1.12: how many times during training to print sample completions (near-greedy) of the first "
            "eval_dataset batch with their scores. Needs an eval_dataset; 0 disables."
        },
    )
    stop_token: str | None = field(
        default=None,
        metadata={
            "help": "TRL 1.12: 'eos' stops generation at EOS. rlhf_ext always stops at EOS, so 'eos' and None mean "
            "the same here (1.12's None generated past EOS). Exclusive with stop_token_id.",
            "choices": ["eos"],
        },
    )
    sft_model_path: str | None = field(
        default=None, metadata={"help": "TRL 1.12: the SFT policy; loaded as the policy when `model` is None."}
    )
    reward_model_path: str | None = field(
        default=None,
        metadata={"help": "TRL 1.12: the reward model; used when neither reward_funcs nor reward_model is passed."},
    )
    exp_name: str | None = field(
        default=None, metadata={"help": "TRL <= 0.2x: experiment name; sets run_name when run_name is not set."}
    )
    model_adapter_name: str | None = field(
        default=None, metadata={"help": "TRL 1.12 multi-adapter PEFT: not supported, raises (see ref_adapter_name)."}
    )
    ref_adapter_name: str | None = field(
        default=None,
        metadata={
            "help": "TRL 1.12 multi-adapter PEFT: not supported, raises. Pass ref_model=, or a PeftModel whose "
            "reference adapter is named 'ref' (GRPO's convention)."
        },
    )
    dataset_num_proc: int | None = field(
        default=None, metadata={"help": "Processes for dataset preparation (decoding pre-tokenized prompts)."}
    )

    def _trl112_before_grpo(self) -> None:
        """Translate the 1.12 fields that shape GRPO's batch settings (runs before GRPOConfig.__post_init__)."""
        if self.model_adapter_name is not None or self.ref_adapter_name is not None:
            raise ValueError(
                "`model_adapter_name`/`ref_adapter_name` (TRL 1.12's multi-adapter PEFT) are not supported: pass the "
                "reference as `ref_model=` (a model or path), or a PeftModel whose reference adapter is named 'ref'."
            )
        if self.stop_token is not None and self.stop_token != "eos":
            raise ValueError(f"Unknown `stop_token` {self.stop_token!r}: allowed values are 'eos' and None.")
        if self.stop_token is not None and self.stop_token_id is not None:
            raise ValueError("You cannot set both `stop_token` and `stop_token_id`.")
        if self.exp_name is not None and self.run_name is None:
            self.run_name = self.exp_name
        if self.response_length is not None:
            if self.response_length <= 0:
                raise ValueError(f"`response_length` must be > 0, got {self.response_length!r}.")
            from trl import GRPOConfig

            grpo_default = GRPOConfig.__dataclass_fields__["max_completion_length"].default
            if self.max_completion_length not in (grpo_default, self.response_length):
                raise ValueError(
                    "`response_length` (TRL 1.12) and `max_completion_length` name the same setting: set one of them."
                )
            self.max_completion_length = self.response_length
        if self.local_rollout_forward_batch_size is not None and self.local_rollout_forward_batch_size <= 0:
            raise ValueError(
                f"`local_rollout_forward_batch_size` must be > 0, got {self.local_rollout_forward_batch_size}."
            )
        if self.num_sample_generations < 0:
            raise ValueError(f"`num_sample_generations` must be >= 0, got {self.num_sample_generations}.")
        if self.num_mini_batches is not None:
            minibatches, accumulation = self.num_mini_batches, self.gradient_accumulation_steps
            if minibatches <= 0:
                raise ValueError(f"`num_mini_batches` must be > 0, got {minibatches}.")
            if self.steps_per_generation is not None or self.generation_batch_size is not None:
                raise ValueError(
                    "`num_mini_batches` (TRL 1.12) sets `steps_per_generation`: set one of them, and no "
                    "`generation_batch_size`."
                )
            if accumulation % minibatches:
                raise ValueError(
                    f"`num_mini_batches` ({minibatches}) must divide `gradient_accumulation_steps` ({accumulation}): a "
                    "TRL 1.12 batch is per_device_train_batch_size x gradient_accumulation_steps episodes per device, "
                    "split into num_mini_batches minibatches of whole micro-batches."
                )
            self.steps_per_generation = accumulation
            self.gradient_accumulation_steps = accumulation // minibatches

    def _trl112_after_grpo(self) -> None:
        """Derive ``max_steps`` from ``total_episodes`` and expose TRL 1.12's computed batch sizes."""
        episodes_per_batch = self.generation_batch_size  # prompts x num_generations, all processes
        if self.total_episodes is not None:
            if self.total_episodes <= 0:
                raise ValueError(f"`total_episodes` must be > 0, got {self.total_episodes}.")
            if self.max_steps > 0:
                raise ValueError("Set either `total_episodes` (TRL 1.12) or `max_steps`, not both.")
            batches = math.ceil(self.total_episodes / episodes_per_batch)
            self.max_steps = math.ceil(
                batches * self.steps_per_generation * self.num_iterations / self.gradient_accumulation_steps
            )
        world = self.world_size
        # TRL 1.12's names, for scripts that read them (world_size is TrainingArguments' own property)
        self.local_batch_size = self.per_device_train_batch_size * self.steps_per_generation
        self.batch_size = episodes_per_batch
        self.micro_batch_size = self.per_device_train_batch_size * world
        self.local_mini_batch_size = self.per_device_train_batch_size * self.gradient_accumulation_steps
        self.mini_batch_size = self.local_mini_batch_size * world
        self.num_total_batches = (
            math.ceil(
                self.max_steps * self.gradient_accumulation_steps / (self.steps_per_generation * self.num_iterations)
            )
            if self.max_steps > 0
            else None
        )


def rejects_trl112_computed_fields(cls):
    """Make ``cls(...)`` refuse TRL 1.12's computed batch-size fields with a message (a TypeError otherwise)."""
    dataclass_init = cls.__init__

    @functools.wraps(dataclass_init)
    def __init__(self, *args, **kwargs):
        given = [name for name in _COMPUTED_ALL if name in kwargs]
        if given:
            raise TypeError(
                f"{cls.__name__} does not take {given}: TRL 1.12 computed them from per_device_train_batch_size, "
                "gradient_accumulation_steps, num_mini_batches and the number of processes. Set those; the computed "
                "values are readable after construction (world_size, batch_size, local_batch_size, ...)."
            )
        dataclass_init(self, *args, **kwargs)

    cls.__init__ = __init__
    return cls


# ----------------------------------------------------------------------------------------------------------------
# Constructor arguments
# ----------------------------------------------------------------------------------------------------------------


def reject_positional_call(model) -> None:
    from transformers import TrainingArguments

    if isinstance(model, TrainingArguments):
        raise TypeError(
            "PPOTrainer's first positional argument is the model: pass TRL 1.12's arguments by keyword "
            "(PPOTrainer(args=..., processing_class=..., model=..., ref_model=..., reward_model=..., value_model=..., "
            "train_dataset=...))."
        )


def normalize_arguments(
    args, reward_funcs, reward_model, reward_processing_classes, processing_class, data_collator, train_dataset,
    eval_dataset,
):  # fmt: skip
    """TRL 1.12's constructor arguments in GRPO's terms: ``reward_model`` joins ``reward_funcs`` (or
    ``args.reward_model_path`` when there is none), in-memory reward models get the policy's tokenizer, the collator is
    checked, pre-tokenized prompt datasets get a ``prompt`` column. Returns the reward functions, their tokenizers and
    the two datasets."""
    reward_funcs = collect_reward_funcs(reward_funcs, reward_model, args)
    reward_processing_classes = default_reward_tokenizers(reward_funcs, reward_processing_classes, processing_class)
    check_data_collator(data_collator)
    if processing_class is not None:
        train_dataset = prompts_from_input_ids(train_dataset, processing_class, "train_dataset", args.dataset_num_proc)
        eval_dataset = prompts_from_input_ids(eval_dataset, processing_class, "eval_dataset", args.dataset_num_proc)
    return reward_funcs, reward_processing_classes, train_dataset, eval_dataset


def collect_reward_funcs(reward_funcs, reward_model, args) -> list:
    """``reward_funcs`` (GRPO's) plus TRL 1.12's ``reward_model``; ``args.reward_model_path`` when both are None."""
    funcs = [] if reward_funcs is None else list(reward_funcs) if isinstance(reward_funcs, list) else [reward_funcs]
    if reward_model is not None:
        funcs.append(reward_model)
    if not funcs and args.reward_model_path:
        funcs.append(args.reward_model_path)
    return funcs


def default_reward_tokenizers(reward_funcs: list, reward_processing_classes, processing_class):
    """TRL 1.12 scored reward models with the policy's tokenizer; GRPO loads one from the model's path, which an
    in-memory model lacks. Reward models without a path get the policy's tokenizer; the rest keep GRPO's rule."""
    if reward_processing_classes is not None:
        return reward_processing_classes
    classes = []
    for func in reward_funcs:
        path = getattr(getattr(func, "config", None), "_name_or_path", None) if isinstance(func, nn.Module) else "-"
        classes.append(processing_class if isinstance(func, nn.Module) and not path else None)
    return classes if any(c is not None for c in classes) else None


def check_data_collator(data_collator) -> None:
    """TRL 1.12's collator padded the pre-tokenized prompts; PPO batches prompts itself and pads them on the left."""
    from transformers import DataCollatorWithPadding

    if data_collator is not None and not isinstance(data_collator, DataCollatorWithPadding):
        raise ValueError(
            "PPOTrainer batches and pads prompts itself (left padding); `data_collator` may only be a "
            f"DataCollatorWithPadding (TRL 1.12's default), got {type(data_collator).__name__}. Pre-process the "
            "dataset instead."
        )


def prompts_from_input_ids(dataset, tokenizer, name: str, num_proc: int | None = None):
    """A TRL 1.12 prompt dataset (pre-tokenized ``input_ids``, no ``prompt``) gets a decoded ``prompt`` column for the
    reward functions and logs; the ``input_ids`` stay and are what the policy is prompted with."""
    columns = getattr(dataset, "column_names", None)
    if dataset is None or columns is None or "prompt" in columns or "input_ids" not in columns:
        return dataset
    for i, ids in enumerate(dataset["input_ids"]):
        if (
            not isinstance(ids, list)
            or not ids
            or not all(isinstance(t, int) and not isinstance(t, bool) for t in ids)
        ):
            raise ValueError(f"{name} row {i}: `input_ids` must be a non-empty list of token ids, got {ids!r:.80}.")
    pad = tokenizer.pad_token_id

    def decode(row):
        ids = list(row["input_ids"])
        while ids and ids[0] == pad:  # left padding of an already padded dataset
            ids.pop(0)
        return {"input_ids": ids, "prompt": tokenizer.decode(ids, skip_special_tokens=True)}

    return dataset.map(decode, num_proc=num_proc, desc=f"Decoding pre-tokenized {name} prompts")


# ----------------------------------------------------------------------------------------------------------------
# The reference model
# ----------------------------------------------------------------------------------------------------------------


def _is_partitioned(model: nn.Module) -> bool:
    return any(hasattr(p, "ds_id") for p in model.parameters())


def build_reference(model, ref_model, args, peft_config):
    """The reference model rlhf_ext builds itself, or None to leave it to GRPO.

    GRPO makes the reference by reloading ``model.config._name_or_path``: a policy built in memory has no path
    (``OSError: Repo id must use alphanumeric chars ... ''``), and a policy trained in memory since it was loaded would
    be compared with its old weights. So the reference is ``ref_model`` when given (an object or a path), else a copy
    of the policy object as passed. A policy given as a path and PEFT policies (the reference is the adapter-free
    model) keep GRPO's rule. ``kl_coef = 0`` needs no reference.
    """
    from accelerate.utils import is_peft_model

    if ref_model is not None and ref_model is model:
        raise ValueError(
            "`model` and `ref_model` cannot be the same object: pass a copy, or leave `ref_model` None and the "
            "trainer copies the policy (with PEFT the reference is the model with its adapter disabled)."
        )
    needs_reference = args.kl_coef > 0 or args.kl_target is not None
    if not needs_reference:
        if ref_model is not None:
            logger.warning("`ref_model` is not used: kl_coef is 0, so no KL penalty is computed.")
        return None
    if ref_model is not None:
        if isinstance(ref_model, str):
            from trl.trainer.utils import create_model_from_path

            kwargs = dict(args.model_init_kwargs or {})
            kwargs.setdefault("trust_remote_code", args.trust_remote_code)
            if args.distributed_state.distributed_type in ("MULTI_GPU", "DEEPSPEED"):
                kwargs["device_map"] = None
            return create_model_from_path(ref_model, **kwargs)
        return ref_model
    if isinstance(model, str) or peft_config is not None or is_peft_model(model):
        return None
    if _is_partitioned(model):
        raise ValueError(
            "The policy's parameters are already partitioned by DeepSpeed ZeRO-3, so it cannot be copied into a "
            "reference model: pass `ref_model=` (a model or path), or the policy as a path."
        )
    reference = copy.deepcopy(model)
    reference.eval()
    reference.requires_grad_(False)
    return reference


def attach_reference(trainer, reference) -> None:
    """Give ``trainer`` (a GRPOTrainer built with beta = 0, so without a reference) the reference model, prepared as
    GRPO prepares its own: dropout off, fused log-prob head at the sampling temperature, accelerate/DeepSpeed/FSDP."""
    from trl.models.utils import prepare_deepspeed, prepare_fsdp
    from trl.trainer.callbacks import SyncRefModelCallback
    from trl.trainer.utils import add_fused_lm_head, disable_dropout_in_model

    args = trainer.args
    if args.cast_lm_head_to_fp32:
        raise ValueError("`cast_lm_head_to_fp32=True` is not supported with a reference model passed as `ref_model`.")
    reference.requires_grad_(False)
    if args.disable_dropout:
        disable_dropout_in_model(reference)
    add_fused_lm_head(reference, temperature=trainer.temperature)
    if trainer.is_deepspeed_enabled:
        reference = prepare_deepspeed(reference, trainer.accelerator)
    elif trainer.is_fsdp_enabled:
        reference = prepare_fsdp(reference, trainer.accelerator)
    else:
        reference = trainer.accelerator.prepare_model(reference, evaluation_mode=True)
    trainer.ref_model = reference
    trainer.beta = args.beta
    if args.sync_ref_model:
        trainer.add_callback(SyncRefModelCallback(ref_model=reference, accelerator=trainer.accelerator))


# ----------------------------------------------------------------------------------------------------------------
# Sample tables: generate_completions and num_sample_generations
# ----------------------------------------------------------------------------------------------------------------


@torch.no_grad()
def generate_completions(trainer, sampling: bool = False) -> list[dict]:
    """TRL 1.12's ``generate_completions``: near-greedy completions (temperature 0.01) of the eval prompts with their
    scores, printed as a table on the main process (the first 5 rows) and returned as a list of rows. ``sampling=True``
    stops after the first batch. Does nothing (returns []) without an eval_dataset."""
    from accelerate.utils import gather_object
    from trl.models.utils import unwrap_model_for_generation

    dataset = trainer.eval_dataset
    if dataset is None or isinstance(dataset, dict):
        return []
    tok = trainer.processing_class
    world, rank = trainer.accelerator.num_processes, trainer.accelerator.process_index
    per_rank = min(trainer.args.per_device_eval_batch_size, len(dataset) // world)
    if per_rank == 0:
        return []
    rows = []
    was_training = trainer.model.training
    trainer.model.eval()
    try:
        for start in range(0, len(dataset) - per_rank * world + 1, per_rank * world):  # whole batches, as 1.12
            batch = dataset.select(range(start + rank * per_rank, start + (rank + 1) * per_rank))
            examples = list(batch)
            prompts = [x["prompt"] for x in examples]
            trainer._batch_prompt_ids = (
                [x["input_ids"] for x in examples] if "input_ids" in batch.column_names else None
            )
            prompt_ids, _, _ = trainer._tokenize_prompts(prompts)
            trainer._batch_prompt_ids = None
            width = max(len(p) for p in prompt_ids)
            enc = tok.pad({"input_ids": prompt_ids}, padding_side="left", return_tensors="pt")
            with unwrap_model_for_generation(
                trainer.model_wrapped,
                trainer.accelerator,
                gather_deepspeed3_params=trainer.args.ds3_gather_for_generation,
            ) as unwrapped:
                out = unwrapped.generate(
                    input_ids=enc["input_ids"].to(trainer.accelerator.device),
                    attention_mask=enc["attention_mask"].to(trainer.accelerator.device),
                    max_new_tokens=trainer.max_completion_length,
                    do_sample=True,
                    temperature=0.01,
                    top_k=0,
                    top_p=1.0,
                    eos_token_id=trainer.eos_token_ids,
                    pad_token_id=tok.pad_token_id,
                )
            completion_ids = []
            for seq in out[:, width:].tolist():
                cut = next((i + 1 for i, t in enumerate(seq) if t in trainer.eos_token_ids), len(seq))
                completion_ids.append(seq[:cut])
            completions = tok.batch_decode(completion_ids, skip_special_tokens=True)
            rewards = trainer._calculate_rewards(examples, prompts, completions, completion_ids)
            scores = (rewards * trainer.reward_weights.to(rewards.device).unsqueeze(0)).nansum(dim=1).tolist()
            texts = gather_object([(p, c) for p, c in zip(prompts, completions, strict=True)])
            rows.extend({"query": p, "model response": c, "score": s} for (p, c), s in zip(texts, scores, strict=True))
            if sampling:
                break
    finally:
        trainer.model.train(was_training)
    if trainer.accelerator.is_main_process and rows:
        lines = [f"{r['score']:+.3f}  {r['query']!r} -> {r['model response']!r}" for r in rows[:5]]
        logger.info("Sample completions at step %d:\n%s", trainer.state.global_step, "\n".join(lines))
    return rows


class SampleGenerationsCallback(TrainerCallback):
    """Calls ``trainer.generate_completions(sampling=True)`` ``num_sample_generations`` times, evenly over training."""

    def __init__(self, trainer):
        self.trainer = trainer

    def on_step_end(self, args, state, control, **kwargs):
        every = max(1, state.max_steps // args.num_sample_generations)
        if (state.global_step - 1) % every == 0:
            self.trainer.generate_completions(sampling=True)
        return control
