"""Per-token log-probabilities of the labelled positions only: the LM head of PPO's and DPO's passes on CPU.

TRL's fused LM head (``trl.trainer.utils.add_fused_lm_head``) makes ``model(..., labels=labels, fused_lm_head=True)``
return per-token log-probabilities without materialising the ``(batch, seq_len, vocab)`` logits. On devices with Triton
it projects only the positions whose label is not -100; elsewhere, on CPU, it projects every position (prompt and
padding included), folds each vocabulary tile into the log-softmax with a dozen element-wise passes, and in the backward
recomputes the tiles. With SmolLM2's 49k vocabulary and a 576-wide trunk that head was a third of a PPO minibatch's
forward and backward on CPU, and a third to two thirds of a DPO step on TL;DR-shaped pairs (~130 prompt tokens, ~13
summary tokens: one position in eight is scored).

:func:`add_compact_lm_head` wraps that forward. On CPU, a fused call runs the backbone, then projects only the
labelled positions (a PPO batch's response tokens, a DPO batch's completions) through :class:`SelectedLogProbs`: one
matrix product per row chunk, ``logsumexp``, and the softmax kept for the backward when it fits in
``keep_probs_bytes`` (recomputed per chunk otherwise). The output is TRL's ``FusedCausalLMOutput`` with the fields
TRL's fused head fills (``loss``, ``log_probs``, ``entropy``, ``label_mask``, and on request DPO's ``mean_logits`` and
``is_top1``; zeros where the label is -100), so callers cannot tell the two apart; ``tests/test_lm_head.py`` pins
them and the gradients against TRL's head. Calls it does not
cover (no labels, pre-shifted ``shift_labels``, MoE router logits, other devices, ZeRO-3 or FSDP-sharded heads) and
models whose logits are scaled or soft-capped go to TRL's forward unchanged.
"""

from __future__ import annotations

import functools

import torch
from torch import nn

__all__ = ["COMPACT_OUTPUTS", "SelectedLogProbs", "add_compact_lm_head", "plain_logits", "selected_log_probs"]

# Config fields that scale or soft-cap the logits after the LM head (TRL's fused head reads them): models that set
# any keep TRL's forward.
_LOGIT_TRANSFORMS = (
    "final_logit_softcapping",
    "logit_scale",
    "output_multiplier",
    "lm_head_multiplier",
    "logits_scaling",
)
# Logits of one row chunk, in elements (128 MiB of float32); bounds the forward's working memory.
_CHUNK_ELEMENTS = 1 << 25
# The softmax of the scored positions is kept for the backward up to this size; beyond, it is recomputed.
KEEP_PROBS_BYTES = 1 << 30
# Per-token fields of TRL's FusedCausalLMOutput the compact head fills, in SelectedLogProbs' output order.
COMPACT_OUTPUTS = ("log_probs", "entropy", "mean_logits", "is_top1")


def _compute_dtype(hidden: torch.Tensor) -> torch.dtype:
    device = hidden.device.type
    return torch.get_autocast_dtype(device) if torch.is_autocast_enabled(device) else hidden.dtype


def _logits(hidden, weight, bias, inv_temperature, dtype):
    """``(hidden @ weight.T + bias) / T`` in float32 (the product itself in ``dtype``)."""
    z = torch.mm(hidden.to(dtype), weight.to(dtype).t()).float()
    if bias is not None:
        z += bias.float()
    return z.mul_(inv_temperature)


class SelectedLogProbs(torch.autograd.Function):
    """``log softmax(hidden @ weight.T / T)[target]`` and the entropy of that softmax, for ``N`` rows.

    Inputs: ``hidden (N, H)``, ``weight (V, H)``, ``bias (V,)`` or None, ``targets (N,)``, ``temperature``,
    ``keep_probs_bytes``, ``statistics``. Returns ``(log_probs (N,), entropy (N,))`` in float32; the entropy carries no
    gradient. With ``statistics``, also ``mean_logits (N,)`` (the mean of the scaled logits over the vocabulary) and
    ``is_top1 (N,)`` (whether the target is the first most likely token), both without gradient: the fields of TRL's
    fused head that ``trl.DPOTrainer`` logs as ``logits/*`` and ``mean_token_accuracy``.
    """

    @staticmethod
    def forward(ctx, hidden, weight, bias, targets, temperature, keep_probs_bytes=KEEP_PROBS_BYTES, statistics=False):
        n, vocab = hidden.size(0), weight.size(0)
        inv_t = 1.0 / temperature
        dtype = _compute_dtype(hidden)
        rows = max(1, _CHUNK_ELEMENTS // vocab)
        wants_grad = any(ctx.needs_input_grad[:3])
        keep = wants_grad and n * vocab * 4 <= keep_probs_bytes
        probs = hidden.new_empty((n, vocab), dtype=torch.float32) if keep else None
        log_probs = hidden.new_empty(n, dtype=torch.float32)
        entropy = hidden.new_empty(n, dtype=torch.float32)
        if statistics:
            mean_logits = hidden.new_empty(n, dtype=torch.float32)
            is_top1 = hidden.new_empty(n, dtype=torch.bool)
        for start in range(0, n, rows):
            end = min(start + rows, n)
            z = _logits(hidden[start:end], weight, bias, inv_t, dtype)
            if statistics:  # argmax returns the first maximum, as TRL's head counts a tie
                mean_logits[start:end] = z.mean(-1)
                is_top1[start:end] = z.argmax(-1) == targets[start:end]
            lse = torch.logsumexp(z, dim=-1)
            log_probs[start:end] = z.gather(1, targets[start:end, None]).squeeze(1) - lse
            z -= lse[:, None]  # log p
            p = torch.exp(z, out=probs[start:end]) if keep else z.exp()
            entropy[start:end] = -z.mul_(p).sum(-1)  # z is not needed any more
        ctx.inv_t, ctx.dtype, ctx.rows, ctx.has_bias = inv_t, dtype, rows, bias is not None
        ctx.save_for_backward(hidden, weight, bias, targets, probs)
        if not statistics:
            ctx.mark_non_differentiable(entropy)
            return log_probs, entropy
        ctx.mark_non_differentiable(entropy, mean_logits, is_top1)
        return log_probs, entropy, mean_logits, is_top1

    @staticmethod
    def backward(ctx, grad_log_probs, grad_entropy, *_):
        hidden, weight, bias, targets, probs = ctx.saved_tensors
        needs_hidden, needs_weight, needs_bias = ctx.needs_input_grad[:3]
        if grad_log_probs is None:
            return None, None, None, None, None, None, None
        dtype, n = ctx.dtype, hidden.size(0)
        grad_hidden = torch.empty_like(hidden) if needs_hidden else None
        grad_weight = torch.zeros(weight.shape, dtype=torch.float32, device=weight.device) if needs_weight else None
        grad_bias = torch.zeros(weight.size(0), dtype=torch.float32, device=weight.device) if needs_bias else None
        # d log p_target / d z_j = 1[j = target] - p_j, and z = logits / T
        g = grad_log_probs.float() * ctx.inv_t
        for start in range(0, n, ctx.rows):
            end = min(start + ctx.rows, n)
            if probs is not None:
                p = probs[start:end]
            else:
                p = torch.softmax(_logits(hidden[start:end], weight, bias, ctx.inv_t, dtype), dim=-1)
            grad_z = p * -g[start:end, None]
            grad_z[torch.arange(end - start, device=grad_z.device), targets[start:end]] += g[start:end]
            grad_z = grad_z.to(dtype)
            if needs_hidden:
                grad_hidden[start:end] = torch.mm(grad_z, weight.to(dtype)).to(hidden.dtype)
            if needs_weight:
                grad_weight.addmm_(grad_z.t().float(), hidden[start:end].float())
            if needs_bias:
                grad_bias += grad_z.float().sum(0)
        return (
            grad_hidden,
            grad_weight.to(weight.dtype) if needs_weight else None,
            grad_bias.to(bias.dtype) if needs_bias else None,
            None,
            None,
            None,
            None,
        )


def selected_log_probs(hidden, weight, bias, targets, temperature: float = 1.0):
    """Functional form of :class:`SelectedLogProbs`: ``(log_probs, entropy)`` of ``targets`` under the LM head."""
    return SelectedLogProbs.apply(hidden, weight, bias, targets, float(temperature))


def _is_sharded(weight: torch.Tensor) -> bool:
    from torch.distributed.tensor import DTensor

    return isinstance(weight, DTensor) or hasattr(weight, "ds_id")


def plain_logits(model: nn.Module) -> bool:
    """Whether ``model``'s logits are its LM head's output as is (no scaling or soft-capping after it), so that
    :func:`selected_log_probs` on its hidden states gives its log-probabilities."""
    config = model.config.get_text_config()
    return not any(getattr(config, name, None) is not None for name in _LOGIT_TRANSFORMS)


def add_compact_lm_head(
    model: nn.Module, temperature: float, outputs: tuple[str, ...] = ("log_probs", "entropy")
) -> bool:
    """Wrap ``model``'s fused forward (TRL's ``add_fused_lm_head`` must have run) so that fused calls on CPU project only
    the labelled positions. ``outputs`` names the per-token fields of TRL's ``FusedCausalLMOutput`` to fill, as TRL's
    ``add_fused_lm_head`` takes them (``loss``, ``log_probs``, ``entropy`` and ``label_mask`` are always filled).
    Returns False, leaving the model alone, when its logits are scaled or soft-capped or ``outputs`` asks for a field
    outside :data:`COMPACT_OUTPUTS`."""
    from trl.trainer.utils import FusedCausalLMOutput

    config = model.config.get_text_config()
    if not plain_logits(model) or not set(outputs) <= set(COMPACT_OUTPUTS):
        return False
    statistics = bool({"mean_logits", "is_top1"} & set(outputs))
    fused_forward = model.forward  # TRL's, an instance attribute

    @functools.wraps(type(model).forward)  # generate() validates its kwargs against this signature
    def forward(self, *args, fused_lm_head=False, labels=None, shift_labels=None, num_items_in_batch=None, **kwargs):
        head = self.get_output_embeddings()
        covered = (
            fused_lm_head
            and labels is not None
            and shift_labels is None
            and not kwargs.get("output_router_logits", getattr(config, "output_router_logits", False))
            and head.weight.device.type == "cpu"
            and not _is_sharded(head.weight)
        )
        if not covered:
            return fused_forward(
                *args,
                fused_lm_head=fused_lm_head,
                labels=labels,
                shift_labels=shift_labels,
                num_items_in_batch=num_items_in_batch,
                **kwargs,
            )
        kwargs["use_cache"] = False
        hidden = self.base_model(*args, **kwargs).last_hidden_state[:, :-1]
        targets = labels[:, 1:].to(hidden.device)
        mask = targets != -100
        per_token = SelectedLogProbs.apply(
            hidden[mask], head.weight, head.bias, targets[mask], float(temperature), KEEP_PROBS_BYTES, statistics
        )
        # zeros (False) where the label is -100, as in TRL's head
        fields = dict(zip(COMPACT_OUTPUTS, (x.new_zeros(mask.shape).masked_scatter(mask, x) for x in per_token)))
        count = mask.sum().clamp(min=1) if num_items_in_batch is None else num_items_in_batch
        return FusedCausalLMOutput(loss=-fields["log_probs"].sum() / count, label_mask=mask, **fields)

    model.forward = forward.__get__(model)
    return True
