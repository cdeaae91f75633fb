"""rlhf_ext.value_head through PPOTrainer: the head trains on the policy trunk, is saved apart from the model (which
loads as a plain causal LM) and stays out of the PEFT reference pass."""

from __future__ import annotations

import pytest
from ppo_helpers import make_args, make_trainer

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_saved_model_has_no_value_head_and_loads_in_transformers(tiny_models, tok, tmp_path):
    from safetensors import safe_open
    from transformers import AutoModelForCausalLM

    args = make_args(tmp_path, kl_coef=0.05, max_steps=2, save_strategy="steps", save_steps=2)
    trainer = make_trainer(tiny_models, tok, args, reward=str(tiny_models.reward_model))
    trainer.train()
    final = tmp_path / "final"
    trainer.save_model(str(final))
    for folder in (final, tmp_path / "out" / "checkpoint-2"):
        with safe_open(str(folder / "model.safetensors"), "pt") as f:
            assert not any("v_head" in k for k in f.keys())
        model, info = AutoModelForCausalLM.from_pretrained(str(folder), output_loading_info=True)
        assert not info["unexpected_keys"] and not info["missing_keys"]
        assert (folder / "value_head" / "value_head.safetensors").exists()
        # loaders that glob the top-level *.safetensors (vLLM) must find only the causal LM's weights
        assert sorted(p.name for p in folder.glob("*.safetensors")) == ["model.safetensors"]
    assert trainer.model.v_head.weight.abs().sum() > 0  # the head trained and is still on the policy
    card = (tmp_path / "out" / "README.md").read_text()  # written with each checkpoint
    assert "PPO" in card and "1909.08593" in card and "kl_coef" in card


def test_peft_policy_trains_value_head_and_reference_is_the_base(tiny_models, tok, tmp_path):
    from peft import LoraConfig

    args = make_args(tmp_path, kl_coef=0.05, max_steps=2, num_ppo_epochs=2)
    trainer = make_trainer(
        tiny_models, tok, args, peft_config=LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"])
    )
    assert trainer.ref_model is None  # reference = the base model with the adapter disabled
    assert trainer._policy_adapters_active()
    with trainer.model.disable_adapter():
        assert not trainer._policy_adapters_active()  # so no values are collected from the reference pass
    trainer.train()
    head = trainer._value_model.v_head
    assert head.weight.requires_grad and head.weight.abs().sum() > 0
    trainer.save_model(str(tmp_path / "adapter"))
    assert (tmp_path / "adapter" / "value_head" / "value_head.safetensors").exists()
