"""KL-coefficient controllers for RLHF (Ziegler et al. 2019, "Fine-Tuning Language Models from Human Preferences").

Both controllers expose the same two-member interface, so trainers need not know which one they hold:

- ``value``: the current KL coefficient beta;
- ``update(current, n_steps)``: feed back the KL measured on the last batch and the number of episodes in it.

``AdaptiveKLController`` implements the proportional controller of Ziegler et al. (section 2.2)::

    e = clip(current / target - 1, -0.2, 0.2)
    beta <- beta * (1 + e * n_steps / horizon)

so beta grows when the measured KL is above the target and shrinks when it is below, by at most 20% per
``horizon`` episodes. ``FixedKLController`` never changes. Both can be serialised with ``state_dict`` /
``load_state_dict`` for checkpoints.
"""

from __future__ import annotations

import math


class FixedKLController:
    """A constant KL coefficient: ``update`` is a no-op."""

    def __init__(self, kl_coef: float):
        if not math.isfinite(kl_coef) or kl_coef < 0:
            raise ValueError(f"kl_coef must be a finite number >= 0, got {kl_coef!r}")
        self.value = float(kl_coef)

    def update(self, current: float, n_steps: int) -> float:
        """Ignore the feedback and return the unchanged coefficient."""
        return self.value

    def state_dict(self) -> dict:
        return {"value": self.value}

    def load_state_dict(self, state: dict) -> None:
        self.value = float(state["value"])

    def __repr__(self) -> str:
        return f"FixedKLController(kl_coef={self.value!r})"


class AdaptiveKLController:
    """Ziegler et al.'s adaptive KL coefficient: steer the measured KL toward ``target`` over ``horizon`` episodes.

    Args:
        init_kl_coef: starting coefficient (Ziegler et al.: 0.15).
        target: KL target in nats per episode, summed over the response tokens (Ziegler et al.: 6.0).
        horizon: number of episodes over which a 20% correction is applied (Ziegler et al.: 10,000).
    """

    #: the proportional error is clipped to this magnitude, as in Ziegler et al.
    clip = 0.2

    def __init__(self, init_kl_coef: float, target: float, horizon: float):
        if not math.isfinite(init_kl_coef) or init_kl_coef < 0:
            raise ValueError(f"init_kl_coef must be a finite number >= 0, got {init_kl_coef!r}")
        if target is None or not math.isfinite(target) or target <= 0:
            raise ValueError(f"target (kl_target) must be a finite number > 0, got {target!r}")
        if not math.isfinite(horizon) or horizon <= 0:
            raise ValueError(f"horizon (kl_horizon) must be a finite number > 0, got {horizon!r}")
        self.value = float(init_kl_coef)
        self.target = float(target)
        self.horizon = float(horizon)

    def update(self, current: float, n_steps: int) -> float:
        """Apply one proportional correction from the KL ``current`` measured over ``n_steps`` episodes."""
        if n_steps < 0:
            raise ValueError(f"n_steps must be >= 0, got {n_steps!r}")
        current = float(current)
        if not math.isfinite(current):  # a NaN batch must not poison the coefficient for the rest of the run
            return self.value
        proportional_error = min(max(current / self.target - 1.0, -self.clip), self.clip)
        self.value *= 1.0 + proportional_error * n_steps / self.horizon
        return self.value

    def state_dict(self) -> dict:
        return {"value": self.value, "target": self.target, "horizon": self.horizon}

    def load_state_dict(self, state: dict) -> None:
        self.value = float(state["value"])

    def __repr__(self) -> str:
        return f"AdaptiveKLController(value={self.value!r}, target={self.target!r}, horizon={self.horizon!r})"
