"""A scalar value head on the policy's own trunk, for PPO.

``add_value_head(model)`` attaches ``model.v_head`` (a ``Linear(hidden, 1)``) to a causal LM that already carries
TRL's fused LM head (``trl.trainer.utils.add_fused_lm_head``) and wraps its forward once more:

- ``model(..., fused_lm_head=True, return_values=True)`` returns a :class:`ValueHeadOutput`: TRL's fused output
  (per-token log-probs, entropy, loss) plus ``value_preds``, aligned with ``log_probs``: ``value_preds[:, t]`` is read from
  the hidden state at position ``t``, the state in which token ``t + 1`` is chosen.
- Every other call (generation, the plain forward used for the pretraining loss) is the original forward.

:func:`install_value_forward` is that wrapper with the value source left open (``rlhf_ext.critic`` plugs a separate
critic into it); :func:`add_position_ids` makes the scoring forwards of a left-padded batch use the positions
``generate()`` used. The values travel as a field of the model output, so DDP's unused-parameter search sees them. The head is listed in
``_keys_to_ignore_on_save``: ``save_pretrained`` writes a plain causal LM that loads in transformers and vLLM.
Trainers save the head on its own with :func:`save_value_head` (``value_head/value_head.safetensors``, a subfolder so
that loaders globbing the folder's top-level ``*.safetensors`` never see it) for resuming.
"""

from __future__ import annotations

import functools
import inspect
import os
from dataclasses import dataclass

import torch
from torch import nn
from trl.trainer.utils import FusedCausalLMOutput

VALUE_HEAD_NAME = "v_head"
# In a subfolder: vLLM (and other loaders) glob the top-level *.safetensors of a model folder and would choke on it.
VALUE_HEAD_FILE = os.path.join("value_head", "value_head.safetensors")


@dataclass
class ValueHeadOutput(FusedCausalLMOutput):
    """TRL's ``FusedCausalLMOutput`` plus ``value_preds`` of shape ``(batch, seq_len - 1)``.

    Not called ``values``: a ``ModelOutput`` is a dict, and a ``values`` field would shadow ``dict.values()``, which
    DDP's output flattening calls.
    """

    value_preds: torch.Tensor | None = None


def has_value_head(model: nn.Module) -> bool:
    return isinstance(getattr(model, VALUE_HEAD_NAME, None), nn.Linear)


def add_value_head(model: nn.Module) -> nn.Linear:
    """Attach a zero-initialised scalar value head to ``model`` (a causal LM with TRL's fused LM head)."""
    if has_value_head(model):
        return getattr(model, VALUE_HEAD_NAME)
    hidden_size = model.config.get_text_config().hidden_size
    reference = model.get_output_embeddings().weight
    head = nn.Linear(hidden_size, 1, device=reference.device, dtype=reference.dtype)
    # Zero init: the first value estimates are 0, the critic learns from the first returns without wild targets.
    nn.init.zeros_(head.weight)
    nn.init.zeros_(head.bias)
    setattr(model, VALUE_HEAD_NAME, head)
    ignore = set(getattr(model, "_keys_to_ignore_on_save", None) or [])
    model._keys_to_ignore_on_save = ignore | {f"{VALUE_HEAD_NAME}.weight", f"{VALUE_HEAD_NAME}.bias"}
    backbone = model.base_model

    def trunk_values(self, inner_forward, args, kwargs, values_only, detach_trunk):
        captured = []
        handle = backbone.register_forward_hook(lambda module, inputs, output: captured.append(output[0]))
        try:
            out = inner_forward(*args, **kwargs)
        finally:
            handle.remove()
        hidden = captured[-1][:, :-1] if kwargs.get("shift_labels") is None else captured[-1]
        if detach_trunk:  # critic warm-up: the head learns, the policy's trunk does not
            hidden = hidden.detach()
        head = getattr(self, VALUE_HEAD_NAME)
        return out, head(hidden.to(head.weight.dtype)).squeeze(-1).float()

    install_value_forward(model, trunk_values)
    return head


def install_value_forward(model: nn.Module, values_fn) -> None:
    """Wrap ``model.forward`` (TRL's fused forward) so that it can return values next to the log-probs.

    ``values_fn(model, inner_forward, args, kwargs, values_only, detach_trunk)`` returns ``(fused output or None,
    values)`` with values aligned with ``log_probs``. The wrapped forward takes ``return_values`` (fused output plus
    values), ``values_only`` (values alone, for a critic warm-up that must not run the policy) and ``detach_trunk``;
    while ``model._value_sink`` is a list, every fused call appends its (detached) values to it. Other calls are the
    original forward.
    """
    inner_forward = model.forward  # TRL's fused forward (an instance attribute)
    model._value_sink = None  # a list while a trainer collects values from log-prob passes it does not own

    @functools.wraps(type(model).forward)  # generate() validates its kwargs against this signature
    def forward(
        self, *args, return_values: bool = False, values_only: bool = False, detach_trunk: bool = False, **kwargs
    ):
        collect = self._value_sink is not None and kwargs.get("fused_lm_head", False)
        if not (return_values or values_only or collect):
            return inner_forward(*args, **kwargs)
        if not kwargs.get("fused_lm_head", False):
            raise ValueError("return_values=True needs fused_lm_head=True")
        out, values = values_fn(self, inner_forward, args, kwargs, values_only, detach_trunk)
        if collect:
            self._value_sink.append(values.detach())
        return ValueHeadOutput(**(out or {}), value_preds=values)

    model.forward = forward.__get__(model)


def add_position_ids(model: nn.Module) -> None:
    """Make the fused scoring forwards of ``model`` number a left-padded row's tokens as ``generate()`` did.

    ``generate()`` derives position ids from the attention mask; a forward given none numbers positions 0, 1, 2, ...
    from the first (padding) column. Models with relative positions (RoPE) do not care; models with absolute positions
    (GPT-2) would score a left-padded row at other positions than it was sampled at, so old log-probs, reference
    log-probs, KL and values would differ from the sampler's. Only calls with ``fused_lm_head=True`` (the scoring
    passes) and an attention mask but no position ids are changed; models whose forward takes no ``position_ids``
    are left alone.
    """
    if not takes_position_ids(model):
        return
    inner_forward = model.forward

    @functools.wraps(type(model).forward)
    def forward(self, *args, **kwargs):
        mask = kwargs.get("attention_mask")
        if kwargs.get("fused_lm_head", False) and mask is not None and kwargs.get("position_ids") is None:
            kwargs["position_ids"] = mask_aware_position_ids(mask)
        return inner_forward(*args, **kwargs)

    model.forward = forward.__get__(model)


def takes_position_ids(model: nn.Module) -> bool:
    """Whether ``model``'s forward takes ``position_ids`` (then :func:`add_position_ids` numbers its scoring forwards)."""
    return "position_ids" in inspect.signature(type(model).forward).parameters


def mask_aware_position_ids(attention_mask: torch.Tensor) -> torch.Tensor:
    """Position ids as ``generate()`` computes them: the count of real tokens before each one (1 on padding)."""
    positions = attention_mask.long().cumsum(-1) - 1
    return positions.masked_fill(attention_mask == 0, 1)


def value_head_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    head = getattr(model, VALUE_HEAD_NAME)
    return {f"{VALUE_HEAD_NAME}.{k}": v.detach().cpu().contiguous() for k, v in head.state_dict().items()}


def save_value_head(model: nn.Module, folder: str) -> str:
    """Write the value head alone to ``folder/value_head/value_head.safetensors``."""
    import safetensors.torch

    path = os.path.join(folder, VALUE_HEAD_FILE)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    safetensors.torch.save_file(value_head_state_dict(model), path, metadata={"format": "pt"})
    return path


def load_value_head(model: nn.Module, folder: str) -> bool:
    """Load ``folder/value_head/value_head.safetensors`` into ``model.v_head`` if the file exists; return whether it did."""
    import safetensors.torch

    path = os.path.join(folder, VALUE_HEAD_FILE)
    if not os.path.isfile(path):
        return False
    state = safetensors.torch.load_file(path, device="cpu")
    head = getattr(model, VALUE_HEAD_NAME)
    prefix = f"{VALUE_HEAD_NAME}."
    head.load_state_dict({k[len(prefix) :]: v for k, v in state.items()})
    return True
