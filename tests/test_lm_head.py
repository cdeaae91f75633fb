"""rlhf_ext.lm_head: the compact LM head gives TRL's fused head's numbers (log-probs, entropies, loss, gradients) while
projecting only the labelled positions.

Tolerances: float32 against a float64 hand computation, log-probs and entropies to 1e-5 absolute, gradients to 1e-5
relative to their largest entry; against TRL's fused head (a different order of float32 sums) 2e-5 absolute for
log-probs and entropies, 1e-4 relative for gradients.
"""

from __future__ import annotations

import pytest
import torch

from rlhf_ext.lm_head import SelectedLogProbs, add_compact_lm_head

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def close(a, b, rel):
    return (a - b).abs().max() <= rel * b.abs().max()


@pytest.mark.parametrize("keep_probs_bytes", [1 << 30, 0], ids=["probs-kept", "probs-recomputed"])
@pytest.mark.parametrize("with_bias", [False, True])
def test_selected_log_probs_match_a_float64_hand_computation(keep_probs_bytes, with_bias):
    torch.manual_seed(0)
    n, hidden, vocab, temperature = 37, 16, 300, 0.7
    h = torch.randn(n, hidden, requires_grad=True)
    w = (0.3 * torch.randn(vocab, hidden)).requires_grad_()
    b = torch.randn(vocab, requires_grad=True) if with_bias else None
    targets = torch.randint(0, vocab, (n,))
    upstream = torch.randn(n)

    logps, entropy = SelectedLogProbs.apply(h, w, b, targets, temperature, keep_probs_bytes)
    (logps * upstream).sum().backward()
    assert not entropy.requires_grad

    h64, w64 = h.detach().double().requires_grad_(), w.detach().double().requires_grad_()
    b64 = b.detach().double().requires_grad_() if with_bias else None
    z = (h64 @ w64.t() + (b64 if with_bias else 0)) / temperature
    expected = z.log_softmax(-1).gather(1, targets[:, None]).squeeze(1)
    expected_entropy = -(z.softmax(-1) * z.log_softmax(-1)).sum(-1)
    (expected * upstream.double()).sum().backward()

    assert torch.allclose(logps.double(), expected, atol=1e-5)
    assert torch.allclose(entropy.double(), expected_entropy, atol=1e-5)
    assert close(h.grad.double(), h64.grad, 1e-5)
    assert close(w.grad.double(), w64.grad, 1e-5)
    if with_bias:
        assert close(b.grad.double(), b64.grad, 1e-5)


def test_rows_are_processed_in_chunks_with_the_same_result(monkeypatch):
    """Row chunks bound the forward's memory; a chunk of 2 rows gives what one chunk of all rows gives."""
    import rlhf_ext.lm_head as lm_head

    torch.manual_seed(1)
    h, w = torch.randn(9, 8, requires_grad=True), torch.randn(50, 8)
    targets = torch.randint(0, 50, (9,))
    whole, _ = SelectedLogProbs.apply(h, w, None, targets, 1.0)
    whole.sum().backward()
    grad, h.grad = h.grad.clone(), None
    monkeypatch.setattr(lm_head, "_CHUNK_ELEMENTS", 100)  # 2 rows of 50 logits per chunk
    chunked, _ = SelectedLogProbs.apply(h, w, None, targets, 1.0, 0)
    chunked.sum().backward()
    assert torch.allclose(whole, chunked, atol=1e-6) and torch.allclose(grad, h.grad, atol=1e-6)


def _fused_pair(path, peft: bool, outputs=("log_probs", "entropy")):
    """The same model twice: TRL's fused head alone, and wrapped by add_compact_lm_head (same weights)."""
    from transformers import AutoModelForCausalLM
    from trl.trainer.utils import add_fused_lm_head

    models = []
    for compact in (False, True):
        model = AutoModelForCausalLM.from_pretrained(path)
        add_fused_lm_head(model, temperature=0.7, outputs=outputs)
        if compact:
            assert add_compact_lm_head(model, 0.7, outputs)
        if peft:
            from peft import LoraConfig, get_peft_model

            torch.manual_seed(0)
            model = get_peft_model(
                model, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj", "up_proj"])
            )
            for name, p in model.named_parameters():
                if "lora_B" in name:  # a fresh adapter is zero: give it weights so it matters
                    torch.nn.init.normal_(p, std=0.1)
        models.append(model)
    return models


@pytest.mark.parametrize("peft", [False, True], ids=["full", "lora"])
def test_compact_head_gives_trls_fused_outputs_and_gradients(tiny_models, peft):
    dpo_outputs = ("log_probs", "entropy", "mean_logits", "is_top1")  # what trl.DPOTrainer asks of the head
    trl_model, compact_model = _fused_pair(tiny_models.causal_lm, peft, dpo_outputs)
    torch.manual_seed(2)
    ids = torch.randint(5, 300, (3, 12))
    attention = torch.ones_like(ids)
    attention[0, :4] = 0  # left padding
    attention[2, -3:] = 0  # a response that stopped early
    labels = ids.masked_fill(attention == 0, -100)
    labels[:, :6] = -100  # the prompt is not scored
    with torch.no_grad():  # make label 8 each row's most likely token, so is_top1 has True entries too
        labels[:, 8] = trl_model(input_ids=ids, attention_mask=attention).logits[:, 7].argmax(-1)
    outputs = []
    for model in (trl_model, compact_model):
        out = model(input_ids=ids, attention_mask=attention, labels=labels, fused_lm_head=True)
        (out.log_probs.sum() + out.loss).backward()
        grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
        outputs.append((out, grads))
    (a, grads_a), (b, grads_b) = outputs
    assert a.log_probs.shape == b.log_probs.shape == (3, 11)
    assert torch.equal(a.label_mask, b.label_mask)
    assert (b.log_probs[~b.label_mask] == 0).all() and (b.entropy[~b.label_mask] == 0).all()
    assert torch.allclose(a.log_probs, b.log_probs, atol=2e-5)
    assert torch.allclose(a.entropy, b.entropy, atol=2e-5)
    assert torch.allclose(a.loss, b.loss, atol=2e-5)
    assert torch.allclose(a.mean_logits, b.mean_logits, atol=2e-5) and (b.mean_logits[~b.label_mask] == 0).all()
    assert b.is_top1.dtype == torch.bool and torch.equal(a.is_top1, b.is_top1)
    assert a.is_top1[:, 7].all() and not a.is_top1[a.label_mask].all()  # the comparison can fail either way
    assert grads_a.keys() == grads_b.keys() and grads_a
    if peft:
        assert all("lora" in n for n in grads_b)
    for name in grads_a:
        assert close(grads_b[name], grads_a[name], 1e-4), name


def test_calls_it_does_not_cover_go_to_trls_forward(tiny_models):
    from transformers import AutoModelForCausalLM
    from trl.trainer.utils import add_fused_lm_head

    model = AutoModelForCausalLM.from_pretrained(tiny_models.causal_lm)
    add_fused_lm_head(model, temperature=1.0)
    trl_forward = model.forward
    calls = []
    model.forward = lambda *a, **k: calls.append(k) or trl_forward(*a, **k)
    add_compact_lm_head(model, 1.0)
    ids = torch.randint(5, 300, (2, 6))
    with torch.no_grad():
        model(input_ids=ids, attention_mask=torch.ones_like(ids), shift_labels=ids, fused_lm_head=True)
        model(input_ids=ids)  # plain forward (generation, the ptx loss)
        model(input_ids=ids, labels=ids, fused_lm_head=True)  # covered: never reaches TRL's
    assert [("shift_labels" in k and k["shift_labels"] is not None) for k in calls] == [True, False]

    softcapped = AutoModelForCausalLM.from_pretrained(tiny_models.causal_lm)
    softcapped.config.final_logit_softcapping = 30.0
    add_fused_lm_head(softcapped, temperature=1.0)
    assert add_compact_lm_head(softcapped, 1.0) is False  # scaled/soft-capped logits: TRL's head stays

    weighted = AutoModelForCausalLM.from_pretrained(tiny_models.causal_lm)
    add_fused_lm_head(weighted, temperature=1.0, outputs=("log_probs", "log_sum_sq_probs"))
    assert add_compact_lm_head(weighted, 1.0, ("log_probs", "log_sum_sq_probs")) is False  # a field it lacks
