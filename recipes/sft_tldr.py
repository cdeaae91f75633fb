"""Summarization, stage 1: supervised fine-tuning on reference summaries (the SFT policy every method starts from).

    accelerate launch recipes/sft_tldr.py --config recipes/configs/sft_tldr_offline.yaml     # news stand-in, CPU
    accelerate launch recipes/sft_tldr.py --config recipes/configs/sft_cnndm_offline.yaml    # CNN/DM-sized articles
    accelerate launch --config_file recipes/accelerate_configs/deepspeed_zero2.yaml \\
        recipes/sft_tldr.py --config recipes/configs/sft_tldr_paper.yaml                   # Pythia-1B on trl-lib/tldr

Stiennon et al. 2020 and Huang et al. 2024 fine-tune the pretrained model on (post, reference TL;DR) pairs
before anything else; the reward model, PPO and DPO all start from this SFT model. ``trl.SFTTrainer`` does
the work on prompt-completion rows: the loss covers the completion tokens only, and an EOS token is added
after each reference so the policy learns to stop (PPO's missing-EOS penalty relies on it).

The offline default fine-tunes SmolLM2-135M-Instruct with LoRA (r 16, all linear layers) on 256 news
articles, one epoch: about 5 minutes on 2 CPU cores (the config's figures). The exported folder is a plain causal LM
(LoRA merged). The policy and its LoRA adapters are TRL's ``ModelConfig`` (``model_name_or_path``, ``use_peft``,
``lora_*``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from trl import ModelConfig, SFTConfig, TrlParser, get_peft_config

from rlhf_ext import SFTTrainer
from rlhf_ext.data.rows import take_rows
from rlhf_ext.export import save_policy
from rlhf_ext.models import load_policy
from rlhf_ext.pipeline import require_inputs
from rlhf_ext.summarization import summarization_dataset

# ----------------------------------------------------------------------------- hyperparameters


@dataclass
class SFTRecipeArgs:
    dataset: str = field(
        default="offline-tldr",
        metadata={
            "help": "'offline-tldr' / 'offline-cnndm' (news stand-ins), a Hub id ('trl-lib/tldr', "
            "'abisee/cnn_dailymail') or a save_to_disk folder with prompt/completion or article/highlights."
        },
    )
    dataset_config: str | None = field(
        default=None, metadata={"help": "Hub dataset config, e.g. '3.0.0' for abisee/cnn_dailymail."}
    )
    max_article_words: int | None = field(
        default=None, metadata={"help": "Offline stand-ins only: cut articles to N words (default 120 / 300)."}
    )
    num_train_rows: int | None = field(
        default=None, metadata={"help": "Use the first N rows after a seeded shuffle (None = all)."}
    )
    dataset_is_standin: bool = field(
        default=True, metadata={"help": "Say on the model card that the data is an offline stand-in."}
    )


# ----------------------------------------------------------------------------- main


def build_trainer(recipe: SFTRecipeArgs, args: SFTConfig, model_args: ModelConfig) -> SFTTrainer:
    train = summarization_dataset(recipe.dataset, "train", recipe.dataset_config, recipe.max_article_words)
    train = take_rows(train, recipe.num_train_rows, seed=args.seed, option="num_train_rows")
    policy_name = model_args.model_name_or_path or "offline"
    policy, tok = load_policy(policy_name)
    tok.padding_side = "right"  # training pads on the right; generation code switches to left
    trainer = SFTTrainer(
        model=policy, args=args, train_dataset=train, processing_class=tok, peft_config=get_peft_config(model_args)
    )
    info = trainer.card_info
    info.method = "supervised fine-tuning on reference summaries (SFT)"
    info.citations = ["trl", "stiennon2020", "huang2024"]
    info.dataset_name = recipe.dataset
    info.dataset_description = f"{len(train)} (article, reference summary) pairs"
    info.dataset_is_standin = recipe.dataset_is_standin
    if policy_name == "offline":
        info.base_model = "HuggingFaceTB/SmolLM2-135M-Instruct"
    return trainer


def main(recipe: SFTRecipeArgs, args: SFTConfig, model_args: ModelConfig) -> SFTTrainer:
    require_inputs(
        {"model_name_or_path": model_args.model_name_or_path}, Path(__file__).resolve().parent
    )  # one line naming what is missing
    trainer = build_trainer(recipe, args, model_args)
    trainer.train()
    save_policy(trainer, trainer.processing_class, args.output_dir)
    trainer.create_model_card()
    return trainer


if __name__ == "__main__":
    main(*TrlParser((SFTRecipeArgs, SFTConfig, ModelConfig)).parse_args_and_config())
