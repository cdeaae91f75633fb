"""Summarization, stage 1: supervised fine-tuning on reference summaries (the SFT policy every method starts from).

    accelerate launch recipes/sft_tldr.py --config recipes/configs/sft_tldr_offline.yaml     # news stand-in, CPU
    accelerate launch recipes/sft_tldr.py --config recipes/configs/sft_cnndm_offline.yaml    # CNN/DM-sized articles
    accelerate launch --config_file recipes/accelerate_configs/deepspeed_zero2.yaml \\
        recipes/sft_tldr.py --config recipes/configs/sft_tldr_paper.yaml                   # Pythia-1B on trl-lib/tldr

Stiennon et al. 2020 and Huang et al. 2024 fine-tune the pretrained model on (post, reference TL;DR) pairs
before anything else; the reward model, PPO and DPO all start from this SFT model. ``trl.SFTTrainer`` does
the work on prompt-completion rows: the loss covers the completion tokens only, and an EOS token is added
after each reference so the policy learns to stop (PPO's missing-EOS penalty relies on it).

The offline default fine-tunes SmolLM2-135M-Instruct with LoRA (r 16, all linear layers) on 512 news
articles, one epoch: about 3 minutes on 2 CPU cores. The exported folder is a plain causal LM (LoRA merged).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from trl import SFTConfig, TrlParser

from rlhf_ext import SFTTrainer
from rlhf_ext.continuation import load_policy
from rlhf_ext.export import save_policy
from rlhf_ext.summarization import summarization_dataset

# ----------------------------------------------------------------------------- hyperparameters


@dataclass
class SFTRecipeArgs:
    model_name_or_path: str = field(
        default="offline",
        metadata={"help": "Pretrained policy: a Hub id or folder, or 'offline' for SmolLM2-135M-Instruct."},
    )
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
    use_lora: bool = field(default=True, metadata={"help": "Train LoRA adapters (merged on export)."})
    lora_r: int = field(default=16, metadata={"help": "LoRA rank."})
    lora_alpha: int = field(default=32, metadata={"help": "LoRA alpha."})
    dataset_is_standin: bool = field(
        default=True, metadata={"help": "Say on the model card that the data is an offline stand-in."}
    )


def lora_config(recipe):
    if not recipe.use_lora:
        return None
    from peft import LoraConfig

    return LoraConfig(
        r=recipe.lora_r,
        lora_alpha=recipe.lora_alpha,
        lora_dropout=0.0,
        target_modules="all-linear",
        task_type="CAUSAL_LM",
    )


def train_rows(dataset, n: int | None, seed: int):
    if n is None:
        return dataset
    if n > len(dataset):
        raise ValueError(f"num_train_rows={n} but the dataset has only {len(dataset)} rows")
    return dataset.shuffle(seed=seed).select(range(n))


# ----------------------------------------------------------------------------- main


def build_trainer(recipe: SFTRecipeArgs, args: SFTConfig) -> SFTTrainer:
    train = train_rows(
        summarization_dataset(recipe.dataset, "train", recipe.dataset_config, recipe.max_article_words),
        recipe.num_train_rows,
        args.seed,
    )
    policy, tok = load_policy(recipe.model_name_or_path)
    tok.padding_side = "right"  # training pads on the right; generation code switches to left
    trainer = SFTTrainer(
        model=policy, args=args, train_dataset=train, processing_class=tok, peft_config=lora_config(recipe)
    )
    info = trainer.card_info
    info.method = "supervised fine-tuning on reference summaries (SFT)"
    info.citations = ["trl", "stiennon2020", "huang2024"]
    info.dataset_name = recipe.dataset
    info.dataset_description = f"{len(train)} (article, reference summary) pairs"
    info.dataset_is_standin = recipe.dataset_is_standin
    if recipe.model_name_or_path == "offline":
        info.base_model = "HuggingFaceTB/SmolLM2-135M-Instruct"
    return trainer


def main(recipe: SFTRecipeArgs, args: SFTConfig) -> SFTTrainer:
    trainer = build_trainer(recipe, args)
    trainer.train()
    save_policy(trainer, trainer.processing_class, args.output_dir)
    trainer.create_model_card()
    return trainer


if __name__ == "__main__":
    recipe, args = TrlParser((SFTRecipeArgs, SFTConfig)).parse_args_and_config()
    main(recipe, args)
