"""Summarization, stage 6: ORPO beside PPO and DPO, one stage, no SFT model and no reference model (Hong et al. 2024).

    accelerate launch recipes/orpo_tldr.py --config recipes/configs/orpo_tldr_offline.yaml
    accelerate launch --config_file recipes/accelerate_configs/deepspeed_zero2.yaml \\
        recipes/orpo_tldr.py --config recipes/configs/orpo_tldr_paper.yaml

ORPO's point is to replace SFT + preference tuning by one loss, L = L_SFT(y_w) + lambda * L_OR, with
L_OR = -log sigmoid(log odds(y_w) - log odds(y_l)). So this recipe starts from the *pretrained* model, as
the paper does, not from the SFT model the other methods start from. ``rlhf_ext.ORPOTrainer`` takes the
ranked labels directly: SFT on the best summary of each article and the odds-ratio loss averaged over all
ranked pairs, one forward pass per summary; pairwise Hub data (``trl-lib/tldr-preference``) works as well.
lambda = 0.1 (the paper's, TRL's ``beta``); its numerically safe log-odds are rlhf_ext's (docs/orpo.md).
The pretrained policy and its LoRA adapters are TRL's ``ModelConfig`` (``offline`` for SmolLM2-135M-Instruct).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from trl import ModelConfig, TrlParser, get_peft_config

from rlhf_ext import ORPOConfig, ORPOTrainer
from rlhf_ext.data.rows import take_rows
from rlhf_ext.export import save_policy
from rlhf_ext.models import load_policy
from rlhf_ext.pipeline import require_inputs
from rlhf_ext.summarization import preference_dataset

# ----------------------------------------------------------------------------- hyperparameters


@dataclass
class SummaryORPOArgs:
    preferences: str = field(
        default="outputs/tldr/labels",
        metadata={"help": "Comparisons: a folder from sample_and_label.py (ranked) or a Hub id (pairwise)."},
    )
    num_train_rows: int | None = field(default=None, metadata={"help": "Use the first N preference rows."})
    dataset_is_standin: bool = field(
        default=True, metadata={"help": "Say on the model card that the data is an offline stand-in."}
    )


# ----------------------------------------------------------------------------- main


def build_trainer(recipe: SummaryORPOArgs, args: ORPOConfig, model_args: ModelConfig) -> ORPOTrainer:
    data = take_rows(preference_dataset(recipe.preferences, "train"), recipe.num_train_rows, option="num_train_rows")
    policy_name = model_args.model_name_or_path or "offline"  # the pretrained policy: ORPO needs no SFT stage
    policy, tok = load_policy(policy_name)
    tok.padding_side = "right"
    trainer = ORPOTrainer(
        model=policy, args=args, train_dataset=data, processing_class=tok, peft_config=get_peft_config(model_args)
    )
    info = trainer.card_info
    info.dataset_name = recipe.preferences
    ranked = "completions" in data.column_names
    info.dataset_description = f"{len(data)} " + ("ranked lists of summaries" if ranked else "summary comparisons")
    info.dataset_is_standin = recipe.dataset_is_standin
    if policy_name == "offline":
        info.base_model = "HuggingFaceTB/SmolLM2-135M-Instruct"
    return trainer


def main(recipe: SummaryORPOArgs, args: ORPOConfig, model_args: ModelConfig) -> ORPOTrainer:
    require_inputs(
        {"preferences": recipe.preferences, "model_name_or_path": model_args.model_name_or_path},
        Path(__file__).resolve().parent,
    )  # one line naming what is missing
    trainer = build_trainer(recipe, args, model_args)
    trainer.train()
    save_policy(trainer, trainer.processing_class, args.output_dir)
    trainer.create_model_card()
    return trainer


if __name__ == "__main__":
    main(*TrlParser((SummaryORPOArgs, ORPOConfig, ModelConfig)).parse_args_and_config())
