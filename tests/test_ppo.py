"""PPOTrainer: reward and KL placement, values, resume, errors, a short end-to-end run on tiny models and a 2-process
DDP run. PPO's pure losses: test_losses.py; the value head: test_value_head.py; PPO-ptx and the checkpointed KL and
ptx state: test_kl_and_ptx.py."""

from __future__ import annotations

import json
import os

import pytest
import torch
from datasets import Dataset
from ppo_helpers import PROMPTS, PTX, RESUME_CONFIG, make_args, make_trainer, rollout

pytestmark = pytest.mark.usefixtures("one_torch_thread")


# ------------------------------------------------------------------------------------------------------------------
# Rewards on the right tokens
# ------------------------------------------------------------------------------------------------------------------


def test_score_on_eos_token_and_missing_eos_penalty(tiny_models, tok, tmp_path):
    args = make_args(tmp_path, kl_coef=0.0, missing_eos_penalty=1.0)
    trainer = make_trainer(tiny_models, tok, args)
    assert trainer.ref_model is None  # kl_coef = 0 and no target: no reference model
    eos = tok.eos_token_id
    out = rollout(trainer, [[10, 11, eos], [10, 11, 12, 13, 14, 15], [10, eos], [eos]])
    expected = torch.zeros(4, 6)
    expected[0, 2] = 2.0  # on the EOS token
    expected[1, 5] = 1.0  # no EOS: last token, score 2 - penalty 1
    expected[2, 1] = 2.0
    expected[3, 0] = 2.0
    assert torch.equal(out["rewards"], expected)
    assert out["scores"].tolist() == [2.0, 1.0, 2.0, 2.0]
    assert out["advantages"].shape == (4, 6)
    assert (out["advantages"][out["completion_mask"] == 0] == 0).all()


def test_score_on_custom_stop_token(tiny_models, tok, tmp_path):
    stop = 20
    args = make_args(tmp_path, kl_coef=0.0, missing_eos_penalty=0.5, stop_token_id=stop)
    trainer = make_trainer(tiny_models, tok, args)
    assert stop in trainer.generation_config.eos_token_id and tok.eos_token_id in trainer.eos_token_ids
    out = rollout(trainer, [[10, stop], [10, 11, 12, 13, 14, 15], [stop], [10, 11, tok.eos_token_id]])
    expected = torch.zeros(4, 6)
    expected[0, 1] = 2.0  # on the stop token, no penalty
    expected[1, 5] = 1.5  # neither stop nor EOS: penalised
    expected[2, 0] = 2.0
    expected[3, 2] = 2.0
    assert torch.equal(out["rewards"], expected)


@pytest.mark.parametrize("estimator,epochs", [("k1", 1), ("k3", 2)])
def test_kl_penalty_on_response_tokens_only_and_values_aligned(tiny_models, tok, tmp_path, estimator, epochs):
    args = make_args(tmp_path, kl_coef=0.1, kl_estimator=estimator, num_ppo_epochs=epochs)
    trainer = make_trainer(tiny_models, tok, args)
    torch.manual_seed(1)
    with torch.no_grad():  # move the policy away from the reference, and give the value head random weights
        for p in trainer.model.parameters():
            p.add_(0.3 * torch.randn_like(p))
    eos = tok.eos_token_id
    out = rollout(trainer, [[10, 11, eos], [10, 11, 12, 13, 14, 15], [10, eos], [eos]])
    ids = torch.cat([out["prompt_ids"], out["completion_ids"]], dim=1)
    attn = torch.cat([out["prompt_mask"], out["completion_mask"]], dim=1)
    width, mask = out["completion_ids"].size(1), out["completion_mask"].float()

    def completion_logps(model):
        with torch.no_grad():
            logits = model(input_ids=ids, attention_mask=attn).logits[:, -width - 1 : -1].float()
        return torch.log_softmax(logits, -1).gather(-1, out["completion_ids"].unsqueeze(-1)).squeeze(-1)

    policy, ref = completion_logps(trainer.model), completion_logps(trainer.ref_model)
    log_ratio = policy - ref
    expected_kl = (log_ratio if estimator == "k1" else torch.expm1(-log_ratio) + log_ratio) * mask
    assert out["kl"].shape == (4, 6)  # response positions only: the prompt never enters the reward
    assert torch.allclose(out["kl"], expected_kl, atol=1e-4)
    assert (out["kl"][mask == 0] == 0).all() and (out["kl"][mask == 1] != 0).all()
    assert torch.allclose(out["old_per_token_logps"] * mask, policy * mask, atol=1e-4)

    expected_rewards = -0.1 * expected_kl
    last = mask.sum(1).long() - 1
    expected_rewards[torch.arange(4), last] += 2.0
    assert torch.allclose(out["rewards"], expected_rewards, atol=1e-4)

    # The value of response token t is read from the hidden state that chooses it (position t - 1).
    with torch.no_grad():
        hidden = trainer.model.model(input_ids=ids, attention_mask=attn).last_hidden_state
        values = trainer.model.v_head(hidden).squeeze(-1)[:, -width - 1 : -1]
    assert torch.allclose(out["old_values"], values * mask, atol=1e-4)


# ------------------------------------------------------------------------------------------------------------------
# Resuming (the checkpointed KL and ptx state: test_kl_and_ptx.py)
# ------------------------------------------------------------------------------------------------------------------


def _resume_trainer(tiny_models, tok, folder, **overrides):
    """Adaptive KL, ptx, and 2 PPO epochs x 2 accumulated minibatches: one generation feeds 2 optimizer steps."""
    half = len(tok) // 2

    def low_half_fraction(completion_ids, **kwargs):  # depends on the sampled tokens, so on the generation RNG
        return [sum(t < half for t in ids) / max(1, len(ids)) for ids in completion_ids]

    args = make_args(folder, **(RESUME_CONFIG | overrides))
    return make_trainer(tiny_models, tok, args, reward=low_half_fraction, ptx_dataset=PTX)


def _record_resume_state(trainer):
    """Spy on ``trainer``: the completions of each generation, the ptx batches drawn, and the torch/python/numpy RNG
    states when each optimizer step begins, keyed by the (1-based) optimizer step."""
    import random

    import numpy as np
    from transformers import TrainerCallback

    seen = {"completions": {}, "ptx": {}, "rng": {}}
    generate, draw = trainer._generate_and_score_completions, trainer.draw_ptx_batch

    def spy_generate(inputs):
        out = generate(inputs)
        seen["completions"][trainer.state.global_step + 1] = out["completion_ids"].clone()
        return out

    def spy_draw():
        position = trainer.ptx_position
        batch = draw()
        seen["ptx"][trainer.state.global_step + 1] = (position, batch["input_ids"].clone())
        return batch

    class RNGAtStepBegin(TrainerCallback):
        def on_step_begin(self, args, state, control, **kwargs):
            seen["rng"][state.global_step + 1] = (torch.get_rng_state(), random.getstate(), np.random.get_state())

    trainer._generate_and_score_completions, trainer.draw_ptx_batch = spy_generate, spy_draw
    trainer.add_callback(RNGAtStepBegin())
    return seen


def test_resume_matches_uninterrupted_run_with_adaptive_kl_ptx_and_value_head(tiny_models, tok, tmp_path):
    """Run A trains 6 optimizer steps uninterrupted; run B (same config and max_steps, so the same LR schedule) is
    stopped after the step-2 checkpoint, and a new trainer with a freshly loaded policy resumes from it. With 2 PPO
    epochs and 2 accumulated minibatches, each generation feeds 2 optimizer steps: steps 3 and 5 sample completions
    (torch RNG), score them with a reward that depends on the sampled tokens and update the adaptive KL coefficient;
    steps 4 and 6 replay the buffer reshuffled (torch RNG again); every step adds one ptx batch; 16 prompts make 4
    steps per epoch, so step 5 also starts a new shuffled epoch. The resumed run must match run A: the RNG states at
    each step, the completions, the ptx rows, the KL coefficient and ptx position, the step-3..6 metrics, and every
    weight including the value head (saved apart from the model, in value_head/).
    Tolerance atol 1e-6, rtol 0: in fp32 on the same CPU the resumed run replays the same operations from exactly
    stored weights, optimizer and RNG states; a real divergence moves the weights by far more (> 1e-4, asserted)."""
    from rlhf_ext.testing import resume

    seen = {}
    runs = resume.interrupt_and_resume(
        lambda folder: _resume_trainer(tiny_models, tok, folder, max_steps=6, save_steps=2),
        tmp_path,
        stop_after=2,
        prepare=lambda trainer: seen.setdefault(len(seen), _record_resume_state(trainer)),
    )
    full, interrupted, resumed = runs.full, runs.interrupted, runs.resumed
    full_seen, resumed_seen = seen[0], seen[1]
    checkpoint = tmp_path / "b" / "out" / "checkpoint-2"
    assert (checkpoint / "value_head" / "value_head.safetensors").is_file()
    assert interrupted.kl_ctl.value != 0.1 and interrupted.ptx_position == 2  # state worth restoring
    assert runs.steps_run == [3, 4, 5, 6]  # only the remaining steps ran
    resumed_steps = (3, 4, 5, 6)

    # RNG states, sampled completions and ptx rows of the resumed steps
    assert set(resumed_seen["rng"]) == set(resumed_steps)
    for step in resumed_steps:
        torch_a, python_a, numpy_a = full_seen["rng"][step]
        torch_b, python_b, numpy_b = resumed_seen["rng"][step]
        assert torch.equal(torch_a, torch_b), step
        assert python_a == python_b, step
        assert numpy_a[0] == numpy_b[0] and (numpy_a[1] == numpy_b[1]).all() and numpy_a[2:] == numpy_b[2:], step
    assert set(resumed_seen["completions"]) == {3, 5}  # one generation feeds two optimizer steps
    for step in (3, 5):
        assert torch.equal(resumed_seen["completions"][step], full_seen["completions"][step]), step
    assert not torch.equal(full_seen["completions"][3], full_seen["completions"][5])
    assert set(resumed_seen["ptx"]) == set(resumed_steps)
    for step in resumed_steps:
        position, ids = resumed_seen["ptx"][step]
        assert position == full_seen["ptx"][step][0] == step - 1
        assert torch.equal(ids, full_seen["ptx"][step][1])

    # KL controller and ptx position
    assert resumed.kl_ctl.value == full.kl_ctl.value
    assert resumed.ptx_position == full.ptx_position == 6

    # Every weight, the value head included
    expected, at_checkpoint = resume.named_tensors(full.model), resume.named_tensors(interrupted.model)
    assert {"v_head.weight", "v_head.bias"} <= expected.keys()
    weight_diff = resume.assert_same_weights(full.model, resumed.model, atol=1e-6)
    moved = resume.max_weight_diff(expected, at_checkpoint)
    head_moved = (expected["v_head.weight"] - at_checkpoint["v_head.weight"]).abs().max().item()
    assert moved > 1e-4 and head_moved > 1e-4

    # Logged metrics of the resumed steps (step_time is wall-clock); rollout metrics come with each generation
    full_logs = resume.step_logs(full, resumed_steps)
    assert full_logs[3]["objective/kl_coef"] == pytest.approx(interrupted.kl_ctl.value)
    assert full_logs[5]["objective/kl_coef"] != full_logs[3]["objective/kl_coef"]  # updated after step 3's batch

    def required(step):
        keys = {"loss", "loss/ptx", "loss/policy_avg", "loss/value_avg", "learning_rate", "grad_norm"}
        return keys | ({"objective/kl_coef", "objective/kl", "objective/scores"} if step in (3, 5) else set())

    diffs = resume.assert_same_step_metrics(full, resumed, resumed_steps, required, atol=1e-6, ignore={"step_time"})
    print(
        f"max |weight diff| {weight_diff:.3g} (steps 3-6 moved {moved:.3g}, value head {head_moved:.3g}), "
        f"metric diffs {diffs}"
    )


def test_resume_inside_a_generation_cycle_replays_the_buffered_rollouts(tiny_models, tok, tmp_path):
    """One generation feeds optimizer steps 1-2, the next 3-4, so checkpoint-1 falls inside a cycle. TRL does not
    checkpoint its rollout buffer: without it a resumed run would sample fresh rollouts from the updated policy at
    step 2 (and update the KL controller once more) where the uninterrupted run replays step 1's, restart its
    micro-step count so that every later generation comes one optimizer step early (steps 2 and 4), and end 0.026
    away in weights. The checkpoint carries the buffer (per process), so the resumed run matches run A: no generation
    at step 2, the same completions at step 3, KL coefficient, step-2..4 metrics and weights (atol 1e-6, rtol 0, as
    above)."""
    from rlhf_ext.testing import resume

    seen = {}
    runs = resume.interrupt_and_resume(
        lambda folder: _resume_trainer(tiny_models, tok, folder, max_steps=4, save_steps=1),
        tmp_path,
        stop_after=1,
        prepare=lambda trainer: seen.setdefault(len(seen), _record_resume_state(trainer)),
    )
    full, resumed = runs.full, runs.resumed
    full_seen, resumed_seen = seen[0], seen[1]
    assert set(full_seen["completions"]) == {1, 3}
    out = tmp_path / "a" / "out"
    assert (out / "checkpoint-1" / "rollout_buffer_0.pt").is_file()  # inside a cycle: the buffer is saved ...
    assert not (out / "checkpoint-2" / "rollout_buffer_0.pt").exists()  # ... at a cycle boundary there is none
    assert runs.steps_run == [2, 3, 4]

    assert set(resumed_seen["completions"]) == {3}  # step 2 replayed the buffered rollouts
    assert torch.equal(resumed_seen["completions"][3], full_seen["completions"][3])
    assert resumed.kl_ctl.value == full.kl_ctl.value and resumed.ptx_position == full.ptx_position == 4
    assert "v_head.weight" in resume.named_tensors(full.model)
    resume.assert_same_weights(full.model, resumed.model, atol=1e-6)
    resume.assert_same_step_metrics(
        full,
        resumed,
        [2, 3, 4],
        lambda step: {"loss", "loss/ptx", "loss/policy_avg"},
        atol=1e-6,
        ignore={"step_time"},
    )


# ------------------------------------------------------------------------------------------------------------------
# Errors
# ------------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "overrides,match",
    [
        ({"loss_type": "grpo"}, "loss_type"),
        ({"scale_rewards": "batch"}, "scale_rewards"),
        ({"entropy_coef": 0.01}, "entropy_coef"),
        ({"use_adaptive_entropy": True}, "use_adaptive_entropy"),
        ({"top_entropy_quantile": 0.5}, "top_entropy_quantile"),
        ({"importance_sampling_level": "sequence"}, "importance_sampling_level"),
        ({"epsilon_high": 0.3}, "epsilon_high"),
        ({"mask_truncated_completions": True}, "mask_truncated_completions"),
        ({"use_vllm": True}, "use_vllm"),
        ({"off_policy_mask_threshold": 0.5}, "off_policy_mask_threshold"),
        ({"beta": 0.3}, "kl_coef"),
        ({"num_iterations": 3}, "num_ppo_epochs"),
        ({"kl_target": 0.0}, "kl_target"),
        ({"kl_target": -1.0}, "kl_target"),
        ({"kl_horizon": 0}, "kl_horizon"),
        ({"kl_coef": 0.0, "kl_target": 6.0}, "kl_coef"),
        ({"max_completion_length": 0}, "max_completion_length"),
        ({"ptx_batch_size": 0}, "ptx_batch_size"),
        ({"kl_estimator": "k2"}, "kl_estimator"),
        ({"ptx_coef": -1.0}, "ptx_coef"),
        ({"num_generations": 3}, "num_generations"),  # 4 episodes per batch are not divisible by 3
        ({"generation_batch_size": 6}, "generation_batch_size"),  # not a multiple of the global batch size 4
    ],
)
def test_config_rejects_ignored_or_bad_options(tmp_path, overrides, match):
    with pytest.raises(ValueError, match=match):
        make_args(tmp_path, **overrides)


def test_trainer_rejects_bad_inputs(tiny_models, tok, tmp_path):
    from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer

    args = make_args(tmp_path)
    with pytest.raises(ValueError, match="ptx_dataset"):
        make_trainer(tiny_models, tok, make_args(tmp_path, ptx_coef=1.0))
    with pytest.raises(ValueError, match="ptx_dataset"):
        make_trainer(tiny_models, tok, make_args(tmp_path, ptx_coef=1.0), ptx_dataset=PROMPTS)
    with pytest.raises(ValueError, match=r"^train_dataset must have a 'prompt' column; it has \['query'\]\.$"):
        make_trainer(tiny_models, tok, args, train_dataset=Dataset.from_dict({"query": ["a", "b"]}))
    no_pad = AutoTokenizer.from_pretrained(tiny_models.tokenizer)
    no_pad.pad_token = None
    with pytest.raises(ValueError, match="pad"):
        make_trainer(tiny_models, no_pad, args)
    config = AutoConfig.from_pretrained(str(tiny_models.reward_model))
    config.num_labels = 2
    two_labels = AutoModelForSequenceClassification.from_config(config)
    with pytest.raises(ValueError, match="num_labels"):
        make_trainer(tiny_models, tok, args, reward=two_labels)
    with pytest.raises(ValueError, match="tools"):
        make_trainer(tiny_models, tok, args, tools=[len])
    with pytest.raises(ValueError, match="rollout_func"):
        make_trainer(tiny_models, tok, args, rollout_func=lambda prompts, trainer: {})
    with pytest.raises(ValueError, match="PPOConfig"):
        from trl import GRPOConfig

        make_trainer(tiny_models, tok, GRPOConfig(output_dir=str(tmp_path), use_cpu=True, bf16=False))


# ------------------------------------------------------------------------------------------------------------------
# End to end
# ------------------------------------------------------------------------------------------------------------------


def test_end_to_end_reward_rises_and_adaptive_kl_reacts(tiny_models, tok, tmp_path):
    """A token-fraction reward (share of response tokens from the lower half of the vocabulary) rises within a short
    high-learning-rate run; the KL above the target makes the adaptive controller raise beta, each update fed the
    batch's mean summed KL and its episode count."""
    half = len(tok) // 2

    def low_half_fraction(completion_ids, **kwargs):
        return [sum(t < half for t in ids) / max(1, len(ids)) for ids in completion_ids]

    args = make_args(
        tmp_path,
        per_device_train_batch_size=16,
        gradient_accumulation_steps=1,
        num_ppo_epochs=2,
        max_completion_length=8,
        learning_rate=3e-2,
        lr_scheduler_type="constant",
        max_steps=16,
        kl_coef=0.01,
        kl_target=0.5,
        kl_horizon=64,
        vf_coef=0.5,
    )
    trainer = make_trainer(tiny_models, tok, args, reward=low_half_fraction)
    updates = []
    update = trainer.kl_ctl.update

    def spy(current, n_steps):
        updates.append((current, n_steps, trainer.kl_ctl.value))
        return update(current, n_steps)

    trainer.kl_ctl.update = spy
    trainer.train()
    rows = [row for row in trainer.state.log_history if "objective/scores" in row]
    scores = [row["objective/scores"] for row in rows]
    kls = [row["objective/kl"] for row in rows]
    assert len(rows) == 8  # one batch of 16 episodes every 2 optimizer steps (2 PPO epochs)
    assert sum(scores[-2:]) / 2 > sum(scores[:2]) / 2 + 0.1, scores
    assert [n for _, n, _ in updates] == [16] * 8
    assert [c for c, _, _ in updates] == pytest.approx(kls, rel=1e-5, abs=1e-7)
    assert max(kls) > 0.5  # the policy drifted past the target ...
    # ... and beta always moved in the direction that pushes the KL back toward the target
    betas = [beta for _, _, beta in updates] + [trainer.kl_ctl.value]
    for (current, _, before), after in zip(updates, betas[1:]):
        assert (after > before) == (current > 0.5), (current, before, after)
    assert [row["objective/kl_coef"] for row in rows] == pytest.approx(betas[:-1])
    metric_names = {
        "objective/kl",
        "objective/entropy",
        "objective/non_score_reward",
        "objective/rlhf_reward",
        "objective/scores",
        "objective/kl_coef",
        "policy/approxkl_avg",
        "policy/clipfrac_avg",
        "loss/policy_avg",
        "loss/value_avg",
        "val/clipfrac_avg",
        "val/ratio",
    }
    logged = set().union(*(row.keys() for row in trainer.state.log_history))
    assert metric_names <= logged
    assert os.path.isdir(tmp_path / "out")


def test_minibatches_are_reshuffled_every_ppo_epoch(tiny_models, tok, tmp_path):
    args = make_args(tmp_path, kl_coef=0.0, per_device_train_batch_size=2, steps_per_generation=4, num_ppo_epochs=3)
    args.max_steps = 12
    trainer = make_trainer(tiny_models, tok, args)
    seen = []
    compute = trainer.compute_loss

    def spy(model, inputs, *a, **k):
        seen.append(tuple(sorted(inputs["completion_ids"].sum(1).tolist())))
        return compute(model, inputs, *a, **k)

    trainer.compute_loss = spy
    trainer.train()
    epochs = [seen[i : i + 4] for i in range(0, 12, 4)]  # 3 epochs x 4 minibatches of one 8-episode batch
    flat = [sorted(x for mb in epoch for x in mb) for epoch in epochs]
    assert flat[0] == flat[1] == flat[2]  # every epoch covers the same episodes ...
    assert len({tuple(epoch) for epoch in epochs}) > 1  # ... split differently


def test_docs_example_runs(tmp_path):
    import re
    from pathlib import Path

    doc = Path(__file__).resolve().parents[1] / "docs" / "ppo.md"
    code = re.findall(r"```python\n(.*?)```", doc.read_text(), re.S)[0]
    code = code.replace('"/tmp/tiny"', repr(str(tmp_path / "tiny"))).replace('"/tmp/ppo"', repr(str(tmp_path / "ppo")))
    namespace = {}
    exec(compile(code, str(doc), "exec"), namespace)  # noqa: S102 - our own documentation
    trainer = namespace["trainer"]
    assert trainer.state.global_step == 4
    assert trainer.ptx_position == 4
    assert trainer.kl_ctl.value != 0.15  # adapted after each of the two batches


DDP_SCRIPT = r"""
import json, os, sys
import torch
torch.set_num_threads(1)
from datasets import Dataset
from transformers import AutoTokenizer
from rlhf_ext import PPOConfig, PPOTrainer
from rlhf_ext.testing.distributed import teardown
models, tokenizer, out = sys.argv[1], sys.argv[2], sys.argv[3]
tok = AutoTokenizer.from_pretrained(tokenizer)
def reward(completion_ids, **kwargs):
    return [sum(t < 192 for t in ids) / max(1, len(ids)) for ids in completion_ids]
prompts = Dataset.from_dict({"prompt": ["The movie was", "A story", "The team", "Scientists said"] * 8})
ptx = Dataset.from_dict({"text": [f"Text number {i}: once upon a time there was a village." for i in range(10)]})
args = PPOConfig(output_dir=out, use_cpu=True, bf16=False, report_to="none", per_device_train_batch_size=4,
    gradient_accumulation_steps=2, max_completion_length=6, learning_rate=1e-3, max_steps=2, kl_coef=0.1,
    kl_target=1.0, kl_horizon=100, ptx_coef=0.5, ptx_batch_size=2, gradient_checkpointing=False,
    save_strategy="no", num_ppo_epochs=2, disable_tqdm=True)
trainer = PPOTrainer(model=models, reward_funcs=reward, args=args, train_dataset=prompts, ptx_dataset=ptx,
    processing_class=tok)
trainer.train()
rank = trainer.accelerator.process_index
with open(os.path.join(out, f"rank{rank}.json"), "w") as f:
    json.dump({"world": trainer.accelerator.num_processes, "kl": trainer.kl_ctl.value, "ptx": trainer.ptx_position,
               "head": trainer._value_model.v_head.weight.detach().flatten().tolist(),
               "lm_head": float(trainer.model.lm_head.weight.detach().double().sum()),
               "ptx_rows": trainer._ptx_indices(0)}, f)
teardown()  # destroys the gloo group and ends the process (see its docstring)
"""


def test_two_process_ddp_with_value_head_and_ptx(tiny_models, tmp_path):
    """2 CPU processes (gloo, accelerate launch with recipes/accelerate_configs/cpu_2proc.yaml): the value head and
    the extra ptx backward work under DDP; both ranks end with the same weights and KL coefficient, and draw
    different pretraining rows. (1-process parity: tests/test_distributed.py.)"""
    from rlhf_ext.testing.distributed import run_distributed

    script = tmp_path / "ddp.py"
    script.write_text(DDP_SCRIPT)
    run_distributed(script, tiny_models.causal_lm, tiny_models.tokenizer, tmp_path, timeout=300)
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert ranks[0]["world"] == 2
    assert ranks[0]["kl"] == ranks[1]["kl"] != 0.1
    assert ranks[0]["ptx"] == ranks[1]["ptx"] == 2
    assert ranks[0]["head"] == pytest.approx(ranks[1]["head"]) and any(ranks[0]["head"])
    assert ranks[0]["lm_head"] == pytest.approx(ranks[1]["lm_head"])
    assert not set(ranks[0]["ptx_rows"]) & set(ranks[1]["ptx_rows"])
