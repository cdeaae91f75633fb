"""What makes PPO's rollouts cheap on CPU, each behind a ``PPOConfig`` switch (all on by default).

A PPO step on the offline sentiment setting (SmolLM2-135M with LoRA, 64 episodes of 24 tokens, 2 epochs; profile in
``docs/ppo.md``) spent its time on sampling, a no-grad pass for the rollout's log-probs and values, a no-grad pass for
the reference log-probs, and the policy's forward and backward in the PPO epochs. This module removes what was spent
twice or for nothing:

- ``logprobs_from_sampler``: ``generate()`` already computes the logits of every sampled token, at the state in which
  it was chosen. :class:`SamplerRecorder` hooks the policy during sampling and keeps, per step, the sampled token's
  log-probability at the sampling temperature (``log_softmax(logits / T)``, from the model's raw logits, before any
  logits processor) and, for the value head on the policy trunk, the head's estimate at that state. They are the
  quantities the separate "old log-prob" pass computed, from the same weights; the pass is skipped. Used only when the
  scoring passes run in float32 without autocast and without active dropout (otherwise the two computations are not
  the same quantity); a separate critic still scores the rollout in a pass of its own.
- ``merge_adapters_for_generation``: with an unmerged LoRA adapter every sampled token runs two extra small products
  per adapted layer. :func:`lora_merged` puts ``W + delta`` in place of each adapted float32 base weight for the
  duration of sampling and switches the adapter path off; on exit the original weight tensor itself is put back, so
  nothing is subtracted and the weights are bit-for-bit those before sampling.
- ``compact_lm_head``: the scoring passes project only the response positions through the LM head, see
  :mod:`rlhf_ext.lm_head`.
- ``trim_prompt_padding``: prompts are left-padded to the longest one of the batch, so with short, unequal prompts
  (the sentiment prompts are 3 to 24 tokens, 7.5 on average) a quarter of every scoring pass's tokens was padding.
  :func:`scoring_calls` groups the rows by prompt length and cuts from each group the leading columns that are padding
  in all its rows; each group is one forward call, and the outputs are put back in row order. Padding is masked, and
  the scoring forwards number tokens from the attention mask (:func:`rlhf_ext.value_head.add_position_ids`), so a
  row's numbers do not depend on how much padding precedes it. :func:`trimmed_prefill` does the same for sampling's
  prompt pass, whose cache then feeds the decoding steps of the whole batch.

Equality with the plain computations (to float32 rounding) is pinned in ``tests/test_fast_rollouts.py``.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field

import torch
from torch import nn

__all__ = [
    "FastRolloutOptions",
    "SamplerRecorder",
    "has_active_dropout",
    "in_row_order",
    "lora_merged",
    "mergeable_lora_layers",
    "scoring_calls",
    "trimmed_prefill",
]

# A forward call costs about as much as this many more tokens (Python and per-operation overhead; measured on
# SmolLM2-135M with LoRA on one core: ~45 ms without and ~100 ms with the backward, at 2.6 and 5.1 ms per token):
# scoring_calls splits a group only when that removes more padded tokens than this.
CALL_OVERHEAD_TOKENS = 32


@dataclass
class FastRolloutOptions:
    """``PPOConfig`` switches of the speed-ups (each keeps the numbers; off = the plain computation)."""

    logprobs_from_sampler: bool = field(
        default=True,
        metadata={
            "help": "Take the rollout's log-probs (and the trunk value head's values) from the sampling pass itself "
            "instead of a second no-grad forward. Applies when the policy runs in float32 without autocast and "
            "without active dropout; otherwise the separate pass runs."
        },
    )
    merge_adapters_for_generation: bool = field(
        default=True,
        metadata={
            "help": "Sample with LoRA adapters merged into the (float32) base weights; the original weights are put "
            "back exactly afterwards. Plain LoRA layers only; others sample unmerged."
        },
    )
    compact_lm_head: bool = field(
        default=True,
        metadata={
            "help": "On CPU, the scoring passes project only the response positions through the LM head "
            "(rlhf_ext.lm_head) instead of TRL's fused head, which projects every position there."
        },
    )
    trim_prompt_padding: bool = field(
        default=True,
        metadata={
            "help": "Scoring passes (reference, rollout and PPO forward/backward) and sampling's prompt pass run the "
            "rows in groups of similar prompt length, without the left-padding columns all rows of a group share. "
            "Single process only (under DDP, DeepSpeed or FSDP every process must run the same forward calls), and "
            "only for models whose forward takes position_ids."
        },
    )


# ------------------------------------------------------------------------------------------------------------------
# LoRA merged for sampling
# ------------------------------------------------------------------------------------------------------------------


def has_active_dropout(model: nn.Module) -> bool:
    """True if ``model`` is in training mode and some dropout (a layer, or an attention module's rate) is above 0."""
    if not model.training:
        return False
    for module in model.modules():
        if isinstance(module, nn.Dropout) and module.p > 0:
            return True
        rate = getattr(module, "attention_dropout", None)
        if isinstance(rate, float) and rate > 0:
            return True
    return False


def mergeable_lora_layers(model: nn.Module) -> list | None:
    """The LoRA layers of ``model`` that :func:`lora_merged` folds, or None when it must not touch the model: a
    tuner layer other than plain ``lora.Linear`` (DoRA and other variants, LoRA bias, quantised or sharded weights,
    layers already merged), a base weight that is not float32/float64 (a merge in bf16 would round the adapter's small
    delta away), or active LoRA dropout."""
    from peft.tuners.lora.layer import Linear as LoraLinear
    from peft.tuners.tuners_utils import BaseTunerLayer

    layers = []
    for module in model.modules():
        if not isinstance(module, BaseTunerLayer):
            continue
        if type(module) is not LoraLinear or module.merged:
            return None
        if module.disable_adapters:
            continue  # nothing to fold
        weight = module.get_base_layer().weight
        if weight.dtype not in (torch.float32, torch.float64) or hasattr(weight, "ds_id") or not weight.is_leaf:
            return None
        for name in module.active_adapters:
            if name not in module.lora_A:
                continue
            if name in module.lora_variant or module.lora_bias.get(name, False):
                return None
            dropout = module.lora_dropout[name]
            if module.training and isinstance(dropout, nn.Dropout) and dropout.p > 0:
                return None
        layers.append(module)
    return layers or None


@contextlib.contextmanager
def lora_merged(model: nn.Module):
    """Sample with every plain LoRA adapter folded into its base weight (see the module docstring); yields whether it
    merged. The original weight tensors are restored on exit, even after an error."""
    layers = mergeable_lora_layers(model)
    if not layers:
        yield False
        return
    saved = []
    try:
        with torch.no_grad():
            for layer in layers:
                weight = layer.get_base_layer().weight
                delta = sum(layer.get_delta_weight(name) for name in layer.active_adapters if name in layer.lora_A)
                saved.append((layer, weight, weight.data, layer._disable_adapters))
                weight.data = weight.data + delta.to(weight.dtype)
                layer._disable_adapters = True  # the layer's forward is then its base layer alone
        yield True
    finally:
        for layer, weight, original, disabled in reversed(saved):
            weight.data = original
            layer._disable_adapters = disabled


# ------------------------------------------------------------------------------------------------------------------
# Scoring passes without the prompts' shared left padding
# ------------------------------------------------------------------------------------------------------------------


def scoring_calls(
    attention_mask: torch.Tensor, keep: int, batch_size: int, trim: bool = True, overhead: int | None = None
) -> tuple[list[tuple[torch.Tensor, int]], torch.Tensor | None]:
    """The forward calls of a scoring pass over left-padded prompts followed by ``keep`` completion columns.

    Returns ``(calls, order)``: each call is ``(rows, first column)``, at most ``batch_size`` rows (consecutive chunks
    of the batch, as the plain pass takes them); the caller runs ``ids[rows, first:]``. With ``trim``, each chunk's
    rows are grouped by the number of leading padding columns of their prompt, and a group starts at the first column
    where one of its rows has a token; the grouping minimises the tokens run plus ``overhead`` tokens per call
    (default :data:`CALL_OVERHEAD_TOKENS`), exactly, by dynamic programming over the rows sorted by padding. The last
    prompt column is always kept (it predicts the first completion token). ``order`` puts the concatenated outputs of
    the calls back in row order (:func:`in_row_order`); it is None when no column was cut, and the calls are then the
    plain chunks."""
    n, width = attention_mask.shape
    prompt_width = width - keep
    overhead = CALL_OVERHEAD_TOKENS if overhead is None else overhead
    chunks = [torch.arange(start, min(start + batch_size, n)) for start in range(0, n, batch_size)]
    if not trim or prompt_width < 2:
        return [(rows, 0) for rows in chunks], None
    prompt = attention_mask[:, : prompt_width - 1].bool().cpu()
    # leading padding columns of each row (all of them but the last prompt column when the prompt is empty)
    lead = torch.where(prompt.any(dim=1), prompt.int().argmax(dim=1), prompt_width - 1).tolist()
    calls = []
    for rows in chunks:
        calls += _groups(rows.tolist(), lead, width, overhead)
    if all(first == 0 for _, first in calls):
        return [(rows, 0) for rows in chunks], None
    order = torch.cat([rows for rows, _ in calls]).argsort()
    return calls, order


def _groups(rows: list[int], lead: list[int], width: int, overhead: int) -> list[tuple[torch.Tensor, int]]:
    """Split ``rows`` into contiguous runs of the rows sorted by padding (most first), at least cost."""
    rows = sorted(rows, key=lambda r: -lead[r])  # stable: equal padding keeps the batch order
    pads = [lead[r] for r in rows]
    # best[j]: least cost of the first j sorted rows; a run i..j-1 starts at column pads[j - 1] (its least padding)
    best, cut = [0] + [None] * len(rows), [0] * (len(rows) + 1)
    for j in range(1, len(rows) + 1):
        tokens = width - pads[j - 1]
        best[j], cut[j] = min((best[i] + (j - i) * tokens + overhead, i) for i in range(j))
    groups, j = [], len(rows)
    while j > 0:
        i = cut[j]
        groups.append((torch.tensor(rows[i:j]), pads[j - 1]))
        j = i
    return groups[::-1]


def in_row_order(outputs: list[torch.Tensor], order: torch.Tensor | None) -> torch.Tensor:
    """The outputs of :func:`scoring_calls`' calls (each ``(rows, ...)``), concatenated and back in row order."""
    out = torch.cat(outputs, dim=0)
    return out if order is None else out[order.to(out.device)]


# The per-row tensors of a prompt pass that trimmed_prefill cuts; a pass with any other tensor argument runs as is.
_PREFILL_TENSORS = ("input_ids", "attention_mask", "position_ids")


@contextlib.contextmanager
def trimmed_prefill(model: nn.Module):
    """While active, ``generate()``'s prompt pass on ``model`` (a causal LM) runs in :func:`scoring_calls`' groups of
    rows, each without the padding columns all its rows share, and without the slow path of the LM head on the last
    position. The cache it hands to the decoding steps holds the groups' keys and values at their columns and zeros at
    the cut padding, which the attention mask hides, as it hid the padding's own keys and values.

    Only a text prompt pass on an empty ``DynamicCache`` of plain layers, with position ids from the attention mask
    (``generate()`` passes them), is grouped; every other call (the decoding steps) is the model's own."""
    from transformers import DynamicCache
    from transformers.cache_utils import DynamicLayer

    backbone = model.base_model
    head = model.get_output_embeddings()
    own_forward = backbone.__dict__.get("forward")
    inner = backbone.forward

    def grouped(*args, **kwargs):
        ids, mask, positions = (kwargs.get(k) for k in ("input_ids", "attention_mask", "position_ids"))
        name = "cache" if "cache" in kwargs else "past_key_values"
        cache = kwargs.get(name)
        plain = (
            args
            or ids is None
            or mask is None
            or positions is None
            or mask.shape != ids.shape
            or positions.shape[-2:] != ids.shape
            or any(isinstance(v, torch.Tensor) for k, v in kwargs.items() if k not in _PREFILL_TENSORS)
            or kwargs.get("output_hidden_states")
            or kwargs.get("output_attentions")
            or type(cache) is not DynamicCache
            or cache.get_seq_length() != 0
            or getattr(cache, "offloading", False)
            or any(type(layer) is not DynamicLayer for layer in cache.layers)
        )
        calls, order = (None, None) if plain else scoring_calls(mask, 0, ids.size(0))
        if order is None:
            return inner(*args, **kwargs)
        outputs, caches = [], []
        for rows, first in calls:
            group_cache = DynamicCache(config=backbone.config)
            group = dict(kwargs, input_ids=ids[rows, first:], attention_mask=mask[rows, first:])
            group["position_ids"] = positions[..., rows, first:]
            group[name] = group_cache
            outputs.append(inner(**group))
            caches.append(group_cache)
        first_hidden = outputs[0].last_hidden_state
        hidden = first_hidden.new_zeros(ids.shape + first_hidden.shape[2:])
        for (rows, first), out in zip(calls, outputs, strict=True):
            hidden[rows, first:] = out.last_hidden_state
        for index, layer in enumerate(caches[0].layers):
            keys = layer.keys.new_zeros((ids.size(0), *layer.keys.shape[1:-2], ids.size(1), layer.keys.size(-1)))
            values = layer.values.new_zeros((*keys.shape[:-1], layer.values.size(-1)))
            for (rows, first), group_cache in zip(calls, caches, strict=True):
                keys[rows, ..., first:, :] = group_cache.layers[index].keys
                values[rows, ..., first:, :] = group_cache.layers[index].values
            cache.update(keys, values, index)
        result = outputs[0]
        result["last_hidden_state"] = hidden
        result[name] = cache
        return result

    def contiguous_input(module, args):
        # A slice of the last position is not contiguous; torch.matmul then runs a batched product per row.
        if args and isinstance(args[0], torch.Tensor) and not args[0].is_contiguous():
            return (args[0].contiguous(), *args[1:])
        return None

    backbone.forward = grouped
    handle = head.register_forward_pre_hook(contiguous_input) if head is not None else None
    try:
        yield
    finally:
        if handle is not None:
            handle.remove()
        if own_forward is None:
            del backbone.forward
        else:
            backbone.forward = own_forward


# ------------------------------------------------------------------------------------------------------------------
# The sampler's own log-probs and values
# ------------------------------------------------------------------------------------------------------------------


@dataclass
class SampledScores:
    """The sampled ``tokens`` ``(batch, steps)``, their log-probs and the trunk head's values (or None)."""

    tokens: torch.Tensor
    logps: torch.Tensor
    values: torch.Tensor | None

    def width(self, width: int) -> SampledScores:
        """Cut or zero-pad (right) to ``width`` tokens: a completion tensor may be padded to a multiple."""
        steps = self.tokens.size(1)
        if width <= steps:
            return SampledScores(
                *(None if x is None else x[:, :width] for x in (self.tokens, self.logps, self.values))
            )

        def pad(x):
            return None if x is None else torch.nn.functional.pad(x, (0, width - steps))

        return SampledScores(pad(self.tokens), pad(self.logps), pad(self.values))

    def scores(self, completion_ids: torch.Tensor, completion_mask: torch.Tensor) -> SampledScores | None:
        """These scores at the width of ``completion_ids``, or None unless they are the tokens sampled (the
        completions may have been replaced after sampling): the caller then scores them in a pass of its own."""
        scored = self.width(completion_ids.size(1))
        mask = completion_mask.bool()
        if scored.tokens.shape != completion_ids.shape or not torch.equal(scored.tokens[mask], completion_ids[mask]):
            return None
        return scored


class SamplerRecorder:
    """Records, from ``generate()``'s own forward calls on ``model`` (the causal LM, inside any PEFT wrapper), the
    log-probability of each sampled token at ``temperature`` and, with ``value_head``, the head's value at the hidden
    state that chose it.

    Step ``t``'s forward returns the logits from which token ``t`` is drawn; token ``t`` is the input of step ``t + 1``
    (read by a pre-hook), so each step's log-softmax waits one step for its token; the last one is resolved from the
    completions in :meth:`result`. Use as a context manager around ``generate()``.
    """

    def __init__(self, model: nn.Module, temperature: float, value_head: nn.Module | None = None):
        self.model = model
        self.inv_temperature = 1.0 / temperature
        self.value_head = value_head
        self._handles = []
        self._pending = None  # log-softmax of the last step, waiting for its sampled token
        self._logps, self._tokens, self._values = [], [], []

    def __enter__(self):
        self._handles.append(self.model.register_forward_pre_hook(self._before_step, with_kwargs=True))
        self._handles.append(self.model.register_forward_hook(self._after_step))
        if self.value_head is not None:
            self._handles.append(self.model.base_model.register_forward_hook(self._read_value))
        return self

    def __exit__(self, *exc):
        for handle in self._handles:
            handle.remove()
        self._handles = []
        return False

    def _before_step(self, module, args, kwargs):
        ids = kwargs.get("input_ids", args[0] if args else None)
        if self._pending is not None and ids is not None:
            token = ids[:, -1]
            self._logps.append(self._pending.gather(1, token[:, None]).squeeze(1))
            self._tokens.append(token)
            self._pending = None

    def _after_step(self, module, args, output):
        logits = output.logits[:, -1].float()
        self._pending = torch.log_softmax(logits * self.inv_temperature, dim=-1)

    def _read_value(self, module, args, output):
        hidden = output[0][:, -1]
        head = self.value_head
        self._values.append(head(hidden.to(head.weight.dtype)).squeeze(-1).float())

    def result(self, completion_ids: list[list[int]]) -> SampledScores | None:
        """The recorded scores of GRPO's ``completion_ids`` (the sampled tokens, cut after EOS), which also give the
        last step's tokens; None if nothing consistent was recorded."""
        steps = len(self._logps) + (self._pending is not None)
        if steps == 0 or self._pending is None or len(completion_ids) != self._pending.size(0):
            return None
        if self.value_head is not None and len(self._values) != steps:
            return None
        device = self._pending.device
        last = torch.tensor([ids[steps - 1] if len(ids) == steps else 0 for ids in completion_ids], device=device)
        logps = torch.stack([*self._logps, self._pending.gather(1, last[:, None]).squeeze(1)], dim=1)
        tokens = torch.stack([*self._tokens, last], dim=1)
        values = torch.stack(self._values, dim=1) if self.value_head is not None else None
        return SampledScores(tokens, logps, values)
