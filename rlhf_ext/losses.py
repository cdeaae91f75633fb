"""Preference losses of rlhf_ext as pure functions of tensors (no trainer, no model).

Each function takes per-example tensors and returns per-example losses (reduce them yourself), works in
float32 or float64 (lower precisions are upcast to float32) and is differentiable with finite values *and*
finite gradients over its whole documented input domain. Functions are independent of each other: add new ones
below with their own docstring and tests in ``tests/test_losses.py``.

- :func:`odds_ratio_loss`: ORPO's odds-ratio term (Hong et al. 2024), with :func:`log_odds`.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

__all__ = ["ODDS_RATIO_EPS", "ODDS_RATIO_MIN_LOGP", "log_odds", "odds_ratio_loss"]

#: Mean log-probabilities are clamped to at most ``-ODDS_RATIO_EPS`` before ``log(1 - p)`` is taken.
#: At ``logp = 0`` (p = 1) the odds are infinite, and float32 log-softmax rounds a confident token to exactly 0
#: (its resolution near 0 is about 6e-8), so the clamp must sit above that floor. With 1e-6 a completion's
#: log-odds are capped at log((1 - eps) / eps) ~= 13.8 nats and d(log odds)/d(logp) = 1 / (1 - p) at ~= 1e6;
#: below the cap the value and gradient are the exact ones. Above it (logp in (-1e-6, 0]) the gradient is 0,
#: which is also what float32 softmax gives there (a saturated token has no gradient).
ODDS_RATIO_EPS = 1e-6
#: Mean log-probabilities are clamped to at least this (a per-token probability of e^-10000, far below anything a
#: softmax over finite logits yields) so that ``-inf`` from a masked-out vocabulary entry gives a finite loss.
ODDS_RATIO_MIN_LOGP = -1e4

_LN2 = math.log(2.0)


def log_odds(logps: torch.Tensor, eps: float = ODDS_RATIO_EPS) -> torch.Tensor:
    """``log(p / (1 - p))`` for ``p = exp(logps)``, elementwise, finite with a finite gradient for any ``logps <= 0``.

    ``logps`` are clamped to ``[ODDS_RATIO_MIN_LOGP, -eps]``. ``log(1 - exp(x))`` is computed as
    ``log(-expm1(x))`` for ``x > -ln 2`` and ``log1p(-exp(x))`` below (Maechler 2012), and each branch of the
    ``where`` only ever sees inputs that are safe for it, so neither branch can put a NaN into the gradient.
    """
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
    chosen_logps: torch.Tensor, rejected_logps: torch.Tensor, eps: float = ODDS_RATIO_EPS
) -> torch.Tensor:
    """ORPO's odds-ratio loss per example: ``-log sigmoid(log odds(y_w|x) - log odds(y_l|x))``.

    Args:
        chosen_logps: 1-D tensor of length-normalised (mean per completion token) log-probabilities of the
            preferred completions, ``<= 0``.
        rejected_logps: the same for the dispreferred completions, same shape.
        eps: log-probabilities are clamped to at most ``-eps`` (see :data:`ODDS_RATIO_EPS`).

    Returns:
        1-D tensor of non-negative per-example losses (float32, or float64 for float64 inputs). Multiply by
        ORPO's lambda (``beta`` in TRL) and average yourself. Equals TRL's ``-ORPOTrainer.odds_ratio_loss(...)[0] /
        beta`` wherever that is finite, and stays finite (value and gradient) at ``logps = 0`` and for very negative
        ``logps``.
    """
    if chosen_logps.shape != rejected_logps.shape:
        raise ValueError(
            f"chosen_logps and rejected_logps must have the same shape, got {tuple(chosen_logps.shape)} and "
            f"{tuple(rejected_logps.shape)}."
        )
    margin = log_odds(chosen_logps, eps) - log_odds(rejected_logps, eps)
    return -F.logsigmoid(margin)
