"""rlhf_ext.DPOTrainer: trl.DPOTrainer with rlhf_ext's card."""

from __future__ import annotations

import pytest
from datasets import Dataset
from tiny_args import CPU


def test_dpo_trainer_trains_and_writes_our_card(tiny_models, tiny_tokenizer, tmp_path):
    from trl import DPOConfig

    import rlhf_ext
    from rlhf_ext import DPOTrainer

    assert "DPOTrainer" in rlhf_ext.__all__ and DPOTrainer.__module__ == "rlhf_ext.dpo"
    pairs = [{"prompt": "The movie was", "chosen": " great fun.", "rejected": " a bore."}] * 4
    args = DPOConfig(
        str(tmp_path / "dpo"), max_steps=1, per_device_train_batch_size=2, save_strategy="no", beta=0.1, **CPU
    )
    data = Dataset.from_list(pairs)
    trainer = DPOTrainer(str(tiny_models.causal_lm), args=args, train_dataset=data, processing_class=tiny_tokenizer)
    trainer.train()
    trainer.save_model()
    trainer.create_model_card()  # TRL writes it with each checkpoint; recipes call it after saving
    card = (tmp_path / "dpo" / "README.md").read_text()
    assert "DPO (direct preference optimisation" in card and "2305.18290" in card
    assert "| `beta` | 0.1 |" in card


def test_compact_lm_head_logs_what_trls_head_logs(tiny_models, tiny_tokenizer, tmp_path, monkeypatch):
    """rlhf_ext.DPOTrainer projects only the completion positions (CPU): the same losses and metrics as trl.DPOTrainer,
    step for step, with a LoRA policy whose reference is the adapter-free model (float32 rounding apart)."""
    import torch
    import trl
    from peft import LoraConfig
    from trl import DPOConfig

    import rlhf_ext.lm_head
    from rlhf_ext import DPOTrainer

    pairs = [
        {
            "prompt": "The film opens on a quiet harbour town where",
            "chosen": " nothing happens.",
            "rejected": " a bore.",
        },
        {
            "prompt": "Critics agreed that the second half of the story",
            "chosen": " drags.",
            "rejected": " is great fun.",
        },
    ] * 4
    calls = []
    original = rlhf_ext.lm_head.SelectedLogProbs.apply
    monkeypatch.setattr(
        rlhf_ext.lm_head.SelectedLogProbs, "apply", lambda *a: calls.append(a[0].shape) or original(*a)
    )
    logs = {}
    for name, trainer_class in (("trl", trl.DPOTrainer), ("rlhf_ext", DPOTrainer)):
        torch.manual_seed(0)
        args = DPOConfig(
            str(tmp_path / name), max_steps=3, per_device_train_batch_size=4, logging_steps=1, learning_rate=5e-2,
            save_strategy="no", seed=0, **CPU,
        )  # fmt: skip
        trainer = trainer_class(
            str(tiny_models.causal_lm), args=args, train_dataset=Dataset.from_list(pairs),
            processing_class=tiny_tokenizer, peft_config=LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"]),
        )  # fmt: skip
        trainer.train()
        logs[name] = [h for h in trainer.state.log_history if "loss" in h]
    # a policy and a reference pass per step, each scoring only the completion tokens (+ EOS) of the 8 rows
    lengths = [len(tiny_tokenizer(p[k])["input_ids"]) + 1 for p in pairs for k in ("chosen", "rejected")]
    assert len(calls) == 6 and all(8 * min(lengths) <= n <= 8 * max(lengths) for n, _ in calls)
    assert len(logs["trl"]) == len(logs["rlhf_ext"]) == 3
    assert logs["trl"][-1]["loss"] != pytest.approx(0.6931, abs=1e-3)  # training moved the policy off the reference
    for ours, theirs in zip(logs["rlhf_ext"], logs["trl"]):
        for key in ("loss", "rewards/margins", "rewards/accuracies", "logps/chosen", "logits/chosen", "entropy"):
            assert ours[key] == pytest.approx(theirs[key], rel=1e-4, abs=1e-5), key
        assert ours["mean_token_accuracy"] == theirs["mean_token_accuracy"]
