"""Summarization, stage 3: a reward model from summary comparisons (pairwise or ranked).

    accelerate launch recipes/reward_tldr.py --config recipes/configs/reward_tldr_offline.yaml
    accelerate launch --config_file recipes/accelerate_configs/deepspeed_zero2.yaml \\
        recipes/reward_tldr.py --config recipes/configs/reward_tldr_paper.yaml

Stiennon et al. 2020 trained the reward model on human comparisons of two summaries; InstructGPT ranked
K = 4..9 at once. ``RankedRewardTrainer`` takes both: pairwise rows (``trl-lib/tldr-preference``) are
K = 2 rankings, and the offline labels (K = 8 summaries of one article ranked by ``SummaryLabeler``, from
``recipes/sample_and_label.py``) put the C(8,2) = 28 comparisons of an article in one batch element, each
summary scored by one forward pass. Held-out pairwise accuracy is the number to watch (Huang et al. 2024,
Pythia on TL;DR: ~0.63 for 1B, ~0.67 for 2.8B).

Offline and paper: the SFT model with a scalar head, as Stiennon et al. and Huang et al. initialise it (offline,
chosen by measurement over all-MiniLM-L6-v2: 0.618 vs 0.564 held-out accuracy on the same 1,769 pairs,
docs/summarization.md). The backbone is TRL's ``ModelConfig.model_name_or_path`` (a folder or Hub id; ``offline``
for all-MiniLM-L6-v2 with a fresh scalar head, the CNN/DM stand-in's and the sentiment recipe's backbone).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from trl import ModelConfig, TrlParser, get_peft_config

from rlhf_ext import RankedRewardConfig, RankedRewardTrainer
from rlhf_ext.data.rows import take_rows
from rlhf_ext.models import load_reward_model
from rlhf_ext.pipeline import require_inputs
from rlhf_ext.summarization import preference_dataset

# ----------------------------------------------------------------------------- hyperparameters


@dataclass
class SummaryRewardArgs:
    preferences: str = field(
        default="outputs/tldr/labels",
        metadata={"help": "Comparisons: a folder from sample_and_label.py (ranked) or a Hub id (pairwise)."},
    )
    eval_split: str = field(default="test", metadata={"help": "Split used for held-out accuracy."})
    num_train_rows: int | None = field(default=None, metadata={"help": "Use the first N training rows (None = all)."})
    num_eval_rows: int | None = field(default=None, metadata={"help": "Use the first N held-out rows (None = all)."})
    dataset_is_standin: bool = field(
        default=True, metadata={"help": "Say on the model card that the data is an offline stand-in."}
    )


# ----------------------------------------------------------------------------- main


def build_trainer(recipe: SummaryRewardArgs, args: RankedRewardConfig, model_args: ModelConfig) -> RankedRewardTrainer:
    train = take_rows(preference_dataset(recipe.preferences, "train"), recipe.num_train_rows, option="num_train_rows")
    test = preference_dataset(recipe.preferences, recipe.eval_split)
    test = take_rows(test, recipe.num_eval_rows, option="num_eval_rows", what=f"the {recipe.eval_split!r} split")
    backbone = model_args.model_name_or_path or "offline"
    model, tok = load_reward_model(backbone)
    peft = get_peft_config(model_args)  # None unless use_peft
    trainer = RankedRewardTrainer(
        model, args, train_dataset=train, eval_dataset=test, processing_class=tok, peft_config=peft
    )
    info = trainer.card_info
    info.dataset_name = recipe.preferences
    ranked = "completions" in train.column_names
    info.dataset_description = (
        f"{len(train)} articles x K summaries ranked by a programmatic judge"
        if ranked
        else f"{len(train)} pairwise summary comparisons"
    )
    info.dataset_is_standin = recipe.dataset_is_standin
    if backbone == "offline":
        info.base_model = "sentence-transformers/all-MiniLM-L6-v2"
    return trainer


def main(recipe: SummaryRewardArgs, args: RankedRewardConfig, model_args: ModelConfig):
    require_inputs(
        {"preferences": recipe.preferences, "model_name_or_path": model_args.model_name_or_path},
        Path(__file__).resolve().parent,
    )  # one line naming what is missing
    trainer = build_trainer(recipe, args, model_args)
    trainer.train()
    metrics = trainer.evaluate()
    trainer.card_info.eval_results = [
        {"metric": "held-out pairwise accuracy", "value": metrics.get("eval_accuracy"), "dataset": recipe.preferences},
        {"metric": "held-out Kendall tau", "value": metrics.get("eval_kendall_tau"), "dataset": recipe.preferences},
    ]
    trainer.save_model(args.output_dir)
    trainer.processing_class.save_pretrained(args.output_dir)
    trainer.create_model_card()
    trainer.save_metrics("eval", metrics, combined=False)  # eval_results.json, read by run_summarize.py
    if trainer.is_world_process_zero():  # once, not once per process
        n = len(trainer.eval_dataset)
        print(f"held-out pairwise accuracy: {metrics.get('eval_accuracy', float('nan')):.3f} on {n} rows")
    return trainer, metrics


if __name__ == "__main__":
    main(*TrlParser((SummaryRewardArgs, RankedRewardConfig, ModelConfig)).parse_args_and_config())
