"""Tiny PPO/RLOO runs shared by test_ppo.py, test_value_head.py and test_rloo.py: prompts, pretraining text, a
constant reward, a fast config and the trainer on the session's tiny models (fixtures ``tiny_models`` and ``tok``)."""

from __future__ import annotations

from datasets import Dataset
from tiny_args import CPU

from rlhf_ext import PPOConfig, PPOTrainer

PROMPTS = Dataset.from_dict({"prompt": ["The movie was", "A story", "The team won", "Scientists said"] * 4})
PTX = Dataset.from_dict(
    {
        "text": [
            "The council voted on Tuesday to approve the new budget for schools and roads.",
            "Once upon a time there was a small village by the sea.",
            "Scientists said the storm would reach the coast by the weekend.",
            "The team won the final match after a late goal.",
            "A delightful, funny and warm story with a brilliant cast.",
            "Good, bad, happy, sad, great, awful.",
        ]
    }
)


# Resume tests: adaptive KL, ptx and 2 PPO epochs x 2 accumulated minibatches, so one generation feeds 2 optimizer
# steps and a checkpoint can fall inside a generation cycle.
RESUME_CONFIG = dict(
    kl_coef=0.1,
    kl_target=0.01,
    kl_horizon=20,
    ptx_coef=0.5,
    ptx_batch_size=2,
    gradient_accumulation_steps=2,
    num_ppo_epochs=2,
    learning_rate=1e-2,
    save_strategy="steps",
)


def constant_reward(completions, **kwargs):
    return [2.0] * len(completions)


def make_args(tmp_path, **overrides):
    kwargs = dict(
        output_dir=str(tmp_path / "out"),
        **CPU,
        per_device_train_batch_size=4,
        max_completion_length=6,
        learning_rate=1e-3,
        max_steps=1,
        logging_steps=1,
        gradient_checkpointing=False,
        save_strategy="no",
        num_ppo_epochs=1,
        seed=0,
    )
    kwargs.update(overrides)
    return PPOConfig(**kwargs)


def make_trainer(tiny_models, tok, args, reward=constant_reward, **kwargs):
    return PPOTrainer(
        model=str(tiny_models.causal_lm),
        reward_funcs=reward,
        args=args,
        train_dataset=kwargs.pop("train_dataset", PROMPTS),
        processing_class=tok,
        **kwargs,
    )


def rollout(trainer, completions=None):
    """One generation batch through the trainer; ``completions`` (token-id lists) replace the sampled ones."""
    if completions is not None:
        original = trainer._generate

        def fixed(prompts):
            result = list(original(prompts))
            result[1] = [list(c) for c in completions[: len(result[1])]]
            result[3] = trainer.processing_class.batch_decode(result[1], skip_special_tokens=True)
            return tuple(result)

        trainer._generate = fixed
    trainer.model.train()
    batch = next(iter(trainer.get_train_dataloader()))
    return trainer._generate_and_score_completions(batch)
