"""KL controllers: Ziegler et al.'s update pinned against hand-computed numbers, and its closed loop."""

from __future__ import annotations

import math

import pytest

from rlhf_ext import AdaptiveKLController, FixedKLController


def test_adaptive_update_matches_hand_numbers():
    ctl = AdaptiveKLController(init_kl_coef=0.15, target=6.0, horizon=10_000)
    assert ctl.value == 0.15
    # KL 9 is 50% above target: the error is clipped to +0.2; 0.15 * (1 + 0.2 * 512 / 10000)
    assert ctl.update(9.0, 512) == pytest.approx(0.151536, rel=1e-12)
    # KL 3 is 50% below target: clipped to -0.2; * (1 - 0.2 * 256 / 10000)
    ctl.update(3.0, 256)
    assert ctl.value == pytest.approx(0.15076013568, rel=1e-12)
    # KL 6.6 is 10% above target, inside the clip: * (1 + 0.1 * 1000 / 10000)
    ctl.update(6.6, 1000)
    assert ctl.value == pytest.approx(0.1522677370368, rel=1e-12)
    # on target: no change
    before = ctl.value
    ctl.update(6.0, 10_000)
    assert ctl.value == pytest.approx(before, rel=1e-12)


def test_adaptive_ignores_non_finite_kl_and_rejects_bad_arguments():
    ctl = AdaptiveKLController(0.1, 1.0, 100)
    ctl.update(float("nan"), 10)
    assert ctl.value == 0.1
    with pytest.raises(ValueError, match="target"):
        AdaptiveKLController(0.1, 0.0, 100)
    with pytest.raises(ValueError, match="target"):
        AdaptiveKLController(0.1, -1.0, 100)
    with pytest.raises(ValueError, match="horizon"):
        AdaptiveKLController(0.1, 1.0, 0)
    with pytest.raises(ValueError, match="init_kl_coef"):
        AdaptiveKLController(-0.1, 1.0, 10)
    with pytest.raises(ValueError, match="n_steps"):
        ctl.update(1.0, -1)


def test_fixed_controller_has_the_same_interface_and_never_moves():
    ctl = FixedKLController(0.05)
    assert ctl.update(100.0, 10_000) == 0.05
    assert ctl.value == 0.05
    with pytest.raises(ValueError, match="kl_coef"):
        FixedKLController(-1.0)


def test_state_dict_round_trip():
    ctl = AdaptiveKLController(0.15, 6.0, 10_000)
    ctl.update(20.0, 5000)
    fresh = AdaptiveKLController(0.15, 6.0, 10_000)
    fresh.load_state_dict(ctl.state_dict())
    assert fresh.value == ctl.value
    fixed = FixedKLController(0.3)
    other = FixedKLController(0.0)
    other.load_state_dict(fixed.state_dict())
    assert other.value == 0.3


@pytest.mark.parametrize("start", [0.02, 0.15, 1.0])
def test_closed_loop_settles_at_target(start):
    """A synthetic policy whose KL is inversely proportional to beta (KL = 1.2 / beta) has its KL steered to the
    6-nat target (beta* = 0.2) by the controller, from below and from above, at Ziegler et al.'s settings."""
    target, batch = 6.0, 512
    ctl = AdaptiveKLController(start, target, 10_000)
    kls = []
    for _ in range(3000):
        kl = 1.2 / ctl.value
        kls.append(kl)
        ctl.update(kl, batch)
    assert abs(kls[-1] / target - 1) < 0.01
    assert ctl.value == pytest.approx(0.2, rel=0.01)
    # The approach is monotone: the error never changes sign (a proportional controller with a small gain).
    errors = [k - target for k in kls]
    assert all(e >= -1e-9 for e in errors) or all(e <= 1e-9 for e in errors)
    # and each step moves beta by at most 0.2 * batch / horizon
    assert all(math.isfinite(k) for k in kls)
