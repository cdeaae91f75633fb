"""Preference losses of rlhf_ext as pure functions of tensors (no trainer, no model).

Each function takes per-example tensors and returns per-example losses (reduce them yourself), works in
float32 or float64 (lower precisions are upcast to float32) and is differentiable with finite values *and*
finite gradients over its whole documented input domain. Functions are independent of each other: add new ones
below with their own docstring and tests in ``tests/test_losses.py``.

- :func:`odds_ratio_loss`: ORPO's odds-ratio term (Hong et al. 2024), with :func:`log_odds`.
- PPO's pieces (Schulman et al. 2017, 2016; Ziegler et al. 2019): :func:`kl_penalty` (per-token k1/k3 KL
  estimates), :func:`gae`, :func:`whiten`, :func:`clipped_policy_loss`, :func:`clipped_value_loss`, with the masked
  reductions :func:`masked_mean` and :func:`masked_var`. These work on (batch, tokens) tensors with a 0/1 mask.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

__all__ = [
    "ODDS_RATIO_EPS",
    "ODDS_RATIO_MIN_LOGP",
    "clipped_policy_loss",
    "clipped_value_loss",
    "gae",
    "kl_penalty",
    "log_odds",
    "masked_mean",
    "odds_ratio_eps",
    "masked_var",
    "odds_ratio_loss",
    "whiten",
]

#: Float32 mean log-probabilities are clamped to at most ``-ODDS_RATIO_EPS`` before ``log(1 - p)`` is taken.
#: At ``logp = 0`` (p = 1) the odds are infinite, and float32 log-softmax rounds a confident token to exactly 0
#: (its resolution near 0 is about 6e-8), so the clamp must sit above that floor. With 1e-6 a completion's
#: log-odds are capped at log((1 - eps) / eps) ~= 13.8 nats and d(log odds)/d(logp) = 1 / (1 - p) at ~= 1e6;
#: below the cap the value and gradient are the exact ones. Above it (logp in (-1e-6, 0]) the gradient is 0,
#: which is also what float32 softmax gives there (a saturated token has no gradient). Other dtypes get the same
#: margin over their own resolution (:func:`odds_ratio_eps`): float64 is clamped at about -1.9e-15, not -1e-6.
ODDS_RATIO_EPS = 1e-6
#: Mean log-probabilities are clamped to at least this (a per-token probability of e^-10000, far below anything a
#: softmax over finite logits yields) so that ``-inf`` from a masked-out vocabulary entry gives a finite loss.
ODDS_RATIO_MIN_LOGP = -1e4

_LN2 = math.log(2.0)


def odds_ratio_eps(dtype: torch.dtype) -> float:
    """The default clamp of :func:`log_odds` for log-probabilities of ``dtype``.

    :data:`ODDS_RATIO_EPS` (1e-6) for float32 and for lower precisions (computed in float32); for wider dtypes the
    same multiple of the machine epsilon, so float64 keeps its extra exactness near 0 (about 1.9e-15).
    """
    dtype = torch.promote_types(dtype, torch.float32)
    if dtype == torch.float32:
        return ODDS_RATIO_EPS
    return ODDS_RATIO_EPS * torch.finfo(dtype).eps / torch.finfo(torch.float32).eps


def log_odds(logps: torch.Tensor, eps: float | None = None) -> torch.Tensor:
    """``log(p / (1 - p))`` for ``p = exp(logps)``, elementwise, finite with a finite gradient for any ``logps <= 0``.

    ``logps`` are clamped to ``[ODDS_RATIO_MIN_LOGP, -eps]``; ``eps=None`` takes :func:`odds_ratio_eps` of their
    dtype (1e-6 for float32). ``log(1 - exp(x))`` is computed as
    ``log(-expm1(x))`` for ``x > -ln 2`` and ``log1p(-exp(x))`` below (Maechler 2012), and each branch of the
    ``where`` only ever sees inputs that are safe for it, so neither branch can put a NaN into the gradient.
    """
    eps = odds_ratio_eps(logps.dtype) if eps is None else eps
    if eps <= 0:
        raise ValueError(f"eps must be positive, got {eps}.")
    dtype = torch.promote_types(logps.dtype, torch.float32)
    x = logps.to(dtype).clamp(min=ODDS_RATIO_MIN_LOGP, max=-eps)
    near_zero = x > -_LN2
    x_near = torch.where(near_zero, x, torch.full_like(x, -_LN2))
    x_far = torch.where(near_zero, torch.full_like(x, -_LN2), x)
    log1mexp = torch.where(near_zero, torch.log(-torch.expm1(x_near)), torch.log1p(-torch.exp(x_far)))
    return x - log1mexp


def odds_ratio_loss(
    chosen_logps: torch.Tensor, rejected_logps: torch.Tensor, eps: float | None = None
) -> torch.Tensor:
    """ORPO's odds-ratio loss per example: ``-log sigmoid(log odds(y_w|x) - log odds(y_l|x))``.

    Args:
        chosen_logps: 1-D tensor of length-normalised (mean per completion token) log-probabilities of the
            preferred completions, ``<= 0``.
        rejected_logps: the same for the dispreferred completions, same shape.
        eps: log-probabilities are clamped to at most ``-eps``; None (default) takes :func:`odds_ratio_eps` of the
            inputs' dtype: 1e-6 for float32 (see :data:`ODDS_RATIO_EPS`), about 1.9e-15 for float64.

    Returns:
        1-D tensor of non-negative per-example losses (float32, or float64 for float64 inputs). Multiply by
        ORPO's lambda (``beta`` in TRL) and average yourself. Equals TRL's ``-ORPOTrainer.odds_ratio_loss(...)[0] /
        beta`` wherever that is finite and both log-probabilities are at most ``-eps``, and stays finite (value and
        gradient) at ``logps = 0`` and for very negative ``logps``.
    """
    if chosen_logps.shape != rejected_logps.shape:
        raise ValueError(
            f"chosen_logps and rejected_logps must have the same shape, got {tuple(chosen_logps.shape)} and "
            f"{tuple(rejected_logps.shape)}."
        )
    margin = log_odds(chosen_logps, eps) - log_odds(rejected_logps, eps)
    return -F.logsigmoid(margin)


# PPO (Schulman et al. 2017) with GAE (Schulman et al. 2016), as used by Ziegler et al. 2019 and InstructGPT.


def masked_mean(values: torch.Tensor, mask: torch.Tensor, dim: int | None = None) -> torch.Tensor:
    """Mean of ``values`` where ``mask`` is 1 (all of them, or along ``dim``); 0 where nothing is selected."""
    mask = mask.to(values.dtype)
    if dim is None:
        return (values * mask).sum() / mask.sum().clamp(min=1.0)
    return (values * mask).sum(dim) / mask.sum(dim).clamp(min=1.0)


def masked_var(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Unbiased variance of the selected entries (0 when fewer than two are selected)."""
    mean = masked_mean(values, mask)
    count = mask.to(values.dtype).sum()
    if count < 2:
        return torch.zeros((), dtype=values.dtype, device=values.device)
    return ((values - mean) ** 2 * mask).sum() / (count - 1)


def whiten(values: torch.Tensor, mask: torch.Tensor, shift_mean: bool = True, eps: float = 1e-8) -> torch.Tensor:
    """Normalise the selected entries to unit variance (and zero mean if ``shift_mean``); others become 0."""
    mean, var = masked_mean(values, mask), masked_var(values, mask)
    whitened = (values - mean) * torch.rsqrt(var + eps)
    if not shift_mean:
        whitened = whitened + mean
    return whitened * mask.to(values.dtype)


def kl_penalty(logprobs: torch.Tensor, ref_logprobs: torch.Tensor, estimator: str = "k1") -> torch.Tensor:
    """Per-token estimate of KL(pi || pi_ref) from log-probs of tokens sampled from pi.

    ``k1`` = log pi - log pi_ref (unbiased, can be negative per token); ``k3`` = r - 1 - log r with
    r = pi_ref / pi (unbiased and always >= 0, Schulman's "Approximating KL divergence").
    """
    log_ratio = logprobs - ref_logprobs
    if estimator == "k1":
        return log_ratio
    if estimator == "k3":
        return torch.expm1(-log_ratio) + log_ratio
    raise ValueError(f"kl_estimator must be 'k1' or 'k3', got {estimator!r}")


def gae(
    rewards: torch.Tensor, values: torch.Tensor, mask: torch.Tensor, gamma: float, lam: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Generalised advantage estimation over right-padded (batch, T) sequences.

    Positions where ``mask`` is 0 (after the response) carry no reward and a value of 0, so the episode ends at the
    last response token. Returns ``(advantages, returns)``, both 0 outside the mask; returns = advantages + values.
    """
    mask = mask.to(values.dtype)
    rewards, values = rewards * mask, values * mask
    advantages = torch.zeros_like(values)
    last = torch.zeros_like(values[:, 0])
    length = values.size(1)
    for t in reversed(range(length)):
        next_value = values[:, t + 1] if t + 1 < length else torch.zeros_like(last)
        delta = rewards[:, t] + gamma * next_value - values[:, t]
        last = delta + gamma * lam * last
        advantages[:, t] = last
    advantages = advantages * mask
    return advantages, (advantages + values) * mask


def clipped_policy_loss(
    logprobs: torch.Tensor,
    old_logprobs: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    cliprange: float,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """PPO's clipped surrogate with a per-token ratio, averaged over the masked tokens; returns (loss, stats)."""
    log_ratio = logprobs - old_logprobs
    ratio = torch.exp(log_ratio)
    unclipped = -advantages * ratio
    clipped = -advantages * torch.clamp(ratio, 1.0 - cliprange, 1.0 + cliprange)
    loss = masked_mean(torch.maximum(unclipped, clipped), mask)
    with torch.no_grad():
        stats = {
            "clipfrac": masked_mean((clipped > unclipped).float(), mask),
            "approxkl": 0.5 * masked_mean(log_ratio**2, mask),
            "ratio": masked_mean(ratio, mask),
        }
    return loss, stats


def clipped_value_loss(
    values: torch.Tensor,
    old_values: torch.Tensor,
    returns: torch.Tensor,
    mask: torch.Tensor,
    cliprange_value: float,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """0.5 * max((V - R)^2, (V_clipped - R)^2) averaged over the masked tokens, V_clipped within +-cliprange_value of
    the rollout-time value; returns (loss, stats)."""
    clipped_values = old_values + torch.clamp(values - old_values, -cliprange_value, cliprange_value)
    unclipped = (values - returns) ** 2
    clipped = (clipped_values - returns) ** 2
    loss = 0.5 * masked_mean(torch.maximum(unclipped, clipped), mask)
    with torch.no_grad():
        stats = {"clipfrac": masked_mean((clipped > unclipped).float(), mask)}
    return loss, stats
