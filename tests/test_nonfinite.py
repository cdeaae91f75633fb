"""A non-finite loss term or gradient stops training with the step and the term named, before the update, and keeps
checkpoints.

Each trainer trains 2 optimizer steps with a checkpoint at step 2, then a NaN/inf is injected into one term at step 3
(through the model's output or the reward function, never through the weights): the error must name step 3 and the
term, the model in memory must still equal checkpoint-2, checkpoint-2 must be byte-for-byte what was written, and no
later checkpoint may exist.
"""

from __future__ import annotations

import hashlib
import math
from pathlib import Path

import pytest
import torch
from datasets import Dataset
from transformers import TrainerCallback

from rlhf_ext import NonFiniteLossError
from rlhf_ext.nonfinite import check_finite, check_finite_gradients

RANKED = [
    {"prompt": "The movie", "completions": [" was great", " was bad", " was fine"], "ranks": [0, 2, 1]},
    {"prompt": "The team", "completions": [" won", " lost"], "ranks": [0, 1]},
] * 8
PROMPTS = Dataset.from_dict({"prompt": ["The movie was", "A story", "The team won", "Scientists said"] * 4})
PTX = Dataset.from_dict(
    {"text": ["The council voted on Tuesday to approve the new budget for schools and roads."] * 4}
)


def common(tmp_path, **overrides):
    return (
        dict(
            output_dir=str(tmp_path / "out"),
            use_cpu=True,
            bf16=False,
            report_to="none",
            learning_rate=1e-3,
            max_steps=4,
            save_strategy="steps",
            save_steps=2,
            logging_steps=1,
            gradient_checkpointing=False,
            disable_tqdm=True,
            seed=0,
        )
        | overrides
    )


class Poison(TrainerCallback):
    """Switch ``flag['on']`` on once step 2 has ended (its checkpoint is written right after this callback)."""

    def __init__(self, flag):
        self.flag = flag

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == 2:
            self.flag["on"] = True


def poison_output(model, flag, value=float("nan")):
    """Multiply the model's logits by ``value`` once the flag is on (weights untouched)."""

    def hook(module, inputs, output):
        if flag["on"]:
            output.logits = output.logits * value
        return output

    return model.register_forward_hook(hook)


def poison_scores(model, flag, value=float("nan")):
    """Multiply a reward model's per-token scores (its ``score`` head's output) by ``value`` once the flag is on. The
    rewards are read from these scores whether a batch is packed (shared prompts) or one row per completion."""
    return model.score.register_forward_hook(lambda module, inputs, output: output * value if flag["on"] else output)


def digest(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir()) if p.is_file()}


def run_until_error(trainer, tmp_path, match):
    out = Path(trainer.args.output_dir)
    hashes = {}

    class Snapshot(TrainerCallback):  # the checkpoint's files as written, to compare after the failure
        def on_save(self, args, state, control, **kwargs):
            hashes.update(digest(out / f"checkpoint-{state.global_step}"))

    trainer.add_callback(Snapshot())
    with pytest.raises(NonFiniteLossError, match=match) as info:
        trainer.train()
    message = str(info.value)
    assert "optimizer step 3" in message and str(out / "checkpoint-2") in message and "is kept" in message
    assert sorted(p.name for p in out.glob("checkpoint-*")) == ["checkpoint-2"]
    assert hashes and digest(out / "checkpoint-2") == hashes
    assert trainer.state.global_step == 2
    return message


def assert_weights_equal_checkpoint(model, checkpoint: Path):
    from safetensors.torch import load_file

    saved = load_file(checkpoint / "model.safetensors")
    live = {k: v for k, v in model.state_dict().items() if k in saved}
    assert len(live) == len(saved) > 0
    for name, tensor in saved.items():
        torch.testing.assert_close(live[name], tensor, rtol=0, atol=0, msg=name)


def fake_trainer(output_dir, global_step=6):
    """The parts of a Trainer the checks read: step, output folder, one CPU process, no loss scaler."""
    from types import SimpleNamespace

    accelerator = SimpleNamespace(
        device=torch.device("cpu"), num_processes=1, scaler=None, state=SimpleNamespace(deepspeed_plugin=None)
    )
    return SimpleNamespace(
        state=SimpleNamespace(global_step=global_step),
        args=SimpleNamespace(output_dir=str(output_dir)),
        accelerator=accelerator,
    )


def test_check_finite_names_term_step_and_no_checkpoint(tmp_path):
    Fake = fake_trainer(tmp_path)
    check_finite(Fake, {"policy": torch.tensor([1.0, -2.0]), "value": 3.0})  # finite: no error
    with pytest.raises(NonFiniteLossError) as info:
        check_finite(Fake, {"policy": torch.tensor([1.0, math.inf]), "value": torch.tensor(float("nan")), "ptx": 0.5})
    message = str(info.value)
    assert "'policy' and 'value' loss at optimizer step 7" in message and "'ptx'" not in message
    assert "no checkpoint had been written yet" in message
    (tmp_path / "checkpoint-4").mkdir()
    (tmp_path / "checkpoint-12").mkdir()
    (tmp_path / "checkpoint-last").mkdir()  # not a step number: ignored
    with pytest.raises(NonFiniteLossError, match="checkpoint-12, is kept"):
        check_finite(Fake, {"ptx": torch.tensor(-math.inf)})


def test_check_finite_gradients_names_the_norm_and_lets_a_loss_scaler_recover(tmp_path):
    Fake = fake_trainer(tmp_path)
    check_finite_gradients(Fake, torch.tensor(3.5))  # finite: no error
    check_finite_gradients(Fake, None)  # no norm computed (e.g. DeepSpeed without one): nothing to check
    with pytest.raises(NonFiniteLossError) as info:
        check_finite_gradients(Fake, torch.tensor(math.inf))
    message = str(info.value)
    assert "gradient (norm inf) at optimizer step 7" in message and "backward pass overflowed" in message
    assert "holds step 6's weights" in message and "no checkpoint had been written yet" in message
    with pytest.raises(NonFiniteLossError, match="norm nan"):
        check_finite_gradients(Fake, float("nan"))
    Fake.accelerator.scaler = object()  # fp16 AMP: the GradScaler skips this step and lowers its scale
    check_finite_gradients(Fake, torch.tensor(math.inf))


def ranked_trainer(tiny_models, tiny_tokenizer, tmp_path, flag):
    """A RankedRewardTrainer on the tiny reward model whose Poison callback turns ``flag`` on after step 2."""
    from rlhf_ext import RankedRewardConfig, RankedRewardTrainer

    return RankedRewardTrainer(
        model=str(tiny_models.reward_model),
        args=RankedRewardConfig(**common(tmp_path, per_device_train_batch_size=2)),
        train_dataset=Dataset.from_list(RANKED),
        processing_class=tiny_tokenizer,
        callbacks=[Poison(flag)],
    )


def test_a_finite_loss_with_infinite_gradients_stops_before_the_update(tiny_models, tiny_tokenizer, tmp_path):
    """Step 3's loss is finite, but a hook makes one weight's gradient infinite: the stop names the gradient and step
    3, and the weights in memory are still checkpoint-2's (the optimizer never applied the bad gradient)."""
    flag = {"on": False}
    trainer = ranked_trainer(tiny_models, tiny_tokenizer, tmp_path, flag)
    weight = next(p for p in trainer.model.parameters() if p.requires_grad)
    weight.register_hook(lambda grad: grad * math.inf if flag["on"] else grad)
    message = run_until_error(trainer, tmp_path, r"gradient \(norm (inf|nan)\) at optimizer step 3")
    assert "loss was finite" in message
    assert_weights_equal_checkpoint(trainer.model, tmp_path / "out" / "checkpoint-2")


def test_ranked_reward_trainer_stops_on_nan_rewards(tiny_models, tiny_tokenizer, tmp_path):
    flag = {"on": False}
    trainer = ranked_trainer(tiny_models, tiny_tokenizer, tmp_path, flag)
    poison_scores(trainer.model, flag)
    run_until_error(trainer, tmp_path, "'pairwise' loss at optimizer step 3")
    assert_weights_equal_checkpoint(trainer.model, tmp_path / "out" / "checkpoint-2")


def test_orpo_trainer_stops_on_nan_logits_naming_both_terms(tiny_models, tiny_tokenizer, tmp_path):
    from transformers import AutoModelForCausalLM

    from rlhf_ext import ORPOConfig, ORPOTrainer

    flag = {"on": False}
    model = AutoModelForCausalLM.from_pretrained(tiny_models.causal_lm)
    poison_output(model, flag)
    trainer = ORPOTrainer(
        model=model,
        args=ORPOConfig(**common(tmp_path, per_device_train_batch_size=2, max_length=64)),
        train_dataset=Dataset.from_list(RANKED),
        processing_class=tiny_tokenizer,
        callbacks=[Poison(flag)],
    )
    run_until_error(trainer, tmp_path, "'sft' and 'odds_ratio' loss at optimizer step 3")
    assert_weights_equal_checkpoint(trainer.model, tmp_path / "out" / "checkpoint-2")


def test_ppo_trainer_stops_on_an_infinite_reward_naming_the_reward(tiny_models, tiny_tokenizer, tmp_path):
    from rlhf_ext import PPOConfig, PPOTrainer

    flag = {"on": False}

    def reward(completions, **kwargs):
        return [math.inf if flag["on"] else 1.0] * len(completions)

    args = PPOConfig(
        **common(tmp_path, per_device_train_batch_size=4, max_completion_length=6, num_ppo_epochs=1, ptx_coef=0.5)
    )
    trainer = PPOTrainer(
        model=str(tiny_models.causal_lm),
        reward_funcs=reward,
        args=args,
        train_dataset=PROMPTS,
        ptx_dataset=PTX,
        processing_class=tiny_tokenizer,
        callbacks=[Poison(flag)],
    )
    message = run_until_error(trainer, tmp_path, "'reward' loss at optimizer step 3")
    assert "reward=inf" in message
    assert_weights_equal_checkpoint(trainer.model, tmp_path / "out" / "checkpoint-2")


def test_ppo_trainer_stops_on_a_nan_ptx_loss(tiny_models, tiny_tokenizer, tmp_path):
    """The pretraining term runs its own forward: NaN logits there are named 'ptx', before any RL term."""
    from rlhf_ext import PPOConfig, PPOTrainer

    flag = {"on": False}
    args = PPOConfig(
        **common(tmp_path, per_device_train_batch_size=4, max_completion_length=6, num_ppo_epochs=1, ptx_coef=0.5)
    )
    trainer = PPOTrainer(
        model=str(tiny_models.causal_lm),
        reward_funcs=lambda completions, **kw: [1.0] * len(completions),
        args=args,
        train_dataset=PROMPTS,
        ptx_dataset=PTX,
        processing_class=tiny_tokenizer,
        callbacks=[Poison(flag)],
    )
    original = trainer.ptx_nll_sum

    def poisoned(model, batch):
        value = original(model, batch)
        return value * math.nan if flag["on"] else value

    trainer.ptx_nll_sum = poisoned
    run_until_error(trainer, tmp_path, "'ptx' loss at optimizer step 3")


def test_ddp_processes_stop_together_when_one_rank_goes_non_finite(tiny_models, tmp_path):
    """Rank 1 alone gets NaN rewards at step 2: both ranks raise naming step 2 (rank 0 from the all-reduced flag)
    instead of rank 0 waiting forever in the gradient all-reduce; the timeout turns a hang into a failure."""
    from rlhf_ext.testing.distributed import run_distributed

    worker = Path(__file__).with_name("nonfinite_ddp_worker.py")
    run_distributed(worker, tiny_models.tokenizer, tiny_models.reward_model, tmp_path, timeout=180)
    rank0, rank1 = ((tmp_path / f"rank{r}.txt").read_text() for r in (0, 1))
    for message in (rank0, rank1):
        assert "Non-finite 'pairwise' loss at optimizer step 2" in message
    assert "pairwise=nan" in rank1 and "pairwise=nan" not in rank0  # rank 0's own value was finite
