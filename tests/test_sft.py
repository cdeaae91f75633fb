"""rlhf_ext.SFTTrainer: trl.SFTTrainer with rlhf_ext's card (its push to the Hub: test_base_trainer.py)."""

from __future__ import annotations

from datasets import Dataset
from tiny_args import CPU


def test_sft_trainer_is_exported_and_writes_our_card(tiny_models, tiny_tokenizer, tmp_path):
    from trl import SFTConfig

    import rlhf_ext
    from rlhf_ext import SFTTrainer

    assert "SFTTrainer" in rlhf_ext.__all__ and SFTTrainer.__module__ == "rlhf_ext.sft"
    args = SFTConfig(output_dir=str(tmp_path / "sft"), max_steps=1, **CPU)
    data = Dataset.from_list([{"prompt": "ARTICLE: a.\n\nTL;DR:", "completion": " b."}] * 2)
    trainer = SFTTrainer(
        model=str(tiny_models.causal_lm), args=args, train_dataset=data, processing_class=tiny_tokenizer
    )
    trainer.card_info.dataset_description = "two toy articles"
    trainer.create_model_card()
    card = (tmp_path / "sft" / "README.md").read_text()
    assert "supervised fine-tuning (SFT)" in card and "two toy articles" in card and "| `max_steps` | 1 |" in card
