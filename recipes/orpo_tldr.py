"""Summarization, ORPO beside PPO and DPO: one stage, no SFT model and no reference model (Hong et al. 2024).

    accelerate launch recipes/orpo_tldr.py --config recipes/configs/orpo_tldr_offline.yaml
    accelerate launch --config_file recipes/accelerate_configs/deepspeed_zero2.yaml \\
        recipes/orpo_tldr.py --config recipes/configs/orpo_tldr_paper.yaml

ORPO's point is to replace SFT + preference tuning by one loss, L = L_SFT(y_w) + lambda * L_OR, with
L_OR = -log sigmoid(log odds(y_w) - log odds(y_l)). So this recipe starts from the *pretrained* model, as
the paper does, not from the SFT model the other methods start from. ``rlhf_ext.ORPOTrainer`` takes the
ranked labels directly: SFT on the best summary of each article and the odds-ratio loss averaged over all
ranked pairs, one forward pass per summary; pairwise Hub data (``trl-lib/tldr-preference``) works as well.
lambda = 0.1 (the paper's, TRL's ``beta``); its numerically safe log-odds are rlhf_ext's (docs/orpo.md).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

from trl import TrlParser

sys.path.insert(0, str(Path(__file__).resolve().parent))
from sft_tldr import lora_config  # noqa: E402

from rlhf_ext import ORPOConfig, ORPOTrainer  # noqa: E402
from rlhf_ext.continuation import load_policy  # noqa: E402
from rlhf_ext.export import save_policy  # noqa: E402
from rlhf_ext.summarization import preference_dataset  # noqa: E402

# ----------------------------------------------------------------------------- hyperparameters


@dataclass
class SummaryORPOArgs:
    model_name_or_path: str = field(
        default="offline",
        metadata={"help": "The pretrained policy (ORPO needs no SFT stage): Hub id, folder or 'offline'."},
    )
    preferences: str = field(
        default="outputs/tldr/labels",
        metadata={"help": "Comparisons: a folder from sample_and_label.py (ranked) or a Hub id (pairwise)."},
    )
    num_train_rows: int | None = field(default=None, metadata={"help": "Use the first N preference rows."})
    use_lora: bool = field(default=True, metadata={"help": "Train LoRA adapters (merged on export)."})
    lora_r: int = field(default=16, metadata={"help": "LoRA rank."})
    lora_alpha: int = field(default=32, metadata={"help": "LoRA alpha."})
    dataset_is_standin: bool = field(
        default=True, metadata={"help": "Say on the model card that the data is an offline stand-in."}
    )


# ----------------------------------------------------------------------------- main


def build_trainer(recipe: SummaryORPOArgs, args: ORPOConfig) -> ORPOTrainer:
    data = preference_dataset(recipe.preferences, "train")
    if recipe.num_train_rows is not None:
        data = data.select(range(min(recipe.num_train_rows, len(data))))
    policy, tok = load_policy(recipe.model_name_or_path)
    tok.padding_side = "right"
    trainer = ORPOTrainer(
        model=policy, args=args, train_dataset=data, processing_class=tok, peft_config=lora_config(recipe)
    )
    info = trainer.card_info
    info.dataset_name = recipe.preferences
    ranked = "completions" in data.column_names
    info.dataset_description = f"{len(data)} " + ("ranked lists of summaries" if ranked else "summary comparisons")
    info.dataset_is_standin = recipe.dataset_is_standin
    if recipe.model_name_or_path == "offline":
        info.base_model = "HuggingFaceTB/SmolLM2-135M-Instruct"
    return trainer


def main(recipe: SummaryORPOArgs, args: ORPOConfig) -> ORPOTrainer:
    trainer = build_trainer(recipe, args)
    trainer.train()
    save_policy(trainer, trainer.processing_class, args.output_dir)
    trainer.create_model_card()
    return trainer


if __name__ == "__main__":
    recipe, args = TrlParser((SummaryORPOArgs, ORPOConfig)).parse_args_and_config()
    main(recipe, args)
