"""Summarization, DPO beside PPO: the SFT policy optimised directly on the comparisons (Rafailov et al. 2023).

    accelerate launch recipes/dpo_tldr.py --config recipes/configs/dpo_tldr_offline.yaml
    accelerate launch --config_file recipes/accelerate_configs/deepspeed_zero2.yaml \\
        recipes/dpo_tldr.py --config recipes/configs/dpo_tldr_paper.yaml

DPO needs no reward model and no sampling: -log sigmoid(beta * [(log pi - log pi_ref)(y_w) - (log pi - log
pi_ref)(y_l)]) on each comparison, with the SFT model as pi_ref. ``trl.DPOTrainer`` does the work; this
recipe feeds it the same comparisons the reward model learnt from. Ranked offline labels become pairs
with ``rlhf_ext.data.ranking.ranked_to_pairs``: ``pairing: all`` gives every ranked pair (6 per article for
K = 4), ``best_vs_worst`` one pair per article (the offline config uses it to fit 2 CPU cores; say so when
comparing). Over-trained DPO is known to degenerate into repeated text: evaluate_summaries.py measures it.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

from trl import DPOConfig, TrlParser

sys.path.insert(0, str(Path(__file__).resolve().parent))
from sft_tldr import lora_config  # noqa: E402

from rlhf_ext import DPOTrainer  # noqa: E402
from rlhf_ext.continuation import load_policy  # noqa: E402
from rlhf_ext.data.ranking import PAIRINGS, ranked_to_pairs  # noqa: E402
from rlhf_ext.export import save_policy  # noqa: E402
from rlhf_ext.summarization import preference_dataset  # noqa: E402

# ----------------------------------------------------------------------------- hyperparameters


@dataclass
class SummaryDPOArgs:
    model_name_or_path: str = field(
        default="outputs/tldr/sft", metadata={"help": "The SFT policy (folder or Hub id): start and reference."}
    )
    preferences: str = field(
        default="outputs/tldr/labels",
        metadata={"help": "Comparisons: a folder from sample_and_label.py (ranked) or a Hub id (pairwise)."},
    )
    pairing: str = field(
        default="all",
        metadata={"help": "Ranked rows to pairs: 'all' ranked pairs or 'best_vs_worst'.", "choices": list(PAIRINGS)},
    )
    num_train_rows: int | None = field(default=None, metadata={"help": "Use the first N preference rows."})
    use_lora: bool = field(default=True, metadata={"help": "Train LoRA adapters (merged on export)."})
    lora_r: int = field(default=16, metadata={"help": "LoRA rank."})
    lora_alpha: int = field(default=32, metadata={"help": "LoRA alpha."})
    dataset_is_standin: bool = field(
        default=True, metadata={"help": "Say on the model card that the data is an offline stand-in."}
    )


# ----------------------------------------------------------------------------- main


def build_trainer(recipe: SummaryDPOArgs, args: DPOConfig) -> DPOTrainer:
    data = preference_dataset(recipe.preferences, "train")
    if recipe.num_train_rows is not None:
        data = data.select(range(min(recipe.num_train_rows, len(data))))
    pairs = ranked_to_pairs(data, recipe.pairing)
    policy, tok = load_policy(recipe.model_name_or_path)
    trainer = DPOTrainer(
        model=policy, args=args, train_dataset=pairs, processing_class=tok, peft_config=lora_config(recipe)
    )
    info = trainer.card_info
    info.method = "DPO (direct preference optimisation against the SFT reference)"
    info.dataset_name = recipe.preferences
    info.dataset_description = f"{len(pairs)} summary comparisons ({recipe.pairing} pairs of {len(data)} rows)"
    info.dataset_is_standin = recipe.dataset_is_standin
    return trainer


def main(recipe: SummaryDPOArgs, args: DPOConfig) -> DPOTrainer:
    trainer = build_trainer(recipe, args)
    trainer.train()
    save_policy(trainer, trainer.processing_class, args.output_dir)
    trainer.create_model_card()
    return trainer


if __name__ == "__main__":
    recipe, args = TrlParser((SummaryDPOArgs, DPOConfig)).parse_args_and_config()
    main(recipe, args)
