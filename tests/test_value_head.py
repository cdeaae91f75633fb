"""rlhf_ext.value_head through PPOTrainer: the head trains on the policy trunk, is saved apart from the model (which
loads as a plain causal LM) and stays out of the PEFT reference pass; the scoring forwards use generate()'s positions."""

from __future__ import annotations

import pytest
import torch
from datasets import Dataset
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


@pytest.fixture(scope="module")
def tiny_gpt2(tmp_path_factory):
    from rlhf_ext.testing.tiny_models import build_tiny_gpt2

    return build_tiny_gpt2(tmp_path_factory.mktemp("gpt2"))


@pytest.mark.parametrize("critic", ["trunk", "separate"])
def test_left_padded_scoring_matches_the_sampler_for_absolute_positions(tiny_gpt2, tok, tmp_path, critic):
    """GPT-2 numbers positions 0, 1, ... unless told otherwise; generate() numbers a left-padded row from its first
    real token. The rollout's old log-probs, reference log-probs (KL 0 against a copy) and values of left-padded rows
    must equal those of each row scored alone, unpadded (the positions the sampler used)."""
    extra = {"value_model_path": str(tiny_gpt2.reward_model)} if critic == "separate" else {}
    prompts = ["Hi", "The council voted on Tuesday to approve", "A story", "Scientists said the storm would"]
    args = make_args(tmp_path, kl_coef=0.1, temperature=0.7, **extra)
    trainer = make_trainer(tiny_gpt2, tok, args, train_dataset=Dataset.from_dict({"prompt": prompts}))
    if critic == "trunk":
        torch.manual_seed(0)
        torch.nn.init.normal_(trainer._value_model.v_head.weight)  # a zero head would hide misplaced values
    trainer.model.train()
    out = trainer._generate_and_score_completions(next(iter(trainer.get_train_dataloader())))
    prompt_mask, mask = out["prompt_mask"], out["completion_mask"]
    assert len(set(prompt_mask.sum(1).tolist())) > 1  # rows really are left-padded by different amounts
    model = trainer._value_model
    for row in range(prompt_mask.size(0)):
        p = out["prompt_ids"][row][prompt_mask[row].bool()]
        n = int(mask[row].sum())
        c = out["completion_ids"][row][:n]
        ids = torch.cat([p, c]).unsqueeze(0)
        labels = ids.clone()
        labels[:, : len(p)] = -100
        with torch.no_grad():  # alone: no padding, positions 0.. as generate() used them
            alone = model(input_ids=ids, attention_mask=torch.ones_like(ids), labels=labels, fused_lm_head=True,
                          return_values=True)  # fmt: skip
        assert torch.allclose(out["old_per_token_logps"][row, :n], alone.log_probs[0, -n:], atol=1e-5)
        assert torch.allclose(out["old_values"][row, :n], alone.value_preds[0, -n:], atol=1e-5)
        assert out["kl"][row, :n].abs().max() < 1e-5  # the reference (a copy) is scored at the same positions
