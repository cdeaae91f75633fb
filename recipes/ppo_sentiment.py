"""Stage 4 of the sentiment pipeline: PPO against the learned reward model, with Ziegler's adaptive KL.

    accelerate launch recipes/ppo_sentiment.py --config recipes/configs/ppo_sentiment_offline.yaml

The policy continues movie-review openings; the reward model of stage 3 scores each continuation at its
end; a per-token penalty -beta * KL(pi || pi_ref) keeps the policy near the initial one, and beta adapts
so the KL tracks a target (Ziegler et al. 2019, eq. 2): e = clip(KL/target - 1, -0.2, 0.2),
beta <- beta * (1 + e * n / horizon). With ``--ptx_coef > 0`` each optimizer step also takes the language-
modelling loss of one batch of review text (InstructGPT's PPO-ptx).

Where the offline default departs from the paper, and why (the paper's values in brackets):
- policy SmolLM2-135M-Instruct with LoRA r=16 on all linear layers [GPT-2 124M, full fine-tuning]: on 2 CPU
  cores LoRA keeps each optimizer step cheap; lr 3e-4 [1.41e-5] because LoRA adapters start at zero;
- 64 episodes per batch, 16 batches [512 per batch, 1M episodes]: the whole demo has 25 minutes;
- KL target 3 nats, horizon 1,024 episodes, initial beta 0.1 [6.0, 10,000, 0.15]: with ~1,000 episodes in
  all, the paper's horizon would move beta by under 3% over the whole run, i.e. no adaptation at all; a
  horizon of one run's length lets beta react within the run. The target is halved because the small
  policy reaches 6 nats only by drifting into degenerate text within this budget (see the closing note of
  the demo issue for the measured curve);
- 2 PPO epochs [4] over 2 minibatches per batch: the policy forward/backward is half of a step's time.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from trl import TrlParser

from rlhf_ext import PPOConfig, PPOTrainer
from rlhf_ext.continuation import load_policy, prompt_dataset

# ----------------------------------------------------------------------------- hyperparameters


@dataclass
class PPORecipeArgs:
    model_name_or_path: str = field(
        default="offline",
        metadata={"help": "Initial policy: a Hub id or folder, or 'offline' for SmolLM2-135M-Instruct."},
    )
    reward_model: str = field(
        default="outputs/sentiment/reward",
        metadata={"help": "Reward model folder (stage 3), or 'labeler' to reward with the labeler's score directly."},
    )
    task: str = field(default="sentiment", metadata={"help": "Labeler used when reward_model='labeler'."})
    prompts: str = field(
        default="offline",
        metadata={
            "help": "'offline' for the Rotten Tomatoes openings, or a Hub dataset with a `prompt` or `text` column."
        },
    )
    num_prompts: int = field(default=2048, metadata={"help": "Training prompts drawn from the review openings."})
    use_lora: bool = field(default=True, metadata={"help": "Train LoRA adapters instead of the full policy."})
    lora_r: int = field(default=16, metadata={"help": "LoRA rank."})
    lora_alpha: int = field(default=32, metadata={"help": "LoRA alpha."})
    dataset_is_standin: bool = field(
        default=True, metadata={"help": "Say on the card that the prompts are stand-ins."}
    )


# ----------------------------------------------------------------------------- main


def reward_funcs_for(recipe: PPORecipeArgs):
    if recipe.reward_model == "labeler":
        from rlhf_ext.offline.labelers import DescriptivenessLabeler, SentimentLabeler

        return {"sentiment": SentimentLabeler, "descriptiveness": DescriptivenessLabeler}[recipe.task]()
    return recipe.reward_model


def main(recipe: PPORecipeArgs, args: PPOConfig):
    prompts = prompt_dataset(recipe.prompts, "train")
    prompts = prompts.shuffle(seed=args.seed).select(range(min(recipe.num_prompts, len(prompts))))
    if args.ptx_coef > 0 and "text" not in prompts.column_names:
        raise ValueError(
            f"--ptx_coef > 0 needs review text: the prompt dataset {recipe.prompts!r} has no 'text' column"
        )
    ptx = prompts.select_columns(["text"]) if args.ptx_coef > 0 else None
    policy, tok = load_policy(recipe.model_name_or_path)
    peft_config = None
    if recipe.use_lora:
        from peft import LoraConfig

        peft_config = LoraConfig(
            r=recipe.lora_r,
            lora_alpha=recipe.lora_alpha,
            lora_dropout=0.0,
            target_modules="all-linear",
            task_type="CAUSAL_LM",
        )
    trainer = PPOTrainer(
        model=policy,
        reward_funcs=reward_funcs_for(recipe),
        args=args,
        train_dataset=prompts.select_columns(["prompt"]),
        ptx_dataset=ptx,
        processing_class=tok,
        peft_config=peft_config,
    )
    trainer.train()

    # Export a plain causal LM (LoRA merged, value head left out) that loads anywhere transformers does.
    model = trainer.accelerator.unwrap_model(trainer.model)
    if recipe.use_lora:
        model = model.merge_and_unload()
    model.save_pretrained(args.output_dir)
    tok.save_pretrained(args.output_dir)
    info = trainer.card_info
    info.dataset_name = "review-openings"
    info.dataset_description = "Rotten Tomatoes review openings (3-8 words) to continue"
    info.dataset_is_standin = recipe.dataset_is_standin
    if recipe.model_name_or_path == "offline":
        info.base_model = "HuggingFaceTB/SmolLM2-135M-Instruct"
    trainer.create_model_card()  # run_demo.py rewrites it with the evaluation results
    return trainer


if __name__ == "__main__":
    recipe, args = TrlParser((PPORecipeArgs, PPOConfig)).parse_args_and_config()
    main(recipe, args)
