"""rlhf_ext.kl_and_ptx through PPOTrainer: InstructGPT's pretraining mixture (its gradient, its untempered logits, one
batch per optimizer step) and the KL controller and ptx position kept in checkpoints, also those of the released
format. The adaptive KL on RLOO: test_rloo.py; resume runs that replay the rollout buffer: test_ppo.py."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F
from ppo_helpers import PTX, make_args, make_trainer

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _grads(model):
    return {
        n: (p.grad.detach().clone() if p.grad is not None else torch.zeros_like(p))
        for n, p in model.named_parameters()
    }


def test_ptx_gradient_is_coef_times_lm_loss_gradient(tiny_models, tok, tmp_path):
    coef = 3.0
    args = make_args(tmp_path, kl_coef=0.05, ptx_coef=coef, ptx_batch_size=3, num_ppo_epochs=4)
    trainer = make_trainer(tiny_models, tok, args, ptx_dataset=PTX)
    trainer.current_gradient_accumulation_steps = 1
    model = trainer.model
    model.train()
    batch = next(iter(trainer.get_train_dataloader()))

    model.zero_grad()
    trainer.training_step(model, batch)  # generates once; buffered for the next calls (num_ppo_epochs = 4)
    with_ptx = _grads(model)
    ptx_batch = trainer._ptx_batch
    assert trainer.ptx_position == 1

    model.zero_grad()
    rows, trainer._ptx_rows = trainer._ptx_rows, None
    trainer.training_step(model, batch)  # same buffered episodes, same weights, no ptx term
    without = _grads(model)
    trainer._ptx_rows = rows

    # Independent LM loss of that batch: mean next-token cross-entropy over its real tokens, untempered logits.
    model.zero_grad()
    logits = model(input_ids=ptx_batch["input_ids"], attention_mask=ptx_batch["attention_mask"]).logits
    targets = ptx_batch["input_ids"][:, 1:].masked_fill(ptx_batch["attention_mask"][:, 1:] == 0, -100)
    F.cross_entropy(logits[:, :-1].reshape(-1, logits.size(-1)), targets.reshape(-1), ignore_index=-100).backward()
    lm = _grads(model)

    checked = 0
    for name in with_ptx:
        assert torch.allclose(with_ptx[name] - without[name], coef * lm[name], atol=1e-5, rtol=1e-4), name
        checked += int(lm[name].abs().sum() > 0)
    assert checked > 10


def test_ptx_is_not_tempered(tiny_models, tok, tmp_path):
    """The ptx loss ignores the sampling temperature (the fused log-prob head divides logits by it)."""
    losses = []
    for temperature in (1.0, 0.3):
        args = make_args(tmp_path, kl_coef=0.0, ptx_coef=1.0, temperature=temperature)
        trainer = make_trainer(tiny_models, tok, args, ptx_dataset=PTX)
        batch = trainer.draw_ptx_batch()
        with torch.no_grad():
            losses.append(trainer.ptx_nll_sum(trainer.model, batch).item())
    assert losses[0] == pytest.approx(losses[1], rel=1e-6)


def test_ptx_batch_drawn_once_per_optimizer_step(tiny_models, tok, tmp_path):
    args = make_args(tmp_path, kl_coef=0.0, ptx_coef=1.0, ptx_batch_size=4, gradient_accumulation_steps=2, max_steps=3)
    trainer = make_trainer(tiny_models, tok, args, ptx_dataset=PTX)
    draws, chunks = [], []
    draw, nll = trainer.draw_ptx_batch, trainer.ptx_nll_sum

    def spy_draw():
        draws.append((trainer.state.global_step, trainer.ptx_position))
        return draw()

    def spy_nll(model, batch):
        chunks.append((trainer.state.global_step, batch["input_ids"].size(0)))
        return nll(model, batch)

    trainer.draw_ptx_batch, trainer.ptx_nll_sum = spy_draw, spy_nll
    trainer.train()
    assert draws == [(0, 0), (1, 1), (2, 2)]  # one batch per optimizer step, in order
    assert chunks == [(0, 2), (0, 2), (1, 2), (1, 2), (2, 2), (2, 2)]  # split across the 2 micro-steps
    assert trainer.ptx_position == 3
    assert any("loss/ptx" in row for row in trainer.state.log_history)


@pytest.mark.parametrize("released_format", [False, True])
def test_checkpoint_restores_kl_coef_ptx_position_and_value_head(tiny_models, tok, tmp_path, released_format):
    """``released_format``: the checkpoint's state is rewritten as rlhf_ext 0.1.0.dev0 wrote it (ppo_state.json)."""
    common = dict(
        kl_coef=0.1, kl_target=0.01, kl_horizon=20, ptx_coef=0.5, ptx_batch_size=2, save_strategy="steps", save_steps=2
    )
    trainer = make_trainer(tiny_models, tok, make_args(tmp_path, max_steps=2, **common), ptx_dataset=PTX)
    trainer.train()
    ckpt = tmp_path / "out" / "checkpoint-2"
    state = json.loads((ckpt / "rlhf_ext_state.json").read_text())
    assert state["ptx"]["position"] == 2
    assert state["kl_controller"]["value"] == pytest.approx(trainer.kl_ctl.value)
    assert state["kl_controller"]["value"] != 0.1  # the controller moved
    if released_format:
        old = {"kl_ctl": state["kl_controller"], "ptx_position": state["ptx"]["position"]}
        (ckpt / "ppo_state.json").write_text(json.dumps(old))
        (ckpt / "rlhf_ext_state.json").unlink()
    saved_head = trainer.model.v_head.weight.detach().clone()

    resumed = make_trainer(tiny_models, tok, make_args(tmp_path, max_steps=3, **common), ptx_dataset=PTX)
    assert resumed.kl_ctl.value == 0.1 and resumed.ptx_position == 0
    seen = {}
    load = resumed._load_optimizer_and_scheduler

    def spy_load(checkpoint):
        load(checkpoint)
        seen.update(kl=resumed.kl_ctl.value, ptx=resumed.ptx_position, head=resumed.model.v_head.weight.clone())

    resumed._load_optimizer_and_scheduler = spy_load
    resumed.train(resume_from_checkpoint=str(ckpt))
    assert seen["kl"] == pytest.approx(state["kl_controller"]["value"])
    assert seen["ptx"] == 2
    assert torch.equal(seen["head"], saved_head)
    step3 = next(row for row in resumed.state.log_history if row.get("step") == 3 and "objective/kl_coef" in row)
    assert step3["objective/kl_coef"] == pytest.approx(state["kl_controller"]["value"])
    assert resumed.ptx_position == 3
