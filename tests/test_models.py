"""rlhf_ext.models: the recipes' model loaders, on the tiny local models (the offline ones: test_offline.py)."""

from __future__ import annotations

import torch


def test_load_policy_pads_on_the_left_for_generation(tiny_models):
    from rlhf_ext.continuation import load_policy as released_path
    from rlhf_ext.models import load_policy

    assert released_path is load_policy
    model, tok = load_policy(str(tiny_models.causal_lm))
    assert tok.padding_side == "left" and tok.pad_token_id is not None
    assert model.dtype == torch.float32  # the default: bf16 would autocast the CPU runs


def test_load_reward_model_has_a_scalar_head_and_a_pad_token(tiny_models):
    from rlhf_ext.models import load_reward_model

    model, tok = load_reward_model(str(tiny_models.reward_model))
    assert model.config.num_labels == 1
    assert tok.pad_token is not None and tok.eos_token is not None
    assert model.config.pad_token_id == tok.pad_token_id
