"""Summarization, stage 4: PPO from the SFT policy against the reward model (Stiennon et al. 2020, Huang et al. 2024).

    accelerate launch recipes/ppo_tldr.py --config recipes/configs/ppo_tldr_offline.yaml
    accelerate launch --config_file recipes/accelerate_configs/deepspeed_zero2.yaml \\
        recipes/ppo_tldr.py --config recipes/configs/ppo_tldr_paper.yaml          # 8 GPUs, Pythia-1B

The moving parts, all in ``rlhf_ext.PPOTrainer``: the policy samples a summary per article; the reward
model scores it on its EOS token; a summary without EOS is not trusted: its score loses ``missing_eos_penalty``
or becomes ``missing_eos_score`` (Huang et al. 2024, detail 23: -1, on a reward normalised so that the SFT data's
reference summaries score 0: ``reward_normalization: reference``, as the paper config does); every token pays -beta * KL(pi || pi_SFT), with beta fixed
(0.05, Huang et al.; Ziegler et al. used 0.03 for TL;DR and 0.01 for CNN/DM) or adaptive (``kl_target``);
GAE (gamma 1, lambda 0.95) on a value head on the policy trunk; clipped policy and value losses
(clip 0.2, vf_coef 0.1); 4 PPO epochs per batch. ``--ptx_coef`` adds InstructGPT's pretraining loss on the
articles' text.

Offline departures (paper values in the paper config): SmolLM2-135M SFT policy with LoRA, a reward model (the
SFT policy with a scalar head) trained on SummaryLabeler rankings, 24-token summaries [53] (the stand-in's
references are headlines of ~9 words), 1 PPO epoch [4], 256 episodes [1M]: 2 CPU cores. The policy and its LoRA adapters are
TRL's ``ModelConfig`` (``model_name_or_path``, ``use_peft``, ``lora_*``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from trl import ModelConfig, TrlParser, get_peft_config

from rlhf_ext import PPOConfig, PPOTrainer
from rlhf_ext.data.rows import take_rows
from rlhf_ext.export import save_policy
from rlhf_ext.models import load_policy
from rlhf_ext.offline.labelers import make_labeler
from rlhf_ext.pipeline import require_inputs
from rlhf_ext.summarization import summarization_dataset

# ----------------------------------------------------------------------------- hyperparameters


@dataclass
class SummaryPPOArgs:
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
    dataset_is_standin: bool = field(
        default=True, metadata={"help": "Say on the model card that the data is an offline stand-in."}
    )


# ----------------------------------------------------------------------------- main


def build_trainer(recipe: SummaryPPOArgs, args: PPOConfig, model_args: ModelConfig) -> PPOTrainer:
    data = summarization_dataset(recipe.dataset, "train", recipe.dataset_config, recipe.max_article_words)
    data = take_rows(data, recipe.num_prompts, seed=args.seed, option="num_prompts")
    ptx = None
    if args.ptx_coef > 0:  # InstructGPT mixes pretraining text; here the articles and their references
        ptx = data.map(lambda r: {"text": r["prompt"] + r["completion"]}, remove_columns=data.column_names)
    policy, tok = load_policy(
        model_args.model_name_or_path or "outputs/tldr/sft"
    )  # the SFT policy: start and reference
    # Huang et al. normalise the reward on the SFT data's reference summaries (reward_normalization: reference).
    reference = data.select_columns(["prompt", "completion"]) if args.reward_normalization == "reference" else None
    trainer = PPOTrainer(
        model=policy,
        reward_funcs=make_labeler("summary") if recipe.reward_model == "labeler" else recipe.reward_model,
        args=args,
        train_dataset=data.select_columns(["prompt"]),
        ptx_dataset=ptx,
        processing_class=tok,
        peft_config=get_peft_config(model_args),
        reward_reference_dataset=reference,
    )
    info = trainer.card_info
    info.dataset_name = recipe.dataset
    info.dataset_description = f"{len(data)} articles to summarize"
    info.dataset_is_standin = recipe.dataset_is_standin
    info.citations = sorted(set(info.citations) | {"stiennon2020", "huang2024"})
    return trainer


def main(recipe: SummaryPPOArgs, args: PPOConfig, model_args: ModelConfig) -> PPOTrainer:
    require_inputs(
        {
            "model_name_or_path": model_args.model_name_or_path,
            "reward_model": recipe.reward_model,
            "value_model_path": args.value_model_path,
        },
        Path(__file__).resolve().parent,
    )  # one line naming what is missing
    trainer = build_trainer(recipe, args, model_args)
    trainer.train()
    save_policy(trainer, trainer.processing_class, args.output_dir)
    trainer.create_model_card()  # evaluate_summaries.py adds the comparison table
    return trainer


if __name__ == "__main__":
    main(*TrlParser((SummaryPPOArgs, PPOConfig, ModelConfig)).parse_args_and_config())
