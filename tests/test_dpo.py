"""rlhf_ext.DPOTrainer: trl.DPOTrainer with rlhf_ext's card."""

from __future__ import annotations

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
