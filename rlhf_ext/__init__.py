"""rlhf_ext: RLHF methods of Ziegler et al. 2019, InstructGPT, DPO and ORPO as thin subclasses of TRL.

Public names are imported lazily: ``import rlhf_ext`` stays cheap (TRL alone costs seconds to import),
and ``from rlhf_ext import RankedRewardTrainer`` loads only what it needs. The ``TYPE_CHECKING`` block below
names the same classes for type checkers and editors, which can then jump to them.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

__version__ = "0.1.0.dev0"

# public name -> module that defines it
_LAZY = {
    "PPOTrainer": "rlhf_ext.ppo",
    "PPOConfig": "rlhf_ext.ppo_config",
    "AdaptiveKLController": "rlhf_ext.kl_controllers",
    "FixedKLController": "rlhf_ext.kl_controllers",
    "RLOOTrainer": "rlhf_ext.rloo",
    "RLOOConfig": "rlhf_ext.rloo",
    "RankedRewardTrainer": "rlhf_ext.ranked_reward",
    "RankedRewardConfig": "rlhf_ext.ranked_reward",
    "ORPOTrainer": "rlhf_ext.orpo",
    "ORPOConfig": "rlhf_ext.orpo",
    "NonFiniteLossError": "rlhf_ext.nonfinite",
    "SFTTrainer": "rlhf_ext.sft",
    "DPOTrainer": "rlhf_ext.dpo",
}

if TYPE_CHECKING:  # never executed: the same names as _LAZY, for type checkers and "go to definition"
    from .dpo import DPOTrainer
    from .kl_controllers import AdaptiveKLController, FixedKLController
    from .nonfinite import NonFiniteLossError
    from .orpo import ORPOConfig, ORPOTrainer
    from .ppo import PPOTrainer
    from .ppo_config import PPOConfig
    from .ranked_reward import RankedRewardConfig, RankedRewardTrainer
    from .rloo import RLOOConfig, RLOOTrainer
    from .sft import SFTTrainer

__all__ = [
    "AdaptiveKLController",
    "DPOTrainer",
    "FixedKLController",
    "NonFiniteLossError",
    "ORPOConfig",
    "ORPOTrainer",
    "PPOConfig",
    "PPOTrainer",
    "RLOOConfig",
    "RLOOTrainer",
    "RankedRewardConfig",
    "RankedRewardTrainer",
    "SFTTrainer",
    "__version__",
]


def __getattr__(name: str):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'rlhf_ext' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(list(globals()) + list(_LAZY))
