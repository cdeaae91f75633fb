"""rlhf_ext.RLOOTrainer: TRL's RLOO with the adaptive KL coefficient and the pretraining mixture of kl_and_ptx.py."""

from __future__ import annotations

import json

import pytest
from ppo_helpers import PROMPTS, PTX, constant_reward
from tiny_args import CPU

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_rloo_adaptive_kl_and_ptx(tiny_models, tok, tmp_path):
    from rlhf_ext import RLOOConfig, RLOOTrainer

    args = RLOOConfig(
        output_dir=str(tmp_path / "rloo"),
        **CPU,
        per_device_train_batch_size=4,
        gradient_accumulation_steps=2,
        num_generations=2,
        max_completion_length=6,
        learning_rate=1e-2,
        max_steps=3,
        logging_steps=1,
        gradient_checkpointing=False,
        save_strategy="steps",
        save_steps=3,
        beta=0.05,
        kl_target=0.01,
        kl_horizon=16,
        ptx_coef=1.0,
        ptx_batch_size=2,
    )
    trainer = RLOOTrainer(
        model=str(tiny_models.causal_lm),
        reward_funcs=constant_reward,
        args=args,
        train_dataset=PROMPTS,
        processing_class=tok,
        ptx_dataset=PTX,
    )
    updates, draws = [], []
    update, draw = trainer.kl_ctl.update, trainer.draw_ptx_batch

    def spy_update(current, n_steps):
        updates.append((current, n_steps, trainer.kl_ctl.value))
        return update(current, n_steps)

    def spy_draw():
        draws.append(trainer.state.global_step)
        return draw()

    trainer.kl_ctl.update, trainer.draw_ptx_batch = spy_update, spy_draw
    trainer.train()
    rows = [row for row in trainer.state.log_history if "objective/kl_coef" in row]
    assert [n for _, n, _ in updates] == [8] * len(rows) and len(rows) >= 2
    assert [row["objective/kl_coef"] for row in rows] == pytest.approx([beta for _, _, beta in updates])
    assert [row["objective/kl"] for row in rows] == pytest.approx([c for c, _, _ in updates], abs=1e-6)
    betas = [beta for _, _, beta in updates] + [trainer.kl_ctl.value]
    for (current, _, before), after in zip(updates, betas[1:]):
        assert (after > before) == (current > 0.01)
    assert draws == [0, 1, 2] and trainer.ptx_position == 3
    state = json.loads((tmp_path / "rloo" / "checkpoint-3" / "rlhf_ext_state.json").read_text())
    assert state == {"kl_controller": trainer.kl_ctl.state_dict(), "ptx": {"position": 3}}
    with pytest.raises(ValueError, match="ptx_dataset"):
        RLOOTrainer(model=str(tiny_models.causal_lm), reward_funcs=constant_reward, args=args, train_dataset=PROMPTS)
