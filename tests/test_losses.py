"""rlhf_ext.losses against hand computations: ORPO's odds-ratio loss in high precision (mpmath), including the numerical
edges, and PPO's pieces (GAE, KL estimators, clipped losses, whitening)."""

from __future__ import annotations

import math

import mpmath
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from rlhf_ext.losses import (
    ODDS_RATIO_EPS,
    ODDS_RATIO_MIN_LOGP,
    clipped_policy_loss,
    clipped_value_loss,
    gae,
    kl_penalty,
    log_odds,
    masked_mean,
    odds_ratio_eps,
    odds_ratio_loss,
    whiten,
)

mpmath.mp.dps = 50

# logp values hit by real models and the edges: exactly 0 (fp32 log-softmax of a confident token), a hair below 0
# (inside the float32 clamp, and for -1e-15 inside the float64 one), the float32 clamp itself, ordinary values, below
# -50 (exp underflows in float32 arithmetic), -inf.
EDGES = [
    0.0,
    -1e-15,
    -1e-12,
    -1e-9,
    -ODDS_RATIO_EPS,
    -2e-6,
    -1e-3,
    -0.5,
    -math.log(2),
    -1.0,
    -5.0,
    -30.0,
    -60.0,
    -200.0,
]


def _clamped(x: float, eps: float) -> float:
    return min(max(x, ODDS_RATIO_MIN_LOGP), -eps)


def hand_log_odds(x: float, eps: float) -> mpmath.mpf:
    """log(p / (1 - p)) with p = exp(x), in 50 digits, after the documented clamp at -eps."""
    p = mpmath.exp(mpmath.mpf(_clamped(x, eps)))
    return mpmath.log(p) - mpmath.log(1 - p)


def hand_loss(w: float, r: float, eps: float) -> float:
    margin = hand_log_odds(w, eps) - hand_log_odds(r, eps)
    return float(-mpmath.log(1 / (1 + mpmath.exp(-margin))))


def hand_grads(w: float, r: float, eps: float) -> tuple[float, float]:
    """d loss / d logp_w and d loss / d logp_l; 0 where the clamp is active (strictly outside the domain)."""
    margin = hand_log_odds(w, eps) - hand_log_odds(r, eps)
    s = 1 / (1 + mpmath.exp(margin))  # sigmoid(-margin)

    def dlogodds(x):
        if x > -eps or x < ODDS_RATIO_MIN_LOGP:
            return mpmath.mpf(0)
        return 1 / (1 - mpmath.exp(mpmath.mpf(x)))

    return float(-s * dlogodds(w)), float(s * dlogodds(r))


PAIRS = [(w, r) for w in EDGES for r in EDGES]


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_value_matches_hand_computation(dtype):
    w = torch.tensor([p[0] for p in PAIRS], dtype=dtype)
    r = torch.tensor([p[1] for p in PAIRS], dtype=dtype)
    got = odds_ratio_loss(w, r)
    assert got.dtype == dtype
    eps = odds_ratio_eps(dtype)
    expected = torch.tensor(
        [hand_loss(float(a), float(b), eps) for a, b in zip(w.tolist(), r.tolist())], dtype=torch.float64
    )
    rtol, atol = (1e-12, 1e-12) if dtype == torch.float64 else (1e-5, 1e-6)
    torch.testing.assert_close(got.double(), expected, rtol=rtol, atol=atol)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_gradients_finite_and_match_hand_computation(dtype):
    w = torch.tensor([p[0] for p in PAIRS], dtype=dtype, requires_grad=True)
    r = torch.tensor([p[1] for p in PAIRS], dtype=dtype, requires_grad=True)
    odds_ratio_loss(w, r).sum().backward()
    assert torch.isfinite(w.grad).all() and torch.isfinite(r.grad).all()
    eps = odds_ratio_eps(dtype)
    expected = [hand_grads(float(a), float(b), eps) for a, b in zip(w.tolist(), r.tolist())]

    # At exactly -eps the clamp passes the gradient in torch (closed interval); skip that boundary point.
    def at_boundary(x):
        return math.isclose(x, -eps, rel_tol=1e-6)

    keep = [i for i, (a, b) in enumerate(zip(w.tolist(), r.tolist())) if not (at_boundary(a) or at_boundary(b))]
    rtol = 1e-9 if dtype == torch.float64 else 1e-4
    for i in keep:
        assert w.grad[i].item() == pytest.approx(expected[i][0], rel=rtol, abs=1e-12), PAIRS[i]
        assert r.grad[i].item() == pytest.approx(expected[i][1], rel=rtol, abs=1e-12), PAIRS[i]


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_named_edges(dtype):
    # Equal inputs: margin 0, loss log 2, whatever the value (even 0 and -60).
    for x in (0.0, -1e-12, -0.3, -60.0):
        v = torch.full((3,), x, dtype=dtype)
        torch.testing.assert_close(odds_ratio_loss(v, v), torch.full((3,), math.log(2), dtype=dtype))
    # logp 0 and a tenth of the clamp are both clamped to -eps: identical, finite log-odds of log((1-eps)/eps).
    eps = odds_ratio_eps(dtype)
    cap = math.log((1 - eps) / eps)
    got = log_odds(torch.tensor([0.0, -eps / 10], dtype=dtype))
    torch.testing.assert_close(got, torch.full((2,), cap, dtype=dtype), rtol=1e-6, atol=1e-6)
    # Far below -50 the log-odds equal the log-prob (1 - p == 1): no underflow to -inf or NaN.
    torch.testing.assert_close(
        log_odds(torch.tensor([-60.0, -1e3], dtype=dtype)), torch.tensor([-60.0, -1e3], dtype=dtype)
    )
    # -inf (a masked vocabulary entry) gives a finite loss and gradient.
    w = torch.tensor([-float("inf"), -1.0], dtype=dtype, requires_grad=True)
    r = torch.tensor([-1.0, -float("inf")], dtype=dtype, requires_grad=True)
    loss = odds_ratio_loss(w, r)
    loss.sum().backward()
    assert torch.isfinite(loss).all() and torch.isfinite(w.grad).all() and torch.isfinite(r.grad).all()


def test_the_clamp_follows_the_dtypes_resolution():
    """float32 keeps its clamp at 1e-6; float64 is clamped at the same multiple of its own resolution, so log-probs
    between -1e-6 and 0 keep their exact value there (a 1e-6 clamp would call these two completions equal)."""
    assert odds_ratio_eps(torch.float32) == odds_ratio_eps(torch.bfloat16) == ODDS_RATIO_EPS == 1e-6
    assert odds_ratio_eps(torch.float64) == pytest.approx(1e-6 * 2.0**-52 / 2.0**-23)  # ~1.9e-15
    chosen, rejected = -1e-9, -1e-6
    exact = float(-mpmath.log(1 / (1 + mpmath.exp(-(hand_log_odds(chosen, 0.0) - hand_log_odds(rejected, 0.0))))))
    assert exact == pytest.approx(0.0010, rel=1e-3)
    wide = odds_ratio_loss(torch.tensor([chosen], dtype=torch.float64), torch.tensor([rejected], dtype=torch.float64))
    assert wide.item() == pytest.approx(exact, rel=1e-9)
    narrow = odds_ratio_loss(torch.tensor([chosen]), torch.tensor([rejected]))
    assert narrow.item() == pytest.approx(math.log(2), rel=1e-6)  # float32 as before: both clamped to -1e-6
    # An explicit eps still applies to every dtype.
    clamped = odds_ratio_loss(
        torch.tensor([chosen], dtype=torch.float64), torch.tensor([rejected], dtype=torch.float64), eps=1e-6
    )
    assert clamped.item() == pytest.approx(math.log(2), rel=1e-12)


def test_half_precision_is_upcast():
    w = torch.tensor([0.0, -0.5], dtype=torch.bfloat16)
    r = torch.tensor([-0.5, 0.0], dtype=torch.bfloat16)
    out = odds_ratio_loss(w, r)
    assert out.dtype == torch.float32 and torch.isfinite(out).all()


def test_gradcheck_interior():
    w = torch.tensor([-0.01, -0.4, -0.9, -3.0, -55.0], dtype=torch.float64, requires_grad=True)
    r = torch.tensor([-0.02, -2.0, -0.1, -0.7, -52.0], dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(odds_ratio_loss, (w, r))


def test_matches_trl_formula_where_trl_is_finite():
    from trl.experimental.orpo.orpo_trainer import log1mexp

    w = torch.tensor([-0.01, -0.4, -0.9, -3.0, -55.0, -0.7])
    r = torch.tensor([-0.02, -2.0, -0.1, -0.7, -52.0, -0.69])
    trl_log_odds = (w - r) - (log1mexp(w) - log1mexp(r))
    torch.testing.assert_close(odds_ratio_loss(w, r), -torch.nn.functional.logsigmoid(trl_log_odds))


def test_shape_mismatch_raises():
    with pytest.raises(ValueError, match="same shape"):
        odds_ratio_loss(torch.zeros(2), torch.zeros(3))


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.floats(min_value=-1e3, max_value=0.0, allow_nan=False), min_size=1, max_size=8),
    st.sampled_from([torch.float32, torch.float64]),
)
def test_property_finite_nonnegative_and_antisymmetric(values, dtype):
    w = torch.tensor(values, dtype=dtype, requires_grad=True)
    r = torch.tensor(values[::-1], dtype=dtype, requires_grad=True)
    loss = odds_ratio_loss(w, r)
    loss.sum().backward()
    assert torch.isfinite(loss).all() and (loss >= 0).all()
    assert torch.isfinite(w.grad).all() and torch.isfinite(r.grad).all()
    # softplus(-m) - softplus(m) = -m: swapping the roles flips the margin.
    swapped = odds_ratio_loss(r.detach(), w.detach())
    margin = log_odds(w.detach()) - log_odds(r.detach())
    torch.testing.assert_close(loss.detach() - swapped, -margin, rtol=1e-5, atol=1e-4)


# ------------------------------------------------------------------------------------------------------------------
# PPO's pieces (Schulman et al. 2017, 2016; Ziegler et al. 2019)
# ------------------------------------------------------------------------------------------------------------------


def reference_gae(rewards, values, length, gamma, lam):
    """GAE as an explicit sum A_t = sum_l (gamma*lam)^l delta_{t+l}, with V = 0 after the last token."""
    deltas = []
    for t in range(length):
        next_value = values[t + 1] if t + 1 < length else 0.0
        deltas.append(rewards[t] + gamma * next_value - values[t])
    advantages = [sum((gamma * lam) ** (k - t) * deltas[k] for k in range(t, length)) for t in range(length)]
    returns = [a + v for a, v in zip(advantages, values[:length], strict=True)]
    return advantages, returns


@pytest.mark.parametrize("gamma,lam", [(1.0, 0.95), (0.9, 0.8), (1.0, 1.0), (0.5, 0.0)])
def test_gae_matches_hand_computation(gamma, lam):
    torch.manual_seed(0)
    rewards = torch.randn(3, 5)
    values = torch.randn(3, 5)
    lengths = [5, 3, 1]
    mask = torch.tensor([[1] * n + [0] * (5 - n) for n in lengths])
    advantages, returns = gae(rewards, values, mask, gamma, lam)
    for row, n in enumerate(lengths):
        exp_adv, exp_ret = reference_gae(rewards[row].tolist(), values[row].tolist(), n, gamma, lam)
        assert advantages[row, :n].tolist() == pytest.approx(exp_adv, abs=1e-5)
        assert returns[row, :n].tolist() == pytest.approx(exp_ret, abs=1e-5)
        assert advantages[row, n:].abs().sum() == 0 and returns[row, n:].abs().sum() == 0


def test_gae_small_case_by_hand():
    # rewards [0, 0, 1], values [0.5, 0.5, 0.5], gamma = lam = 1: deltas [0, 0, 0.5] -> advantages [0.5, 0.5, 0.5]
    adv, ret = gae(torch.tensor([[0.0, 0.0, 1.0]]), torch.tensor([[0.5, 0.5, 0.5]]), torch.ones(1, 3), 1.0, 1.0)
    assert adv.tolist() == [[0.5, 0.5, 0.5]]
    assert ret.tolist() == [[1.0, 1.0, 1.0]]


def test_kl_estimators_by_hand():
    logp, ref = torch.tensor([-1.0, -2.0]), torch.tensor([-1.5, -1.0])
    assert kl_penalty(logp, ref, "k1").tolist() == pytest.approx([0.5, -1.0])
    # k3 = exp(ref - logp) - 1 - (ref - logp)
    expected = [pytest.approx(float(torch.exp(torch.tensor(-0.5)) - 1 + 0.5)), pytest.approx(float(torch.e - 1 - 1))]
    assert kl_penalty(logp, ref, "k3").tolist() == expected
    assert (kl_penalty(torch.randn(100), torch.randn(100), "k3") >= 0).all()
    with pytest.raises(ValueError, match="kl_estimator"):
        kl_penalty(logp, ref, "k2")


def test_clipped_losses_by_hand():
    mask = torch.tensor([[1.0, 1.0, 0.0]])
    old = torch.zeros(1, 3)
    new = torch.log(torch.tensor([[1.5, 0.5, 9.0]]))  # ratios 1.5, 0.5 (third is padding)
    adv = torch.tensor([[1.0, 1.0, 5.0]])
    loss, stats = clipped_policy_loss(new, old, adv, mask, cliprange=0.2)
    # token 1: max(-1.5, -1.2) = -1.2 (clipped); token 2: max(-0.5, -0.8) = -0.5 (unclipped)
    assert loss.item() == pytest.approx((-1.2 - 0.5) / 2)
    assert stats["clipfrac"].item() == pytest.approx(0.5)
    assert stats["ratio"].item() == pytest.approx(1.0)

    values = torch.tensor([[1.0, 0.0, 7.0]])
    old_values = torch.tensor([[0.0, 0.0, 0.0]])
    returns = torch.tensor([[2.0, 1.0, 0.0]])
    vloss, vstats = clipped_value_loss(values, old_values, returns, mask, cliprange_value=0.2)
    # token 1: max((1-2)^2, (0.2-2)^2) = 3.24; token 2: max(1, 1) = 1 -> 0.5 * mean = 1.06
    assert vloss.item() == pytest.approx(0.5 * (3.24 + 1.0) / 2)
    assert vstats["clipfrac"].item() == pytest.approx(0.5)


def test_whiten_and_masked_mean():
    x = torch.tensor([[1.0, 2.0, 3.0, 100.0]])
    mask = torch.tensor([[1, 1, 1, 0]])
    assert masked_mean(x, mask).item() == pytest.approx(2.0)
    w = whiten(x, mask)
    assert w[0, :3].tolist() == pytest.approx([-1.0, 0.0, 1.0], abs=1e-4)
    assert w[0, 3] == 0
    assert whiten(x, mask, shift_mean=False)[0, :3].tolist() == pytest.approx([1.0, 2.0, 3.0], abs=1e-4)
