"""The separate critic (rlhf_ext.critic): what a critic copied from the reward model predicts at step 0, critic-only
warm-up, saving beside the policy, export, LoRA, resume, and the errors for critics that cannot work."""

from __future__ import annotations

import pytest
import torch
from ppo_helpers import PTX, RESUME_CONFIG, make_trainer
from ppo_helpers import make_args as ppo_args

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def make_args(tmp_path, **overrides):
    """A separate critic copied from the tiny reward model, no KL unless asked, a learning rate that moves weights."""
    return ppo_args(tmp_path, **{"learning_rate": 1e-2, "kl_coef": 0.0, "critic_from_reward_model": True, **overrides})


def critic_trainer(tiny_models, tok, args, reward=None, **kwargs):
    return make_trainer(tiny_models, tok, args, reward=reward or str(tiny_models.reward_model), **kwargs)


def snapshot(module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.named_parameters()}


def policy_params(trainer) -> dict[str, torch.Tensor]:
    return {k: v for k, v in snapshot(trainer.model).items() if "value_model." not in k and "v_head" not in k}


def max_change(before, after) -> float:
    return max((after[k] - v).abs().max().item() for k, v in before.items())


# ------------------------------------------------------------------------------------------------------------------
# What the critic predicts at step 0
# ------------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("normalization", ["none", "initial_policy"])
def test_critic_from_reward_model_predicts_the_reward_models_prefix_scores(tiny_models, tok, tmp_path, normalization):
    """V(s_t) of response token t = the reward model's score of the prompt and the t response tokens before it (the
    policy's token ids, read at their last token), before any update. With reward normalisation the critic is put on
    the normalised scale: (score - mean) / std, mean and std those of the first batch's reward-model scores."""
    from transformers import AutoModelForSequenceClassification

    from rlhf_ext.reward_scoring import score_texts

    args = make_args(tmp_path, reward_normalization=normalization)
    trainer = critic_trainer(tiny_models, tok, args)
    trainer.model.train()
    out = trainer._generate_and_score_completions(next(iter(trainer.get_train_dataloader())))

    rm = AutoModelForSequenceClassification.from_pretrained(tiny_models.reward_model).eval()
    mean, std = 0.0, 1.0
    if normalization != "none":
        rows = range(out["completion_ids"].size(0))
        prompts = [tok.decode(out["prompt_ids"][i][out["prompt_mask"][i].bool()]) for i in rows]
        texts = [tok.decode(out["completion_ids"][i], skip_special_tokens=True) for i in rows]
        raw = score_texts(rm, tok, prompts, texts)  # what the reward model scored (the training format)
        mean, std = raw.mean().item(), raw.std(unbiased=False).item()
        assert trainer.reward_normalizer.mean == pytest.approx(mean, abs=1e-6)
        assert trainer.reward_normalizer.std == pytest.approx(std, rel=1e-5)
    checked = 0
    for row in range(out["completion_ids"].size(0)):
        prompt = out["prompt_ids"][row][out["prompt_mask"][row].bool()].tolist()
        n = int(out["completion_mask"][row].sum())
        completion = out["completion_ids"][row][:n].tolist()
        for t in range(n):
            ids = torch.tensor([prompt + completion[:t]])
            with torch.no_grad():
                expected = (rm(input_ids=ids).logits[0, 0].item() - mean) / std
            assert out["old_values"][row, t].item() == pytest.approx(expected, abs=1e-4), (row, t)
            checked += 1
    assert checked >= 4 * 2


# ------------------------------------------------------------------------------------------------------------------
# Warm-up
# ------------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("critic", ["separate", "trunk"])
def test_warmup_trains_the_critic_alone(tiny_models, tok, tmp_path, critic):
    from transformers import TrainerCallback

    args = make_args(
        tmp_path,
        critic_from_reward_model=critic == "separate",
        critic_warmup_steps=2,
        max_steps=3,
        kl_coef=0.1,
        kl_target=0.01,
        kl_horizon=16,
        ptx_coef=1.0,
        ptx_batch_size=2,
    )
    trainer = critic_trainer(tiny_models, tok, args, ptx_dataset=PTX)
    assert trainer.args.ddp_find_unused_parameters  # DDP must allow parameters without gradients

    def value_params():
        return snapshot(trainer.critic) if critic == "separate" else snapshot(trainer._value_model.v_head)

    if critic == "trunk":
        torch.nn.init.normal_(trainer._value_model.v_head.weight, std=0.1)
    start_policy, start_value = policy_params(trainer), value_params()
    seen = {}

    class AtStepEnd(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            seen[state.global_step] = (
                policy_params(trainer),
                value_params(),
                trainer.ptx_position,
                trainer.kl_ctl.value,
            )

    trainer.add_callback(AtStepEnd())
    trainer.train()
    for step in (1, 2):  # warm-up: the policy is bit-identical, the critic learns, no ptx, beta held
        policy, value, ptx_position, beta = seen[step]
        assert max_change(start_policy, policy) == 0.0, step
        assert max_change(start_value, value) > 0, step
        assert ptx_position == 0 and beta == 0.1, step
    optimizer_state = trainer.optimizer.state
    policy_param = next(p for n, p in trainer.model.named_parameters() if n.endswith("lm_head.weight"))
    assert policy_param in optimizer_state  # after step 3 only: Adam had no state for the frozen policy before
    policy, value, ptx_position, _ = seen[3]  # then PPO proper
    assert max_change(start_policy, policy) > 0 and ptx_position == 1
    rows = [r for r in trainer.state.log_history if "loss/value_avg" in r]
    assert [("loss/policy_avg" in r) for r in rows] == [False, False, True]


# ------------------------------------------------------------------------------------------------------------------
# Saving, export, LoRA, resume
# ------------------------------------------------------------------------------------------------------------------


def test_critic_is_saved_beside_the_policy_never_inside(tiny_models, tok, tmp_path):
    from safetensors import safe_open
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification

    args = make_args(tmp_path, max_steps=2, save_strategy="steps", save_steps=2, reward_normalization="initial_policy")
    trainer = critic_trainer(tiny_models, tok, args)
    trainer.train()
    trainer.save_model(str(tmp_path / "final"))
    ids = torch.tensor([tok("The movie was great")["input_ids"]])
    for folder in (tmp_path / "final", tmp_path / "out" / "checkpoint-2"):
        with safe_open(str(folder / "model.safetensors"), "pt") as f:
            assert not any("value_model" in k for k in f.keys())
        policy, info = AutoModelForCausalLM.from_pretrained(folder, output_loading_info=True)
        assert not info["unexpected_keys"] and not info["missing_keys"]
        assert sorted(p.name for p in folder.glob("*.safetensors")) == ["model.safetensors"]
        critic = AutoModelForSequenceClassification.from_pretrained(folder / "value_model").eval()
        for name, p in critic.named_parameters():
            assert torch.equal(p, dict(trainer.critic.named_parameters())[name]), name
        # the normalised scale travels with the critic's config
        assert critic.config.rlhf_ext_value_offset == pytest.approx(trainer.reward_normalizer.mean)
        assert critic.config.rlhf_ext_value_scale == pytest.approx(trainer.reward_normalizer.std)
        with torch.no_grad():
            assert critic(input_ids=ids).logits.shape == (1, 1)


def test_lora_policy_with_a_critic_and_export(tiny_models, tok, tmp_path):
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM

    from rlhf_ext.export import save_policy

    args = make_args(tmp_path, max_steps=2, kl_coef=0.05)
    lora = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"])
    trainer = critic_trainer(tiny_models, tok, args, peft_config=lora)
    assert trainer.ref_model is None  # the reference is the base model with the adapter off
    trainable = {n for n, p in trainer.model.named_parameters() if p.requires_grad}
    assert all("lora_" in n or ".value_model." in n for n in trainable)
    assert any(".value_model." in n for n in trainable) and any("lora_" in n for n in trainable)
    critic_before = snapshot(trainer.critic)
    trainer.train()
    assert max_change(critic_before, snapshot(trainer.critic)) > 0
    trainer.save_model(str(tmp_path / "adapter"))  # the adapter, and the critic beside it
    assert (tmp_path / "adapter" / "adapter_model.safetensors").is_file()
    assert (tmp_path / "adapter" / "value_model" / "model.safetensors").is_file()
    save_policy(trainer, tok, str(tmp_path / "export"))  # LoRA merged: a plain causal LM, critic beside it
    policy, info = AutoModelForCausalLM.from_pretrained(tmp_path / "export", output_loading_info=True)
    assert not info["unexpected_keys"] and not info["missing_keys"]
    assert (tmp_path / "export" / "value_model" / "config.json").is_file()


def _resume_trainer(tiny_models, tok, folder, **overrides):
    """test_ppo.py's resume setting (adaptive KL, ptx, one generation feeding 2 optimizer steps) with a critic copied
    from the reward model, normalised rewards and one warm-up step."""
    critic = dict(critic_warmup_steps=1, reward_normalization="initial_policy")
    args = make_args(folder, **(RESUME_CONFIG | critic | overrides))
    return critic_trainer(tiny_models, tok, args, ptx_dataset=PTX)


def test_resume_with_a_critic_matches_an_uninterrupted_run(tiny_models, tok, tmp_path):
    """Stopped after checkpoint-2 (inside a generation cycle: the rollout buffer is replayed) and resumed by a new
    trainer: every weight, the critic's included, the normalisation statistics, the critic's value scale, the KL
    coefficient, the ptx position and the step-3..6 metrics equal the uninterrupted run's (fp32, same CPU: 1e-6)."""
    from rlhf_ext.testing import resume

    runs = resume.interrupt_and_resume(
        lambda folder: _resume_trainer(tiny_models, tok, folder, max_steps=6, save_steps=2), tmp_path, stop_after=2
    )
    full, resumed = runs.full, runs.resumed
    checkpoint = tmp_path / "b" / "out" / "checkpoint-2"
    assert (checkpoint / "value_model" / "model.safetensors").is_file()
    assert runs.steps_run == [3, 4, 5, 6]
    assert any(k.endswith("value_model.score.weight") for k in resume.named_tensors(full.model))
    resume.assert_same_weights(full.model, resumed.model, atol=1e-6)
    untrained = _resume_trainer(tiny_models, tok, tmp_path / "c", max_steps=6).model
    assert resume.max_weight_diff(resume.named_tensors(full.model), resume.named_tensors(untrained)) > 1e-4
    assert resumed.reward_normalizer.state_dict() == full.reward_normalizer.state_dict()
    assert resumed.critic.config.rlhf_ext_value_offset == full.critic.config.rlhf_ext_value_offset
    assert resumed.kl_ctl.value == full.kl_ctl.value and resumed.ptx_position == full.ptx_position == 5
    resume.assert_same_step_metrics(
        full,
        resumed,
        [3, 4, 5, 6],
        lambda step: {"loss", "loss/policy_avg", "loss/value_avg", "loss/ptx"},
        atol=1e-6,
        ignore={"step_time"},
    )


@pytest.mark.parametrize("critic", ["separate", "trunk"])
def test_critic_learning_rate(tiny_models, tok, tmp_path, critic):
    args = make_args(
        tmp_path,
        critic_from_reward_model=critic == "separate",
        critic_learning_rate=1e-4,
        lr_scheduler_type="constant",
    )
    trainer = critic_trainer(tiny_models, tok, args)
    trainer.train()
    value = trainer.critic if critic == "separate" else trainer._value_model.v_head
    value_ids = {id(p) for p in value.parameters()}
    lrs = {}
    for group in trainer.optimizer.param_groups:
        kinds = {id(p) in value_ids for p in group["params"]}
        assert len(kinds) == 1  # no group mixes policy and critic parameters
        lrs.setdefault(kinds.pop(), set()).add(group["lr"])
    assert lrs == {True: {1e-4}, False: {1e-2}}
    assert sum(len(g["params"]) for g in trainer.optimizer.param_groups) == sum(
        1 for p in trainer.model.parameters() if p.requires_grad
    )


# ------------------------------------------------------------------------------------------------------------------
# Errors
# ------------------------------------------------------------------------------------------------------------------


def test_critics_that_cannot_work_are_refused(tiny_models, tok, tmp_path):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from rlhf_ext.testing.tiny_models import build_tiny_bert_reward_model

    bert = build_tiny_bert_reward_model(tmp_path / "bert")
    no_critic = dict(critic_from_reward_model=False)
    with pytest.raises(ValueError, match="decoder .* encoder"):  # a BERT critic would see the tokens after t
        critic_trainer(tiny_models, tok, make_args(tmp_path, **no_critic, value_model_path=str(bert)))
    with pytest.raises(ValueError, match="decoder .* encoder"):
        make_trainer(
            tiny_models,
            tok,
            make_args(tmp_path),
            reward=AutoModelForSequenceClassification.from_pretrained(bert),
            reward_processing_classes=AutoTokenizer.from_pretrained(bert),
        )
    with pytest.raises(ValueError, match="tokenizer differs from the policy's"):
        make_trainer(
            tiny_models,
            tok,
            make_args(tmp_path),
            reward=AutoModelForSequenceClassification.from_pretrained(tiny_models.reward_model),
            reward_processing_classes=AutoTokenizer.from_pretrained(bert),
        )
    with pytest.raises(ValueError, match="exactly one reward model"):
        critic_trainer(
            tiny_models, tok, make_args(tmp_path), reward=lambda completions, **kw: [0.0] * len(completions)
        )
    with pytest.raises(ValueError, match="Pass the critic once"):
        critic_trainer(tiny_models, tok, make_args(tmp_path), value_model=str(tiny_models.reward_model))
    policy = torch.nn.Linear(2, 2)  # an optimizer over other parameters than the critic's
    with pytest.raises(ValueError, match="does not hold the critic's parameters"):
        critic_trainer(tiny_models, tok, make_args(tmp_path), optimizers=(torch.optim.SGD(policy.parameters()), None))


@pytest.mark.parametrize(
    "overrides,match",
    [
        ({"critic_warmup_steps": -1}, "critic_warmup_steps"),
        ({"critic_learning_rate": 0.0}, "critic_learning_rate"),
        ({"value_model_path": "x"}, "either `value_model_path` or `critic_from_reward_model`"),
        ({"critic_warmup_steps": 2, "ddp_find_unused_parameters": False}, "ddp_find_unused_parameters=True"),
    ],
)
def test_critic_config_errors(tmp_path, overrides, match):
    with pytest.raises(ValueError, match=match):
        make_args(tmp_path, **overrides)


def test_docs_critic_table_is_generated_from_the_measured_json():
    """docs/ppo.md's trunk-vs-critic table is benchmarks/compare_critics.py's rendering of docs/ppo_critic.json (the
    measured run), so the numbers in the docs cannot drift from it."""
    import json
    from pathlib import Path

    from recipe_loader import load_benchmark

    root = Path(__file__).resolve().parents[1]
    module = load_benchmark("compare_critics")
    data = json.loads((root / "docs" / "ppo_critic.json").read_text())
    assert module.render(data) in (root / "docs" / "ppo.md").read_text()
    assert data["sentiment"]["trunk"]["eval"]["num_prompts"] == data["sentiment"]["critic"]["eval"]["num_prompts"]
