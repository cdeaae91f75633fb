"""rlhf_ext.fast_rollouts: each speed-up gives the plain computation's numbers.

- ``lora_merged`` puts the original weight tensors back bit for bit and samples from the same distribution;
- ``SamplerRecorder``'s log-probs and values equal a scoring pass over the sampled sequences;
- ``scoring_calls`` runs every row once, cuts only columns that are padding in all rows of a call, and its order puts
  the outputs back in row order; ``trimmed_prefill`` samples the same tokens from the same logits;
- a PPO trainer with every switch on and one with every switch off produce the same rollout (old and reference
  log-probs, KL, values, rewards, advantages, returns), the same loss and gradients, and the same weights after
  training: with and without LoRA, with the trunk head and with a separate critic, on prompts of unequal lengths
  whose scoring passes the fast trainer runs in groups without their shared padding.

Tolerances (float32): log-probs, values, KL, rewards, advantages, returns and losses to 1e-5 absolute (the sampler's
numbers come from generate()'s cached forward, the plain ones from a full forward; LoRA merged vs unmerged adds
another float32 rounding); gradients to 1e-4 relative to their largest entry; weights after 2 optimizer steps to 1e-5.
"""

from __future__ import annotations

import contextlib

import pytest
import torch
from datasets import Dataset
from ppo_helpers import make_args, make_trainer

from rlhf_ext import fast_rollouts
from rlhf_ext.fast_rollouts import (
    SamplerRecorder,
    in_row_order,
    lora_merged,
    mergeable_lora_layers,
    scoring_calls,
    trimmed_prefill,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")

SWITCHES = ("logprobs_from_sampler", "merge_adapters_for_generation", "compact_lm_head", "trim_prompt_padding")
# Prompts of 1 to 10 tokens: left-padded to the longest, most rows start with padding.
UNEQUAL_PROMPTS = Dataset.from_dict(
    {"prompt": ["Hi", "The council voted on Tuesday to approve the new budget", "A story", "Scientists said"] * 4}
)


def lora_policy(path, seed=0, **lora_kwargs):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(path)
    kwargs = dict(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj", "up_proj"]) | lora_kwargs
    model = get_peft_model(model, LoraConfig(**kwargs))
    randomize_adapters(model, seed)
    return model


def randomize_adapters(model, seed):
    """A fresh adapter's B is zero (merging it would change nothing): give every adapter weights."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_" in name:
                p.copy_(0.2 * torch.randn(p.shape, generator=generator))


# ------------------------------------------------------------------------------------------------------------------
# lora_merged
# ------------------------------------------------------------------------------------------------------------------


def test_lora_merged_samples_the_same_distribution_and_restores_the_weights_exactly(tiny_models):
    model = lora_policy(tiny_models.causal_lm).eval()
    ids = torch.randint(5, 300, (2, 9))
    before = {n: (p.detach().clone(), p.data_ptr()) for n, p in model.named_parameters()}
    with torch.no_grad():
        unmerged = model(input_ids=ids).logits
        with lora_merged(model) as merged:
            assert merged
            folded = model(input_ids=ids).logits
            assert any(not torch.equal(p, before[n][0]) for n, p in model.named_parameters())
        after = model(input_ids=ids).logits
    assert torch.allclose(folded, unmerged, atol=1e-5)
    assert torch.equal(after, unmerged)
    for name, p in model.named_parameters():  # the very tensors of before: nothing was subtracted back
        assert torch.equal(p, before[name][0]) and p.data_ptr() == before[name][1], name


def test_lora_merged_restores_the_weights_after_an_error(tiny_models):
    model = lora_policy(tiny_models.causal_lm)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    with pytest.raises(RuntimeError, match="boom"), lora_merged(model):
        raise RuntimeError("boom")
    assert all(torch.equal(p, before[n]) for n, p in model.named_parameters())
    assert all(not m.disable_adapters for m in model.modules() if hasattr(m, "lora_A"))


def test_lora_merged_leaves_what_it_cannot_fold_exactly_alone(tiny_models):
    assert mergeable_lora_layers(lora_policy(tiny_models.causal_lm, use_dora=True)) is None  # DoRA rescales
    assert mergeable_lora_layers(lora_policy(tiny_models.causal_lm).to(torch.bfloat16)) is None  # bf16 rounds delta
    with_dropout = lora_policy(tiny_models.causal_lm, lora_dropout=0.1)
    assert mergeable_lora_layers(with_dropout.train()) is None  # sampling with dropout differs from merged weights
    assert mergeable_lora_layers(with_dropout.eval())
    with lora_merged(lora_policy(tiny_models.causal_lm, use_dora=True)) as merged:
        assert not merged


# ------------------------------------------------------------------------------------------------------------------
# SamplerRecorder
# ------------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("policy", ["full", "lora", "lora-merged"])
def test_sampler_log_probs_and_values_equal_a_scoring_pass(tiny_models, tok, policy):
    """Left-padded prompts of different lengths, responses that stop at different steps (many stop tokens)."""
    from transformers import AutoModelForCausalLM
    from trl.trainer.utils import add_fused_lm_head

    from rlhf_ext.lm_head import add_compact_lm_head
    from rlhf_ext.value_head import add_position_ids, add_value_head

    if policy == "full":
        model = inner = AutoModelForCausalLM.from_pretrained(tiny_models.causal_lm)
    else:
        model = lora_policy(tiny_models.causal_lm)
        inner = model.get_base_model()
    add_fused_lm_head(inner, temperature=0.7, outputs=("log_probs", "entropy"))
    add_compact_lm_head(inner, 0.7)
    head = add_value_head(inner)
    add_position_ids(inner)
    torch.manual_seed(0)
    torch.nn.init.normal_(head.weight)
    model.eval()

    tok.padding_side = "left"
    prompts = tok(["Hi", "The council voted on Tuesday to approve", "A story", "Scientists said"], padding=True,
                  return_tensors="pt")  # fmt: skip
    stops = list(range(40, 140))  # about a quarter of the vocabulary ends a response
    torch.manual_seed(3)
    with torch.no_grad(), lora_merged(model) if policy == "lora-merged" else torch.no_grad():
        with SamplerRecorder(inner, 0.7, head) as recorder:
            generated = model.generate(**prompts, do_sample=True, temperature=0.7, top_k=0, max_new_tokens=8,
                                       eos_token_id=stops, pad_token_id=tok.pad_token_id)  # fmt: skip
    completions = generated[:, prompts["input_ids"].size(1) :]
    cut = []
    for row in completions.tolist():
        end = next((i + 1 for i, t in enumerate(row) if t in stops), len(row))
        cut.append(row[:end])
    lengths = [len(c) for c in cut]
    assert len(set(lengths)) > 1 and max(lengths) == completions.size(1)  # rows stopped at different steps

    scores = recorder.result(cut)
    mask = torch.zeros_like(completions)
    for i, n in enumerate(lengths):
        mask[i, :n] = 1
    scores = scores.scores(completions * mask + tok.pad_token_id * (1 - mask), mask)
    assert scores is not None  # the sampled tokens, so the recorder's numbers stand in for a scoring pass
    assert scores.tokens.shape == completions.shape and torch.equal(
        scores.tokens[mask.bool()], completions[mask.bool()]
    )
    ids = torch.cat([prompts["input_ids"], completions], 1)
    attention = torch.cat([prompts["attention_mask"], mask], 1)
    labels = ids.masked_fill(attention == 0, -100)
    labels[:, : prompts["input_ids"].size(1)] = -100
    with torch.no_grad():
        plain = model(input_ids=ids, attention_mask=attention, labels=labels, fused_lm_head=True, return_values=True)
    width = completions.size(1)
    m = mask.bool()
    assert torch.allclose(scores.logps[m], plain.log_probs[:, -width:][m], atol=1e-5)
    assert torch.allclose(scores.values[m], plain.value_preds[:, -width:][m], atol=1e-5)

    other = completions.clone()
    other[0, 0] = (other[0, 0] + 1) % 300
    assert recorder.result(cut).scores(other, mask) is None  # not the sampled tokens: the caller scores them itself


# ------------------------------------------------------------------------------------------------------------------
# scoring_calls: scoring passes without the prompts' shared left padding
# ------------------------------------------------------------------------------------------------------------------


def left_padded_mask(prompt_lengths, prompt_width, completion_lengths):
    width = prompt_width + max(completion_lengths)
    mask = torch.zeros(len(prompt_lengths), width, dtype=torch.long)
    for i, (p, c) in enumerate(zip(prompt_lengths, completion_lengths, strict=True)):
        mask[i, prompt_width - p : prompt_width + c] = 1
    return mask


@pytest.mark.parametrize("overhead", [0, 8, 10_000])
def test_scoring_calls_cut_only_shared_padding_and_restore_the_row_order(overhead):
    prompt_lengths = [3, 12, 2, 12, 5, 1, 2, 9]
    mask = left_padded_mask(prompt_lengths, 12, [4, 6, 6, 2, 6, 6, 5, 6])
    calls, order = scoring_calls(mask, keep=6, batch_size=5, overhead=overhead)
    rows = torch.cat([r for r, _ in calls])
    assert sorted(rows.tolist()) == list(range(8))  # every row once
    for r, first in calls:
        assert len(r) <= 5 and (r < 5).all() | (r >= 5).all()  # within the plain pass's chunks of batch_size rows
        assert not mask[r, :first].any()  # only padding is cut
        assert first <= 12 - 1  # the last prompt column (it predicts the first completion token) stays
    assert torch.equal(in_row_order([r for r, _ in calls], order), torch.arange(8))
    values = torch.arange(8.0)[:, None] * torch.ones(1, 3)  # per-row outputs of the calls, back in row order
    assert torch.equal(in_row_order([values[r] for r, _ in calls], order), values)
    tokens = sum(len(r) * (mask.size(1) - first) for r, first in calls)
    if overhead == 0:  # every distinct padding of a chunk gets its call: no padding column is run at all
        assert tokens == sum(mask.size(1) - (12 - p) for p in prompt_lengths)
        assert len(calls) == 4 + 3  # chunk [3, 12, 2, 12, 5] and chunk [1, 2, 9]
    if overhead == 10_000:  # one call per chunk (rows by padding, most first), cut to its longest prompt
        assert [(r.tolist(), first) for r, first in calls] == [([2, 0, 4, 1, 3], 0), ([5, 6, 7], 3)]


def test_scoring_calls_group_rows_at_least_cost():
    mask = left_padded_mask([1, 1, 1, 1, 20, 20], 20, [4] * 6)  # 4 short prompts and 2 long ones
    calls, order = scoring_calls(mask, keep=4, batch_size=6, overhead=10)
    assert [(sorted(r.tolist()), first) for r, first in calls] == [([0, 1, 2, 3], 19), ([4, 5], 0)]
    assert torch.equal(order, torch.arange(6))  # columns were cut (else None); the groups are already in row order
    # long prompts first: the short ones' call comes first, and the order puts each row's output back in its place
    mask = left_padded_mask([20, 1, 1, 20, 1, 1], 20, [4] * 6)
    calls, order = scoring_calls(mask, keep=4, batch_size=6, overhead=10)
    assert [(r.tolist(), first) for r, first in calls] == [([1, 2, 4, 5], 19), ([0, 3], 0)]
    assert order.tolist() == [4, 0, 1, 5, 2, 3]
    per_call = [torch.tensor([[10.0 * row] for row in r.tolist()]) for r, _ in calls]
    assert in_row_order(per_call, order).flatten().tolist() == [0.0, 10.0, 20.0, 30.0, 40.0, 50.0]


def test_scoring_calls_are_the_plain_chunks_when_nothing_is_cut():
    for mask in (left_padded_mask([4, 4, 4], 4, [2, 3, 1]), left_padded_mask([1, 3, 3], 3, [2, 2, 2])):
        calls, order = scoring_calls(mask, keep=3, batch_size=2, overhead=10_000)
        assert order is None and [(r.tolist(), first) for r, first in calls] == [([0, 1], 0), ([2], 0)]
    mask = left_padded_mask([1, 3, 2], 3, [2, 2, 2])
    calls, order = scoring_calls(mask, keep=3, batch_size=2, trim=False, overhead=0)
    assert order is None and all(first == 0 for _, first in calls)


def test_trimmed_prefill_samples_the_same_tokens_from_the_same_logits(tiny_models, tok, monkeypatch):
    from transformers import AutoModelForCausalLM

    monkeypatch.setattr(fast_rollouts, "CALL_OVERHEAD_TOKENS", 0)
    model = AutoModelForCausalLM.from_pretrained(tiny_models.causal_lm).eval()
    tok.padding_side = "left"
    prompts = tok(["Hi", "The council voted on Tuesday to approve", "A story", "Scientists said", "Hi there"],
                  padding=True, return_tensors="pt")  # fmt: skip
    widths = []
    model.model.layers[0].register_forward_pre_hook(lambda module, args: widths.append(args[0].shape[:2]))
    runs = []
    for trim in (False, True):
        widths.clear()
        torch.manual_seed(3)
        with torch.no_grad(), trimmed_prefill(model) if trim else contextlib.nullcontext():
            out = model.generate(**prompts, do_sample=True, temperature=0.7, top_k=0, max_new_tokens=6,
                                 output_scores=True, return_dict_in_generate=True,
                                 pad_token_id=tok.pad_token_id)  # fmt: skip
            runs.append(out)
        runs[-1].widths = list(widths)
    plain, trimmed = runs
    assert torch.equal(plain.sequences, trimmed.sequences)
    for a, b in zip(plain.scores, trimmed.scores, strict=True):
        assert torch.allclose(a, b, atol=1e-5)
    prompt_width = prompts["input_ids"].size(1)
    assert plain.widths[0] == (5, prompt_width)  # one prompt pass over the padded batch, then one-token steps
    # the prompt pass ran in groups, each narrower than the batch but the one with the longest prompt
    groups = trimmed.widths[: len(trimmed.widths) - len(plain.widths) + 1]
    assert len(groups) > 1 and sum(rows for rows, _ in groups) == 5 and min(cols for _, cols in groups) < prompt_width
    assert trimmed.widths[len(groups) :] == plain.widths[1:]
    assert "forward" not in model.model.__dict__  # the backbone's own forward is back


# ------------------------------------------------------------------------------------------------------------------
# PPOTrainer with every switch on vs every switch off
# ------------------------------------------------------------------------------------------------------------------


def _trainer(tiny_models, tok, folder, on: bool, variant: str):
    from peft import LoraConfig

    extra, kwargs = {}, {}
    if variant == "lora":
        kwargs["peft_config"] = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj", "up_proj"])
    if variant == "critic":
        extra["value_model_path"] = str(tiny_models.reward_model)
    args = make_args(folder, kl_coef=0.1, temperature=0.7, num_ppo_epochs=2, max_steps=2, learning_rate=1e-2,
                     **{switch: on for switch in SWITCHES}, **extra)  # fmt: skip
    trainer = make_trainer(tiny_models, tok, args, reward=str(tiny_models.reward_model),
                           train_dataset=UNEQUAL_PROMPTS, **kwargs)  # fmt: skip
    generator = torch.Generator().manual_seed(7)
    with torch.no_grad():
        if variant == "lora":
            randomize_adapters(trainer.model, 1)
        else:  # the reference is a copy of the policy: move the policy away from it
            for p in trainer.accelerator.unwrap_model(trainer.model).parameters():
                p.add_(0.1 * torch.randn(p.shape, generator=generator))
        if trainer.critic is None:
            trainer._value_model.v_head.weight.normal_(generator=generator)
    return trainer


def _count_calls(trainer):
    """Counts, on the policy, no-grad scoring calls with the adapters on and LoRA products while sampling; records
    the (rows, columns) of every scoring call."""
    counts = {"scoring": 0, "lora_while_sampling": 0, "shapes": []}
    sampling = [False]

    def scoring(module, args, kwargs):
        policy_runs = kwargs.get("fused_lm_head") and not kwargs.get("values_only")
        if policy_runs and not torch.is_grad_enabled() and trainer._policy_adapters_active():
            counts["scoring"] += 1
        if kwargs.get("fused_lm_head"):
            counts["shapes"].append(tuple(kwargs["input_ids"].shape))

    def lora(module, args, output):
        counts["lora_while_sampling"] += sampling[0]

    trainer._value_model.register_forward_pre_hook(scoring, with_kwargs=True)
    for name, module in trainer.model.named_modules():
        if name.endswith("lora_A.default"):
            module.register_forward_hook(lora)
    generate = trainer._generate_single_turn

    def flagged(*args, **kwargs):
        sampling[0] = True
        try:
            return generate(*args, **kwargs)
        finally:
            sampling[0] = False

    trainer._generate_single_turn = flagged
    return counts


@pytest.fixture
def one_call_per_padding(monkeypatch):
    """scoring_calls gives every distinct prompt padding its own call: the tiny batches gain nothing otherwise."""
    monkeypatch.setattr(fast_rollouts, "CALL_OVERHEAD_TOKENS", 0)


@pytest.mark.parametrize("variant", ["full", "lora", "critic"])
def test_ppo_with_every_speedup_gives_the_plain_numbers(tiny_models, tok, tmp_path, variant, one_call_per_padding):
    trainers = [_trainer(tiny_models, tok, tmp_path / str(on), on, variant) for on in (False, True)]
    counts = [_count_calls(t) for t in trainers]
    rollouts = []
    for trainer in trainers:
        trainer.model.train()
        batch = next(iter(trainer.get_train_dataloader()))
        torch.manual_seed(11)
        rollouts.append(trainer._generate_and_score_completions(batch))
    plain, fast = rollouts
    assert torch.equal(plain["completion_ids"], fast["completion_ids"])  # same samples to compare on
    for key in ("old_per_token_logps", "ref_per_token_logps", "old_values", "kl", "rewards", "advantages", "returns"):
        if plain.get(key) is None:
            assert key == "ref_per_token_logps" and fast.get(key) is None
            continue
        m = plain["completion_mask"].bool()
        assert torch.allclose(plain[key][m], fast[key][m], atol=1e-5), key
    # the fast trainer skipped the old log-prob pass of the policy and sampled without the adapter's products
    assert counts[0]["scoring"] - counts[1]["scoring"] == 1
    if variant == "lora":
        assert counts[0]["lora_while_sampling"] > 0 and counts[1]["lora_while_sampling"] == 0

    losses, grads = [], []
    for trainer, rollout in zip(trainers, rollouts):
        trainer.model.zero_grad()
        trainer.current_gradient_accumulation_steps = 1  # set by the training loop, which this test does not run
        loss = trainer.compute_loss(trainer.model, rollout)
        loss.backward()
        losses.append(loss.detach())
        grads.append({n: p.grad.clone() for n, p in trainer.model.named_parameters() if p.grad is not None})
    assert torch.allclose(losses[0], losses[1], atol=1e-5)
    # the plain trainer ran whole batches; the fast one ran calls without padding columns, narrower than the batch
    full_width = rollouts[0]["prompt_ids"].size(1) + rollouts[0]["completion_ids"].size(1)
    assert {columns for _, columns in counts[0]["shapes"]} == {full_width}
    assert min(columns for _, columns in counts[1]["shapes"]) < full_width
    assert len(counts[1]["shapes"]) > len(counts[0]["shapes"])
    assert grads[0].keys() == grads[1].keys() and grads[0]
    for name, g in grads[0].items():
        assert (grads[1][name] - g).abs().max() <= 1e-4 * g.abs().max() + 1e-7, name


def test_ppo_training_with_and_without_the_speedups_ends_at_the_same_weights(
    tiny_models, tok, tmp_path, one_call_per_padding
):
    """2 optimizer steps (one rollout, 2 epochs) with LoRA: weights and logged metrics agree to float32 rounding."""
    runs = []
    for on in (False, True):
        trainer = _trainer(tiny_models, tok, tmp_path / str(on), on, "lora")
        torch.manual_seed(11)
        trainer.train()
        weights = {n: p.detach().clone() for n, p in trainer.model.named_parameters() if p.requires_grad}
        logs = {
            k: v for row in trainer.state.log_history for k, v in row.items() if k.startswith(("objective/", "loss/"))
        }
        runs.append((weights, logs))
    (w_plain, logs_plain), (w_fast, logs_fast) = runs
    assert w_plain.keys() == w_fast.keys()
    for name in w_plain:
        assert torch.allclose(w_plain[name], w_fast[name], atol=1e-5), name
    assert logs_plain.keys() == logs_fast.keys()
    for key in logs_plain:
        assert logs_plain[key] == pytest.approx(logs_fast[key], abs=1e-4), key
