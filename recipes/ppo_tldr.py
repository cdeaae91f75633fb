"""Summarization, stage 4: PPO from the SFT policy against the reward model (Stiennon et al. 2020, Huang et al. 2024).

    accelerate launch recipes/ppo_tldr.py --config recipes/configs/ppo_tldr_offline.yaml
    accelerate launch --config_file recipes/accelerate_configs/deepspeed_zero2.yaml \\
        recipes/ppo_tldr.py --config recipes/configs/ppo_tldr_paper.yaml          # 8 GPUs, Pythia-1B

The moving parts, all in ``rlhf_ext.PPOTrainer``: the policy samples a summary per article; the reward
model scores it on its EOS token, and a summary without EOS gets ``-missing_eos_penalty`` instead of being
trusted (Huang et al. 2024, detail 23: -1); every token pays -beta * KL(pi || pi_SFT), with beta fixed
(0.05, Huang et al.; Ziegler et al. used 0.03 for TL;DR and 0.01 for CNN/DM) or adaptive (``kl_target``);
GAE (gamma 1, lambda 0.95) on a value head on the policy trunk; clipped policy and value losses
(clip 0.2, vf_coef 0.1); 4 PPO epochs per batch. ``--ptx_coef`` adds InstructGPT's pretraining loss on the
articles' text.

Offline departures (paper values in the paper config): SmolLM2-135M SFT policy with LoRA, a MiniLM reward
model trained on SummaryLabeler rankings, 24-token summaries [53] (the stand-in's references are headlines
of ~9 words), 2 PPO epochs [4], a few hundred episodes [1M]: 2 CPU cores.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

from trl import TrlParser

sys.path.insert(0, str(Path(__file__).resolve().parent))
from sft_tldr import lora_config, train_rows  # noqa: E402

from rlhf_ext import PPOConfig, PPOTrainer  # noqa: E402
from rlhf_ext.continuation import load_policy  # noqa: E402
from rlhf_ext.export import save_policy  # noqa: E402
from rlhf_ext.summarization import summarization_dataset  # noqa: E402

# ----------------------------------------------------------------------------- hyperparameters


@dataclass
class SummaryPPOArgs:
    model_name_or_path: str = field(
        default="outputs/tldr/sft", metadata={"help": "The SFT policy (folder or Hub id), also the KL reference."}
    )
    reward_model: str = field(
        default="outputs/tldr/reward",
        metadata={"help": "Reward model folder or Hub id, or 'labeler' to reward with SummaryLabeler directly."},
    )
    dataset: str = field(
        default="offline-tldr", metadata={"help": "Articles/posts to summarize (see rlhf_ext.summarization)."}
    )
    dataset_config: str | None = field(default=None, metadata={"help": "Hub dataset config, e.g. '3.0.0'."})
    max_article_words: int | None = field(
        default=None, metadata={"help": "Offline stand-ins only: cut articles to N words."}
    )
    num_prompts: int | None = field(default=None, metadata={"help": "Training prompts (None = the whole split)."})
    use_lora: bool = field(default=True, metadata={"help": "Train LoRA adapters (merged on export)."})
    lora_r: int = field(default=16, metadata={"help": "LoRA rank."})
    lora_alpha: int = field(default=32, metadata={"help": "LoRA alpha."})
    dataset_is_standin: bool = field(
        default=True, metadata={"help": "Say on the model card that the data is an offline stand-in."}
    )


def reward_funcs_for(recipe: SummaryPPOArgs):
    if recipe.reward_model == "labeler":
        from rlhf_ext.offline.labelers import SummaryLabeler

        return SummaryLabeler()
    return recipe.reward_model


# ----------------------------------------------------------------------------- main


def build_trainer(recipe: SummaryPPOArgs, args: PPOConfig) -> PPOTrainer:
    data = summarization_dataset(recipe.dataset, "train", recipe.dataset_config, recipe.max_article_words)
    data = train_rows(data, recipe.num_prompts, args.seed)
    ptx = None
    if args.ptx_coef > 0:  # InstructGPT mixes pretraining text; here the articles and their references
        ptx = data.map(lambda r: {"text": r["prompt"] + r["completion"]}, remove_columns=data.column_names)
    policy, tok = load_policy(recipe.model_name_or_path)
    trainer = PPOTrainer(
        model=policy,
        reward_funcs=reward_funcs_for(recipe),
        args=args,
        train_dataset=data.select_columns(["prompt"]),
        ptx_dataset=ptx,
        processing_class=tok,
        peft_config=lora_config(recipe),
    )
    info = trainer.card_info
    info.dataset_name = recipe.dataset
    info.dataset_description = f"{len(data)} articles to summarize"
    info.dataset_is_standin = recipe.dataset_is_standin
    info.citations = sorted(set(info.citations) | {"stiennon2020", "huang2024"})
    return trainer


def main(recipe: SummaryPPOArgs, args: PPOConfig) -> PPOTrainer:
    trainer = build_trainer(recipe, args)
    trainer.train()
    save_policy(trainer, trainer.processing_class, args.output_dir)
    trainer.create_model_card()  # evaluate_summaries.py adds the comparison table
    return trainer


if __name__ == "__main__":
    recipe, args = TrlParser((SummaryPPOArgs, PPOConfig)).parse_args_and_config()
    main(recipe, args)
