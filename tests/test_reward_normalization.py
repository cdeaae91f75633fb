"""Reward hygiene (rlhf_ext.reward_normalization) and the missing-EOS rules: normalised scores have mean 0 on their
reference set, statistics are checkpointed, clipping, and the two named missing-EOS rules (subtract / replace)."""

from __future__ import annotations

import pytest
import torch
from datasets import Dataset
from ppo_helpers import PROMPTS, constant_reward, make_args, make_trainer, rollout

from rlhf_ext import PPOTrainer
from rlhf_ext.reward_normalization import RewardNormalizer, clip_scores

pytestmark = pytest.mark.usefixtures("one_torch_thread")
REFERENCE = Dataset.from_dict(
    {
        "prompt": ["The movie was", "A story", "The team won", "Scientists said", "Once upon a time"],
        "completion": [" wonderful.", " about a village.", " the final.", " it would rain.", " there was a sea."],
    }
)


def test_normalizer_by_hand():
    norm = RewardNormalizer("initial_policy", use_std=True)
    scores = torch.tensor([1.0, 2.0, 3.0, 6.0])
    norm.fit(scores)
    assert (norm.mean, norm.std, norm.count) == (3.0, pytest.approx(1.8708287), 4)  # population std
    assert norm(scores).tolist() == pytest.approx([-1.0690, -0.5345, 0.0, 1.6036], abs=1e-4)
    shift = RewardNormalizer("initial_policy", use_std=False)
    shift.fit(scores)
    assert shift(scores).tolist() == [-2.0, -1.0, 0.0, 3.0]  # Huang et al.: mean 0, spread kept
    flat = RewardNormalizer("initial_policy")
    flat.fit(torch.tensor([2.0, 2.0]))
    assert (flat.mean, flat.std) == (2.0, 1.0)  # no spread to divide by: shift only
    restored = RewardNormalizer("initial_policy")
    restored.load_state_dict(norm.state_dict())
    assert restored.state_dict() == norm.state_dict()
    with pytest.raises(ValueError, match="source"):
        RewardNormalizer("reference").load_state_dict(norm.state_dict())
    assert clip_scores(torch.tensor([-3.0, 0.5, 9.0]), 2.0).tolist() == [-2.0, 0.5, 2.0]


def test_reference_normalisation_gives_its_reference_set_mean_zero(tiny_models, tok, tmp_path):
    """'reference': the statistics are those of the reward model's scores of reward_reference_dataset (scored in the
    training format); normalised, those scores have mean 0 and standard deviation 1."""
    from transformers import AutoModelForSequenceClassification

    from rlhf_ext.reward_scoring import score_texts

    args = make_args(tmp_path, kl_coef=0.0, reward_normalization="reference", local_rollout_forward_batch_size=2)
    trainer = make_trainer(
        tiny_models, tok, args, reward=str(tiny_models.reward_model), reward_reference_dataset=REFERENCE
    )
    out = rollout(trainer, [[10, 11, tok.eos_token_id]] * 4)
    rm = AutoModelForSequenceClassification.from_pretrained(tiny_models.reward_model).eval()
    raw = score_texts(rm, tok, REFERENCE["prompt"], REFERENCE["completion"])
    norm = trainer.reward_normalizer
    assert norm.count == 5  # every row once (2 + 2 + 1, the last chunk padded and dropped)
    assert norm.mean == pytest.approx(raw.mean().item(), abs=1e-6)
    assert norm.std == pytest.approx(raw.std(unbiased=False).item(), rel=1e-5)
    normalised = norm(raw)
    assert normalised.mean().item() == pytest.approx(0.0, abs=1e-6)
    assert normalised.std(unbiased=False).item() == pytest.approx(1.0, abs=1e-5)
    rollout_raw = trainer._last_rewards_per_func[:, 0]
    assert torch.allclose(out["scores"], (rollout_raw - norm.mean) / norm.std, atol=1e-6)


def test_initial_policy_normalisation_is_checkpointed(tiny_models, tok, tmp_path):
    """'initial_policy': the first batch of episodes is the reference set (its normalised scores average 0); the
    statistics are saved with each checkpoint and come back on resume instead of being refit."""
    from rlhf_ext.checkpoints import read_checkpoint_state

    args = make_args(tmp_path, reward_normalization="initial_policy", max_steps=2, save_strategy="steps", save_steps=1)
    trainer = make_trainer(tiny_models, tok, args, reward=str(tiny_models.reward_model))
    trainer.train()
    rows = [r for r in trainer.state.log_history if "objective/scores" in r]
    assert rows[0]["objective/scores"] == pytest.approx(0.0, abs=1e-5)  # float32 scores
    assert rows[0]["objective/raw_scores"] == pytest.approx(trainer.reward_normalizer.mean, abs=1e-6)
    state = read_checkpoint_state(tmp_path / "out" / "checkpoint-1", "reward_normalization")
    assert state == trainer.reward_normalizer.state_dict()

    args = make_args(tmp_path, kl_coef=0.0, reward_normalization="initial_policy", max_steps=2)
    resumed = make_trainer(tiny_models, tok, args, reward=str(tiny_models.reward_model))
    fit = resumed.reward_normalizer.fit
    resumed.reward_normalizer.fit = lambda scores: pytest.fail("refit after resume")
    resumed.train(resume_from_checkpoint=str(tmp_path / "out" / "checkpoint-1"))
    resumed.reward_normalizer.fit = fit
    assert resumed.reward_normalizer.state_dict() == state


def test_missing_eos_subtract_or_replace_and_clip(tiny_models, tok, tmp_path):
    """Three rules applied in order on the score (2.0 for every response here): normalise, clip, then the
    missing-EOS rule. Responses 1 and 3 never stop."""
    eos = tok.eos_token_id
    completions = [[10, eos], [10, 11, 12, 13, 14, 15], [eos], [12, 13, 14, 15, 16, 17]]
    cases = [
        ({"missing_eos_penalty": 1.0}, [2.0, 1.0, 2.0, 1.0]),  # TRL 1.12: subtract
        ({"missing_eos_score": -1.0}, [2.0, -1.0, 2.0, -1.0]),  # Huang et al.: replace
        ({"missing_eos_score": -1.0, "reward_clip_range": 1.5}, [1.5, -1.0, 1.5, -1.0]),  # the constant is not clipped
        # normalised on the first batch: all 2.0, so mean 2 and (no spread) std 1: every score becomes 0 first
        ({"missing_eos_score": -1.0, "reward_normalization": "initial_policy"}, [0.0, -1.0, 0.0, -1.0]),
    ]
    for overrides, expected in cases:
        trainer = make_trainer(tiny_models, tok, make_args(tmp_path, kl_coef=0.0, **overrides))
        out = rollout(trainer, completions)
        assert out["scores"].tolist() == expected, overrides
        last = out["completion_mask"].sum(1) - 1
        assert out["rewards"][torch.arange(4), last].tolist() == expected  # on the last response token


@pytest.mark.parametrize(
    "overrides,match",
    [
        ({"missing_eos_penalty": 1.0, "missing_eos_score": -1.0}, "either `missing_eos_penalty`"),
        ({"reward_normalization": "batch"}, "reward_normalization"),
        ({"reward_clip_range": 0.0}, "reward_clip_range"),
    ],
)
def test_config_errors(tmp_path, overrides, match):
    with pytest.raises(ValueError, match=match):
        make_args(tmp_path, kl_coef=0.0, **overrides)


def test_reference_normalisation_needs_its_dataset(tiny_models, tok, tmp_path):
    common = dict(model=str(tiny_models.causal_lm), reward_funcs=constant_reward, train_dataset=PROMPTS)
    args = make_args(tmp_path, kl_coef=0.0, reward_normalization="reference")
    with pytest.raises(ValueError, match="reward_reference_dataset"):
        PPOTrainer(**common, args=args, processing_class=tok)
    with pytest.raises(ValueError, match="`prompt` and `completion` columns"):
        PPOTrainer(**common, args=args, processing_class=tok, reward_reference_dataset=PROMPTS)
