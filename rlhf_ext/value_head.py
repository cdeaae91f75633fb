"""A scalar value head on the policy's own trunk, for PPO.

``add_value_head(model)`` attaches ``model.v_head`` (a ``Linear(hidden, 1)``) to a causal LM that already carries
TRL's fused LM head (``trl.trainer.utils.add_fused_lm_head``) and wraps its forward once more:

- ``model(..., fused_lm_head=True, return_values=True)`` returns a :class:`ValueHeadOutput`: TRL's fused output
  (per-token log-probs, entropy, loss) plus ``value_preds``, aligned with ``log_probs``: ``value_preds[:, t]`` is read from
  the hidden state at position ``t``, the state in which token ``t + 1`` is chosen.
- Every other call (generation, the plain forward used for the pretraining loss) is the original forward.

The values travel as a field of the model output, so DDP's unused-parameter search sees them. The head is listed in
``_keys_to_ignore_on_save``: ``save_pretrained`` writes a plain causal LM that loads in transformers and vLLM.
Trainers save the head on its own with :func:`save_value_head` (``value_head/value_head.safetensors``, a subfolder so
that loaders globbing the folder's top-level ``*.safetensors`` never see it) for resuming.
"""

from __future__ import annotations

import functools
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
    inner_forward = model.forward  # TRL's fused forward (an instance attribute)
    model._value_sink = None  # a list while a trainer collects values from log-prob passes it does not own

    @functools.wraps(type(model).forward)  # generate() validates its kwargs against this signature
    def forward(self, *args, return_values: bool = False, **kwargs):
        collect = self._value_sink is not None and kwargs.get("fused_lm_head", False)
        if not (return_values or collect):
            return inner_forward(*args, **kwargs)
        if not kwargs.get("fused_lm_head", False):
            raise ValueError("return_values=True needs fused_lm_head=True")
        captured = []
        handle = backbone.register_forward_hook(lambda module, inputs, output: captured.append(output[0]))
        try:
            out = inner_forward(*args, **kwargs)
        finally:
            handle.remove()
        head = getattr(self, VALUE_HEAD_NAME)
        hidden = captured[-1][:, :-1] if kwargs.get("shift_labels") is None else captured[-1]
        values = head(hidden.to(head.weight.dtype)).squeeze(-1).float()
        if collect:
            self._value_sink.append(values.detach())
        return ValueHeadOutput(**out, value_preds=values)

    model.forward = forward.__get__(model)
    return head


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
