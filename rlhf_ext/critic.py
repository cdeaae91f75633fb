"""A separate critic for PPO: a value model with a trunk of its own, as the reference PPOs for RLHF train one.

TRL 1.12's ``ppo_tldr.py`` and Huang et al. 2024 (summarize_from_feedback_details) load the critic from the reward
model; DeepSpeed-Chat, OpenRLHF and verl also keep a separate critic. (Ziegler et al.'s released code,
lm-human-preferences, put the value head on the policy trunk, which :mod:`rlhf_ext.value_head` does: the
memory-light choice.) Here the critic is a ``num_labels=1`` sequence classifier of a *decoder* model with a ``score``
head (``AutoModelForSequenceClassification`` of Llama, GPT-2, GPT-NeoX, Qwen, ...) on the policy's vocabulary:

- built from an object or a path (:func:`load_value_model`; a fresh head is zero-initialised, like the trunk head),
  or copied from the reward model (``critic_from_reward_model=True``, :func:`critic_from_reward_model`);
- attached to the policy as the submodule ``value_model`` (:func:`attach_value_model`), so that one optimizer, DDP and
  DeepSpeed (ZeRO-2/3) see its parameters; its keys are left out of the policy's ``save_pretrained``;
- read per token (:func:`token_values`): ``V(s_t)`` for response token ``t`` is the ``score`` head on the critic's
  hidden state at the token before it, the state in which token ``t`` is chosen; a critic copied from the reward
  model thus predicts at step 0 the reward model's score of the prompt and the first ``t`` response tokens (of the
  policy's token ids, read at their last token), put on the normalised scale when rewards are normalised
  (``config.rlhf_ext_value_offset`` / ``rlhf_ext_value_scale``);
- saved as a plain model folder ``value_model/`` inside checkpoints and exports, beside the policy's files
  (:func:`save_value_model`, :func:`load_value_model_weights`).

``critic_warmup_steps`` trains the critic alone first: during those optimizer steps the policy is not run in the loss
(a trunk head reads detached hidden states), so it gets no gradient and Adam leaves it untouched; no pretraining
batch is drawn and the KL controller does not move.
"""

from __future__ import annotations

import copy
import logging
import os
from dataclasses import dataclass, field

import torch
from torch import nn

from .value_head import install_value_forward

logger = logging.getLogger(__name__)

VALUE_MODEL_NAME = "value_model"  # the critic's attribute on the policy
VALUE_MODEL_DIR = "value_model"  # its folder in checkpoints and exports
OFFSET, SCALE = "rlhf_ext_value_offset", "rlhf_ext_value_scale"


@dataclass
class CriticOptions:
    """``PPOConfig`` options of the critic (the value function)."""

    value_model_path: str | None = field(
        default=None,
        metadata={
            "help": "A separate critic: folder or Hub id of a decoder model on the policy's vocabulary, loaded as a "
            "num_labels=1 sequence classifier (a missing score head starts at zero). None (and no value_model "
            "passed, no critic_from_reward_model): a value head on the policy trunk."
        },
    )
    critic_from_reward_model: bool = field(
        default=False,
        metadata={
            "help": "A separate critic copied from the reward model (TRL 1.12's ppo_tldr.py, Huang et al. 2024). "
            "Needs one reward model that is a decoder on the policy's vocabulary."
        },
    )
    critic_learning_rate: float | None = field(
        default=None,
        metadata={
            "help": "Learning rate of the value function's parameters (the critic, or the trunk head); None: "
            "learning_rate. Useful when the policy trains LoRA adapters and the critic all its weights (OpenRLHF "
            "keeps a critic_learning_rate too)."
        },
    )
    critic_warmup_steps: int = field(
        default=0,
        metadata={
            "help": "Optimizer steps at the start during which only the critic learns (policy frozen, no ptx, KL "
            "coefficient held). 0 = none."
        },
    )

    def _critic_post_init(self) -> None:
        if self.critic_learning_rate is not None and not self.critic_learning_rate > 0:
            raise ValueError(f"`critic_learning_rate` must be > 0, got {self.critic_learning_rate!r}.")
        if self.critic_warmup_steps < 0:
            raise ValueError(f"`critic_warmup_steps` must be >= 0, got {self.critic_warmup_steps}.")
        if self.value_model_path is not None and self.critic_from_reward_model:
            raise ValueError("Set either `value_model_path` or `critic_from_reward_model`, not both.")
        if self.critic_warmup_steps > 0:
            # The policy gets no gradient during warm-up: DDP must not expect one from every parameter.
            if self.ddp_find_unused_parameters is False:
                raise ValueError(
                    "`critic_warmup_steps` > 0 leaves the policy without gradients for a while, which DDP allows only "
                    "with `ddp_find_unused_parameters=True` (set it, or leave it None)."
                )
            self.ddp_find_unused_parameters = True


def _score_head(model: nn.Module):
    head = getattr(model, "score", None)
    return head if isinstance(head, nn.Linear) else None


def validate_value_model(model: nn.Module, tokenizer=None, name: str = "value_model") -> None:
    """A critic must be a decoder sequence classifier with a scalar ``score`` head covering the policy's tokens."""
    config = getattr(model, "config", None)
    if config is None or not hasattr(model, "base_model_prefix"):
        raise ValueError(f"`{name}` must be a transformers sequence classifier, got {type(model).__name__}.")
    if getattr(config, "num_labels", 1) != 1:
        raise ValueError(f"`{name}` must have a scalar head (num_labels=1); it has num_labels={config.num_labels}.")
    head = _score_head(model)
    if head is None or head.out_features != 1:
        raise ValueError(
            f"`{name}` ({type(model).__name__}) has no scalar `score` head reading every position. The critic "
            "predicts a value at every response token, so it must be a decoder (causal) model such as "
            "AutoModelForSequenceClassification of Llama, GPT-2, GPT-NeoX or Qwen; an encoder (BERT, MiniLM) sees the "
            "tokens after each position. Use a decoder critic (e.g. value_model_path=<the SFT policy's folder>) or "
            "the value head on the policy trunk."
        )
    if tokenizer is not None:
        rows = model.get_input_embeddings().weight.shape[0]
        if hasattr(model.get_input_embeddings().weight, "ds_shape"):
            rows = model.get_input_embeddings().weight.ds_shape[0]
        if rows < len(tokenizer):
            raise ValueError(
                f"`{name}` has {rows} embedding rows but the policy's tokenizer has {len(tokenizer)} tokens: the critic "
                "reads the policy's token ids, so it must share the policy's vocabulary."
            )


def load_value_model(path: str, **init_kwargs) -> nn.Module:
    """A critic from ``path``: ``AutoModelForSequenceClassification`` with one label; a new head is zero-initialised."""
    from transformers import AutoModelForSequenceClassification

    model, info = AutoModelForSequenceClassification.from_pretrained(
        path, num_labels=1, output_loading_info=True, **init_kwargs
    )
    head = _score_head(model)
    if head is not None and any(k.startswith("score.") for k in info.get("missing_keys", [])):
        with torch.no_grad():  # a fresh head predicts 0 everywhere, like the trunk head
            head.weight.zero_()
            if head.bias is not None:
                head.bias.zero_()
    return model


def _same_vocabulary(a, b) -> bool:
    try:
        return a.get_vocab() == b.get_vocab()
    except (AttributeError, NotImplementedError):
        return len(a) == len(b)


def critic_from_reward_model(reward_funcs: list, reward_processing_classes, tokenizer, init_kwargs: dict) -> nn.Module:
    """A copy of the one reward model among ``reward_funcs`` (a fresh load when it is a path), checked to read the
    policy's token ids."""
    from transformers import AutoTokenizer

    candidates = [i for i, f in enumerate(reward_funcs) if isinstance(f, (str, nn.Module))]
    if len(candidates) != 1:
        raise ValueError(
            "`critic_from_reward_model=True` needs exactly one reward model among the reward functions; found "
            f"{len(candidates)}. Pass the critic as `value_model=` or `value_model_path=` instead."
        )
    index = candidates[0]
    reward = reward_funcs[index]
    if isinstance(reward, str):
        critic = load_value_model(reward, **init_kwargs)
        reward_tokenizer = AutoTokenizer.from_pretrained(reward)
    else:
        if any(hasattr(p, "ds_id") for p in reward.parameters()):
            raise ValueError(
                "The reward model is partitioned by DeepSpeed ZeRO-3 and cannot be copied: pass the reward model as a "
                "path, or set `value_model_path` to it."
            )
        critic = copy.deepcopy(reward)
        classes = reward_processing_classes
        classes = classes if isinstance(classes, list) or classes is None else [classes]
        reward_tokenizer = classes[index] if classes and classes[index] is not None else None
        path = getattr(reward.config, "_name_or_path", "")
        if reward_tokenizer is None and path:  # GRPO scores it with the tokenizer saved beside it
            reward_tokenizer = AutoTokenizer.from_pretrained(path)
        reward_tokenizer = reward_tokenizer or tokenizer
    critic.requires_grad_(True)
    validate_value_model(critic, tokenizer, name="the reward model (critic_from_reward_model)")
    if not _same_vocabulary(reward_tokenizer, tokenizer):
        raise ValueError(
            "`critic_from_reward_model=True`: the reward model's tokenizer differs from the policy's, so a copy of it "
            "cannot read the policy's token ids. Pass a critic on the policy's vocabulary (`value_model_path`)."
        )
    return critic


def build_value_model(value_model, args, reward_funcs, reward_processing_classes, tokenizer) -> nn.Module | None:
    """The separate critic the trainer's arguments ask for, or None for the trunk head."""
    init_kwargs = {k: v for k, v in (args.model_init_kwargs or {}).items() if k in ("dtype", "revision")}
    if value_model is not None and (args.value_model_path or args.critic_from_reward_model):
        raise ValueError("Pass the critic once: `value_model=`, or `value_model_path`/`critic_from_reward_model`.")
    if isinstance(value_model, str):
        value_model = load_value_model(value_model, **init_kwargs)
    elif value_model is None and args.value_model_path:
        value_model = load_value_model(args.value_model_path, **init_kwargs)
    elif value_model is None and args.critic_from_reward_model:
        value_model = critic_from_reward_model(reward_funcs, reward_processing_classes, tokenizer, init_kwargs)
    if value_model is not None:
        validate_value_model(value_model, tokenizer)
    return value_model


def check_optimizer_holds(value_model: nn.Module, optimizer) -> None:
    """A user-built optimizer must hold the critic's parameters too (None: the trainer builds one over all)."""
    if optimizer is None:
        return
    held = {id(p) for group in optimizer.param_groups for p in group["params"]}
    if not all(id(p) in held for p in value_model.parameters()):
        raise ValueError(
            "The optimizer passed in `optimizers` does not hold the critic's parameters: build it over the policy's "
            "and the value model's parameters (as TRL 1.12's policy-and-value wrapper did), or let the trainer create "
            "it."
        )


def set_critic_learning_rate(optimizer, value_params, lr: float) -> None:
    """Move ``value_params`` out of ``optimizer``'s param groups into groups of their own with learning rate ``lr``
    (each keeps its group's other options, e.g. weight decay). Call before the LR scheduler is built."""
    ids = {id(p) for p in value_params}
    for group in list(optimizer.param_groups):
        mine = [p for p in group["params"] if id(p) in ids]
        if not mine:
            continue
        group["params"] = [p for p in group["params"] if id(p) not in ids]
        optimizer.add_param_group({**{k: v for k, v in group.items() if k != "params"}, "params": mine, "lr": lr})
    optimizer.param_groups[:] = [g for g in optimizer.param_groups if g["params"]]


def attach_value_model(policy: nn.Module, value_model: nn.Module) -> None:
    """Make ``value_model`` the submodule ``policy.value_model`` and the source of ``policy``'s values."""
    reference = policy.get_output_embeddings().weight
    if not any(hasattr(p, "ds_id") for p in value_model.parameters()):
        value_model.to(reference.device)
    value_model.requires_grad_(True)
    setattr(policy, VALUE_MODEL_NAME, value_model)
    ignore = set(getattr(policy, "_keys_to_ignore_on_save", None) or [])
    policy._keys_to_ignore_on_save = ignore | {f"{VALUE_MODEL_NAME}.{k}" for k in value_model.state_dict()}

    def critic_values(self, inner_forward, args, kwargs, values_only, detach_trunk):
        out = None if values_only else inner_forward(*args, **kwargs)
        values = token_values(
            getattr(self, VALUE_MODEL_NAME), kwargs["input_ids"], kwargs["attention_mask"], kwargs.get("position_ids")
        )
        return out, (values[:, :-1] if kwargs.get("shift_labels") is None else values)

    install_value_forward(policy, critic_values)


def token_values(value_model: nn.Module, input_ids, attention_mask, position_ids=None) -> torch.Tensor:
    """``(batch, seq_len)`` values: the critic's score head at every position, on the normalised scale if set."""
    backbone = getattr(value_model, value_model.base_model_prefix)
    inputs = {"input_ids": input_ids, "attention_mask": attention_mask, "use_cache": False}
    if position_ids is not None:
        inputs["position_ids"] = position_ids
    hidden = backbone(**inputs).last_hidden_state
    head = value_model.score
    values = head(hidden.to(head.weight.dtype)).squeeze(-1).float()
    offset = getattr(value_model.config, OFFSET, 0.0)
    scale = getattr(value_model.config, SCALE, 1.0)
    return (values - offset) / scale if (offset, scale) != (0.0, 1.0) else values


def set_value_scale(value_model: nn.Module, offset: float, scale: float) -> None:
    """From now on ``token_values`` returns ``(score - offset) / scale`` (kept in the critic's config)."""
    setattr(value_model.config, OFFSET, float(offset))
    setattr(value_model.config, SCALE, float(scale))


def attached_value_model(model: nn.Module) -> nn.Module | None:
    """The critic attached to ``model`` (a policy, possibly inside PEFT's wrapper), or None."""
    from accelerate.utils import is_peft_model

    inner = model.get_base_model() if is_peft_model(model) else model
    return getattr(inner, VALUE_MODEL_NAME, None)


def _prefix(model: nn.Module, value_model: nn.Module) -> str | None:
    for name, module in model.named_modules():
        if module is value_model:
            return f"{name}."
    return None


def save_value_model(model: nn.Module, folder: str, state_dict: dict | None = None) -> str | None:
    """Write ``model``'s critic to ``folder/value_model`` (config + safetensors) and return the path; None without a
    critic. ``state_dict`` (a full state dict of ``model``, as DeepSpeed gathers it) is used when given."""
    value_model = attached_value_model(model)
    if value_model is None:
        return None
    path = os.path.join(folder, VALUE_MODEL_DIR)
    own_state = None
    if state_dict:
        prefix = _prefix(model, value_model)
        own_state = {k[len(prefix) :]: v for k, v in state_dict.items() if prefix and k.startswith(prefix)}
        own_state = own_state or None
    value_model.save_pretrained(path, state_dict=own_state, safe_serialization=True)
    return path


def load_value_model_weights(model: nn.Module, folder: str) -> bool:
    """Load ``folder/value_model``'s weights and value scale into ``model``'s critic; False if there is none."""
    import json

    import safetensors.torch

    value_model = attached_value_model(model)
    path = os.path.join(folder, VALUE_MODEL_DIR)
    weights = os.path.join(path, "model.safetensors")
    if value_model is None or not os.path.isfile(weights):
        return False
    value_model.load_state_dict(safetensors.torch.load_file(weights, device="cpu"))
    with open(os.path.join(path, "config.json")) as f:
        config = json.load(f)
    set_value_scale(value_model, config.get(OFFSET, 0.0), config.get(SCALE, 1.0))
    return True
