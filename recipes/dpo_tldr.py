"""Summarization, stage 5: DPO beside PPO, the SFT policy optimised directly on the comparisons (Rafailov et al. 2023).

    accelerate launch recipes/dpo_tldr.py --config recipes/configs/dpo_tldr_offline.yaml
    accelerate launch --config_file recipes/accelerate_configs/deepspeed_zero2.yaml \\
        recipes/dpo_tldr.py --config recipes/configs/dpo_tldr_paper.yaml

DPO needs no reward model and no sampling: -log sigmoid(beta * [(log pi - log pi_ref)(y_w) - (log pi - log
pi_ref)(y_l)]) on each comparison, with the SFT model as pi_ref. ``trl.DPOTrainer`` does the work; this
recipe feeds it the same comparisons the reward model learnt from. Ranked offline labels become pairs
with ``rlhf_ext.data.ranking.ranked_to_pairs``: ``pairing: all`` gives every ranked pair (6 per article for
K = 4), ``best_vs_worst`` one pair per article (the offline config uses it to fit 2 CPU cores; say so when
comparing). Over-trained DPO is known to degenerate into repeated text: evaluate_summaries.py measures it.
The policy (also the reference) and its LoRA adapters are TRL's ``ModelConfig``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from trl import DPOConfig, ModelConfig, TrlParser, get_peft_config

from rlhf_ext import DPOTrainer
from rlhf_ext.data.ranking import PAIRINGS, ranked_to_pairs
from rlhf_ext.data.rows import take_rows
from rlhf_ext.export import save_policy
from rlhf_ext.models import load_policy
from rlhf_ext.pipeline import require_inputs
from rlhf_ext.summarization import preference_dataset

# ----------------------------------------------------------------------------- hyperparameters


@dataclass
class SummaryDPOArgs:
    preferences: str = field(
        default="outputs/tldr/labels",
        metadata={"help": "Comparisons: a folder from sample_and_label.py (ranked) or a Hub id (pairwise)."},
    )
    pairing: str = field(
        default="all",
        metadata={"help": "Ranked rows to pairs: 'all' ranked pairs or 'best_vs_worst'.", "choices": list(PAIRINGS)},
    )
    num_train_rows: int | None = field(default=None, metadata={"help": "Use the first N preference rows."})
    dataset_is_standin: bool = field(
        default=True, metadata={"help": "Say on the model card that the data is an offline stand-in."}
    )


# ----------------------------------------------------------------------------- main


def build_trainer(recipe: SummaryDPOArgs, args: DPOConfig, model_args: ModelConfig) -> DPOTrainer:
    data = take_rows(preference_dataset(recipe.preferences, "train"), recipe.num_train_rows, option="num_train_rows")
    pairs = ranked_to_pairs(data, recipe.pairing)
    policy, tok = load_policy(
        model_args.model_name_or_path or "outputs/tldr/sft"
    )  # the SFT policy: start and reference
    trainer = DPOTrainer(
        model=policy, args=args, train_dataset=pairs, processing_class=tok, peft_config=get_peft_config(model_args)
    )
    info = trainer.card_info
    info.method = "DPO (direct preference optimisation against the SFT reference)"
    info.dataset_name = recipe.preferences
    info.dataset_description = f"{len(pairs)} summary comparisons ({recipe.pairing} pairs of {len(data)} rows)"
    info.dataset_is_standin = recipe.dataset_is_standin
    return trainer


def main(recipe: SummaryDPOArgs, args: DPOConfig, model_args: ModelConfig) -> DPOTrainer:
    require_inputs(
        {"model_name_or_path": model_args.model_name_or_path, "preferences": recipe.preferences},
        Path(__file__).resolve().parent,
    )  # one line naming what is missing
    trainer = build_trainer(recipe, args, model_args)
    trainer.train()
    save_policy(trainer, trainer.processing_class, args.output_dir)
    trainer.create_model_card()
    return trainer


if __name__ == "__main__":
    main(*TrlParser((SummaryDPOArgs, DPOConfig, ModelConfig)).parse_args_and_config())
