"""rlhf_ext.shared_prompt: a ranked element packed as [prompt, y_1, ..., y_K] gives the numbers of K unshared rows.

Equality is checked for values and gradients, in float32, on tiny random Llama, GPT-NeoX, Qwen2 and GPT-2 models
(scalar reward heads and causal LMs), with the packed rows padded left and right, mixed K, an element with no common
prefix, a completion that is a prefix of another, sdpa and eager attention, gradient checkpointing and LoRA; then
through RankedRewardTrainer and ORPOTrainer (ties, margins, centering, both pair weightings), the fallback and its
message, the switch, and resuming. Tolerance: 1e-5 absolute. The two paths run the same float32 operations on
different layouts (a dense block mask instead of a causal kernel, one prompt gradient summed over K uses instead of
K copies summed by the optimizer step): the largest differences seen were ~3e-7 on values and ~1e-6 on gradients.
"""

from __future__ import annotations

import logging
import math
import random

import pytest
import torch
from datasets import Dataset
from tiny_args import CPU

from rlhf_ext.shared_prompt import (
    PAD_SEGMENT,
    PROMPT_SEGMENT,
    SHARED_KEYS,
    SharedPrompt,
    block_attention_mask,
    common_prefix_length,
    pack,
    unsupported_reason,
)

TOL = 1e-5
ARCHITECTURES = ("llama", "gpt_neox", "qwen2", "gpt2")
PAD = 0


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def tiny_model(architecture: str, kind: str, vocab_size: int = 400, attention: str = "sdpa", pad_token_id=PAD):
    """A random-init float32 model without dropout (so train mode is deterministic): 2 layers, hidden 32."""
    from transformers import (
        AutoModelForCausalLM,
        AutoModelForSequenceClassification,
        GPT2Config,
        GPTNeoXConfig,
        LlamaConfig,
        Qwen2Config,
    )

    common = dict(vocab_size=vocab_size, pad_token_id=pad_token_id, num_labels=1)
    if architecture == "llama":
        config = LlamaConfig(
            hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2
        )
    elif architecture == "gpt_neox":
        config = GPTNeoXConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4)
    elif architecture == "qwen2":
        config = Qwen2Config(
            hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2
        )
    elif architecture == "gpt2":
        config = GPT2Config(
            n_embd=32, n_layer=2, n_head=4, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, bos_token_id=1
        )
        config.eos_token_id = 2
    else:
        raise ValueError(architecture)
    for key, value in common.items():
        setattr(config, key, value)
    config._attn_implementation = attention
    torch.manual_seed(0)
    auto = AutoModelForSequenceClassification if kind == "reward" else AutoModelForCausalLM
    return auto.from_config(config, attn_implementation=attention).float()


def random_groups(seed: int = 0, vocab_size: int = 400) -> list[list[list[int]]]:
    """Three elements: K = 4 with a 9-token shared prefix, K = 2 with none, K = 3 where one completion is a prefix of
    another (the shared part is capped so each keeps a token); completions of 1-6 tokens."""
    rng = random.Random(seed)

    def tokens(n):
        return [rng.randrange(4, vocab_size) for _ in range(n)]

    prompt = tokens(9)
    first = [prompt + tokens(rng.randint(1, 6)) for _ in range(4)]
    second = [tokens(5), tokens(7)]
    base = tokens(6)
    third = [base + tokens(3), base[:4], base + tokens(1)]
    return [first, second, third]


def unshared(groups, pad_id=PAD):
    sequences = [s for g in groups for s in g]
    width = max(len(s) for s in sequences)
    ids = torch.tensor([s + [pad_id] * (width - len(s)) for s in sequences])
    mask = torch.tensor([[1] * len(s) + [0] * (width - len(s)) for s in sequences])
    return ids, mask


def max_grad_diff(model, grads):
    return max((p.grad - grads[n]).abs().max().item() for n, p in model.named_parameters() if p.grad is not None)


def record_rows(model) -> list[int]:
    """The batch size of every forward of ``model`` (positional or keyword ``input_ids``)."""
    calls = []

    def hook(module, args, kwargs):
        calls.append((args[0] if args else kwargs["input_ids"]).shape[0])

    model.register_forward_pre_hook(hook, with_kwargs=True)
    return calls


def grads_of(model):
    return {n: p.grad.detach().clone() for n, p in model.named_parameters() if p.grad is not None}


# ---------------------------------------------------------------------------------------------------------------
# The layout
# ---------------------------------------------------------------------------------------------------------------


def test_common_prefix_length_is_capped_so_each_sequence_keeps_a_token():
    assert common_prefix_length([[1, 2, 3, 4], [1, 2, 5]]) == 2
    assert common_prefix_length([[1, 2, 3], [1, 2, 3, 4]]) == 2  # a prefix of the other keeps its last token
    assert common_prefix_length([[7, 7], [7, 7]]) == 1
    assert common_prefix_length([[1, 2], [3, 2]]) == 0
    assert common_prefix_length([[1, 2, 3]]) == 0


@pytest.mark.parametrize("padding_side", ["right", "left"])
def test_pack_layout_by_hand(padding_side):
    groups = [[[5, 6, 7, 8], [5, 6, 9]], [[10, 11], [12]]]
    out = pack(groups, pad_token_id=0, width=4, padding_side=padding_side, force=True)
    row0, row1 = [5, 6, 7, 8, 9], [10, 11, 12]
    pad = [0, 0]
    expected_ids = [row0, row1 + pad] if padding_side == "right" else [row0, pad + row1]
    assert out["shared_input_ids"].tolist() == expected_ids
    positions = [[0, 1, 2, 3, 2], [0, 1, 0] + [0, 0]]
    segments = [[PROMPT_SEGMENT, PROMPT_SEGMENT, 0, 0, 1], [0, 0, 1, PAD_SEGMENT, PAD_SEGMENT]]
    if padding_side == "left":
        positions[1] = [0, 0, 0, 1, 0]
        segments[1] = [PAD_SEGMENT, PAD_SEGMENT, 0, 0, 1]
    assert out["shared_position_ids"].tolist() == positions
    assert out["shared_segment_ids"].tolist() == segments
    shift = 2 if padding_side == "left" else 0
    assert out["shared_index"].tolist() == [
        [0, 1, 2, 3],
        [0, 1, 4, -1],
        [5 + shift, 6 + shift, -1, -1],
        [7 + shift, -1, -1, -1],
    ]
    # Every unshared token is found at its packed place.
    flat = out["shared_input_ids"].flatten()
    for n, sequence in enumerate(s for g in groups for s in g):
        assert flat[out["shared_index"][n, : len(sequence)]].tolist() == sequence


def test_pack_declines_when_packing_costs_more():
    long_prompt = list(range(4, 60))
    assert pack([[long_prompt + [70], long_prompt + [71, 72]]], 0, width=len(long_prompt) + 2) is not None
    no_prefix = [[list(range(4, 24)), list(range(30, 50)), list(range(60, 80))]]  # same tokens, 3x the pairs
    assert pack(no_prefix, 0, width=20) is None
    assert pack(no_prefix, 0, width=20, force=True) is not None
    out = pack([[long_prompt + [70], long_prompt + [71]]], 0, width=len(long_prompt) + 1, pad_to_multiple_of=8)
    assert out["shared_input_ids"].shape[1] % 8 == 0


def test_block_attention_mask_by_hand():
    P, A, B, X = PROMPT_SEGMENT, 0, 1, PAD_SEGMENT
    segments = torch.tensor([[P, P, A, A, B, X]])
    allowed = block_attention_mask(segments, "sdpa", torch.float32)[0, 0].int().tolist()
    assert allowed == [
        [1, 0, 0, 0, 0, 0],
        [1, 1, 0, 0, 0, 0],
        [1, 1, 1, 0, 0, 0],
        [1, 1, 1, 1, 0, 0],
        [1, 1, 0, 0, 1, 0],  # completion B sees the prompt and itself, not completion A
        [0, 0, 0, 0, 0, 1],  # padding sees only itself
    ]
    additive = block_attention_mask(segments, "eager", torch.float32)[0, 0]
    assert torch.equal(additive == 0, torch.tensor(allowed, dtype=torch.bool))
    assert additive.min().item() == torch.finfo(torch.float32).min


# ---------------------------------------------------------------------------------------------------------------
# Equality with the unshared forward: values and gradients
# ---------------------------------------------------------------------------------------------------------------


def _packed(groups, width, padding_side):
    return pack(groups, PAD, width, padding_side=padding_side, force=True)


@pytest.mark.parametrize("padding_side", ["right", "left"])
@pytest.mark.parametrize("architecture", ARCHITECTURES)
def test_rewards_and_gradients_equal_unshared(architecture, padding_side):
    groups = random_groups()
    ids, mask = unshared(groups)
    model = tiny_model(architecture, "reward").train()
    weights = torch.linspace(-1.0, 1.0, ids.shape[0])

    expected = model(ids, attention_mask=mask, use_cache=False).logits.squeeze(-1)
    (expected * weights).sum().backward()
    expected_grads = grads_of(model)
    model.zero_grad()

    got = SharedPrompt(True, "reward").rewards(model, ids, _packed(groups, ids.shape[1], padding_side))
    (got * weights).sum().backward()
    torch.testing.assert_close(got, expected, atol=TOL, rtol=0)
    assert max_grad_diff(model, expected_grads) <= TOL
    assert any(g.abs().max() > 1e-3 for g in expected_grads.values())  # the comparison is not between zeros


@pytest.mark.parametrize("padding_side", ["right", "left"])
@pytest.mark.parametrize("architecture", ARCHITECTURES)
def test_token_logps_and_gradients_equal_unshared(architecture, padding_side):
    from trl.trainer.utils import selective_log_softmax

    groups = random_groups(seed=1)
    ids, mask = unshared(groups)
    model = tiny_model(architecture, "causal_lm").train()
    keep = mask[:, 1:].bool()
    weights = torch.randn(keep.shape, generator=torch.Generator().manual_seed(0))

    logits = model(ids, attention_mask=mask, use_cache=False).logits[:, :-1]
    expected = selective_log_softmax(logits, ids[:, 1:])
    (expected * weights * keep).sum().backward()
    expected_grads = grads_of(model)
    model.zero_grad()

    got, mean_logits = SharedPrompt(True, "causal_lm").token_logps(
        model, ids, _packed(groups, ids.shape[1], padding_side)
    )
    (got * weights * keep).sum().backward()
    torch.testing.assert_close(got[keep], expected[keep], atol=TOL, rtol=0)
    assert (got[~keep] == 0).all()
    assert max_grad_diff(model, expected_grads) <= TOL
    # The logits/* metric: each sequence's mean logit over its own positions 0..len-2.
    lengths = mask.sum(-1)
    own = torch.stack([logits[n, : lengths[n] - 1].mean() for n in range(len(lengths))]).detach()
    torch.testing.assert_close(mean_logits, own, atol=TOL, rtol=0)


@pytest.mark.parametrize("kind", ["reward", "causal_lm"])
def test_eager_attention_and_gradient_checkpointing(kind):
    """Eager attention takes the additive float mask; gradient checkpointing (TRL's default) keeps the packed
    forward exact, since the mask and position ids are ordinary inputs of every layer."""
    groups = random_groups(seed=2)
    ids, mask = unshared(groups)
    for attention, checkpointing in (("eager", False), ("sdpa", True)):
        model = tiny_model("llama", kind, attention=attention).train()
        if checkpointing:
            model.gradient_checkpointing_enable({"use_reentrant": False})
        shared = SharedPrompt(True, kind)
        packed = _packed(groups, ids.shape[1], "right")
        if kind == "reward":
            expected = model(ids, attention_mask=mask, use_cache=False).logits.squeeze(-1)
            expected.sum().backward()
            grads = grads_of(model)
            model.zero_grad()
            got = shared.rewards(model, ids, packed)
            got.sum().backward()
        else:
            keep = mask[:, 1:].bool()
            logits = model(ids, attention_mask=mask, use_cache=False).logits[:, :-1]
            expected = torch.log_softmax(logits, -1).gather(-1, ids[:, 1:, None]).squeeze(-1)[keep]
            expected.sum().backward()
            grads = grads_of(model)
            model.zero_grad()
            got = shared.token_logps(model, ids, packed)[0][keep]
            got.sum().backward()
        torch.testing.assert_close(got, expected, atol=TOL, rtol=0)
        assert max_grad_diff(model, grads) <= TOL, (attention, checkpointing)


def test_pad_token_equal_to_eos_scores_the_same_token():
    """With pad_token_id == EOS (GPT-2 style) the classifier scores the token before the final EOS; the packed path
    reads the same token, also when it lies inside the shared prefix."""
    eos = 3
    groups = [[[10, 11, 12, 13, eos], [10, 11, 12, 14, 15, eos]], [[20, 21, eos], [20, eos]]]
    ids, mask = unshared(groups, pad_id=eos)
    model = tiny_model("gpt2", "reward", pad_token_id=eos).eval()
    with torch.no_grad():
        expected = model(ids, attention_mask=mask).logits.squeeze(-1)
        got = SharedPrompt(True, "reward").rewards(model, ids, pack(groups, eos, ids.shape[1], force=True))
    torch.testing.assert_close(got, expected, atol=TOL, rtol=0)


# ---------------------------------------------------------------------------------------------------------------
# Through the trainers
# ---------------------------------------------------------------------------------------------------------------

LONG = "Summarize the article. The council voted on Tuesday to approve the new budget for schools and roads. TL;DR:"
RANKED_LONG = [
    {"prompt": LONG, "completions": [" budget", " schools", " roads"], "ranks": [0, 2, 1], "margin": 0.3},
    {"prompt": LONG + " A", "completions": [" good", " bad", " ugly", " kind"], "ranks": [0, 1, 1, 0], "margin": 0.0},
    {"prompt": "The movie", "completions": [" was great", " was bad"], "ranks": [1, 0], "margin": -0.2},
    {"prompt": LONG[:40], "completions": [" won", " lost", " drew", " sad", " bad"], "ranks": [3, 0, 1, 1, 2]},
]
for row in RANKED_LONG:
    row.setdefault("margin", 0.1)


def _ranked_trainer(tmp_path, tokenizer, model, rows, **overrides):
    from rlhf_ext import RankedRewardConfig, RankedRewardTrainer

    args = dict(
        CPU,
        output_dir=str(tmp_path / "out"),
        save_strategy="no",
        logging_steps=1,
        gradient_checkpointing=False,
        seed=0,
        per_device_train_batch_size=len(rows),
    )
    args.update(overrides)
    return RankedRewardTrainer(
        model=model,
        args=RankedRewardConfig(**args),
        train_dataset=Dataset.from_list(rows),
        processing_class=tokenizer,
    )


def _loss_grads_metrics(trainer, batch):
    model = trainer.model.train()
    model.zero_grad()
    loss = trainer.compute_loss(model, dict(batch))
    loss.backward()
    metrics = {k: v[-1] for k, v in trainer._metrics["train"].items()}
    return loss.item(), grads_of(model), metrics


@pytest.mark.parametrize("architecture", ARCHITECTURES)
@pytest.mark.parametrize("pair_weighting", ["prompt", "pair"])
def test_ranked_reward_loss_metrics_gradients_equal_unshared(tiny_tokenizer, tmp_path, architecture, pair_weighting):
    """Mixed K (3, 4, 2, 5), ties, per-row margins and reward centering, one batch; shared vs shared_prompt=False."""
    results = {}
    for shared in (True, False):
        model = tiny_model(architecture, "reward", vocab_size=len(tiny_tokenizer))
        trainer = _ranked_trainer(
            tmp_path / str(shared),
            tiny_tokenizer,
            model,
            RANKED_LONG,
            shared_prompt=shared,
            pair_weighting=pair_weighting,
            center_rewards_coefficient=0.05,
        )
        batch = trainer.data_collator([trainer.train_dataset[i] for i in range(len(RANKED_LONG))])
        assert (SHARED_KEYS[0] in batch) is shared
        if shared:
            assert batch["shared_input_ids"].numel() < 0.6 * batch["input_ids"].numel()
        results[shared] = _loss_grads_metrics(trainer, batch)
        assert trainer._shared_prompt.reason == (None if shared else "turned off (shared_prompt=False)")
    (loss_s, grads_s, metrics_s), (loss_u, grads_u, metrics_u) = results[True], results[False]
    assert loss_s == pytest.approx(loss_u, abs=TOL)
    assert metrics_s.keys() == metrics_u.keys()
    for key, value in metrics_u.items():
        assert metrics_s[key] == pytest.approx(value, abs=TOL), key
    assert max((grads_s[n] - grads_u[n]).abs().max().item() for n in grads_u) <= TOL


def test_ranked_reward_lora_equal_unshared(tiny_models, tiny_tokenizer, tmp_path):
    """LoRA on q/v with the score head in modules_to_save: the rewards are read from the adapter's head copy."""
    from peft import LoraConfig

    peft_config = LoraConfig(
        task_type="SEQ_CLS", r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], modules_to_save=["score"]
    )
    results = {}
    for shared in (True, False):
        from rlhf_ext import RankedRewardConfig, RankedRewardTrainer

        trainer = RankedRewardTrainer(
            model=str(tiny_models.reward_model),
            args=RankedRewardConfig(
                **CPU,
                output_dir=str(tmp_path / str(shared)),
                gradient_checkpointing=False,
                shared_prompt=shared,
            ),
            train_dataset=Dataset.from_list(RANKED_LONG),
            processing_class=tiny_tokenizer,
            peft_config=peft_config,
        )
        torch.manual_seed(0)  # LoRA B starts at zero: give it values so the adapter changes the rewards
        for name, parameter in trainer.model.named_parameters():
            if "lora_B" in name:
                parameter.data.normal_(0, 0.5)
        batch = trainer.data_collator([trainer.train_dataset[i] for i in range(len(RANKED_LONG))])
        results[shared] = _loss_grads_metrics(trainer, batch)
    assert results[True][0] == pytest.approx(results[False][0], abs=TOL)
    grads_s, grads_u = results[True][1], results[False][1]
    assert grads_s.keys() == grads_u.keys() and any("lora_A" in n for n in grads_s)
    assert max((grads_s[n] - grads_u[n]).abs().max().item() for n in grads_u) <= TOL


ORPO_RANKED = [
    {"prompt": LONG, "completions": [" great.", " dull.", " wonderful and warm."], "ranks": [1, 2, 0]},
    {"prompt": LONG[:60], "completions": [" won.", " lost."], "ranks": [0, 1]},
    {"prompt": LONG, "completions": [" the storm.", " heavy rain.", " bad.", " awful."], "ranks": [0, 0, 1, 1]},
]


@pytest.mark.parametrize("architecture", ARCHITECTURES)
@pytest.mark.parametrize("sft_target", ["prompt_and_completion", "completion"])
def test_orpo_loss_metrics_gradients_equal_unshared(tiny_tokenizer, tmp_path, architecture, sft_target):
    from rlhf_ext import ORPOConfig, ORPOTrainer

    results = {}
    for shared in (True, False):
        trainer = ORPOTrainer(
            model=tiny_model(architecture, "causal_lm", vocab_size=len(tiny_tokenizer)),
            args=ORPOConfig(
                **CPU,
                output_dir=str(tmp_path / str(shared)),
                gradient_checkpointing=False,
                max_length=128,
                beta=0.5,
                sft_target=sft_target,
                shared_prompt=shared,
            ),
            train_dataset=Dataset.from_list(ORPO_RANKED),
            processing_class=tiny_tokenizer,
        )
        batch = trainer.data_collator([trainer.train_dataset[i] for i in range(len(ORPO_RANKED))])
        assert (SHARED_KEYS[0] in batch) is shared
        model = trainer.model.train()
        loss, metrics = trainer.get_batch_loss_metrics(model, batch)
        loss.backward()
        results[shared] = (loss.item(), grads_of(model), metrics)
    (loss_s, grads_s, metrics_s), (loss_u, grads_u, metrics_u) = results[True], results[False]
    assert loss_s == pytest.approx(loss_u, abs=TOL)
    for key, value in metrics_u.items():
        if key.startswith("logits/"):
            continue  # unshared: mean over the batch's padded width (TRL); shared: over each sequence's own tokens
        assert metrics_s[key] == pytest.approx(value, abs=TOL), key
    assert max((grads_s[n] - grads_u[n]).abs().max().item() for n in grads_u) <= TOL


# ---------------------------------------------------------------------------------------------------------------
# Fallback, switch, resume
# ---------------------------------------------------------------------------------------------------------------


def _bert_reward_model(vocab_size):
    from transformers import AutoModelForSequenceClassification, BertConfig

    config = BertConfig(
        vocab_size=vocab_size,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        pad_token_id=PAD,
        num_labels=1,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
    )
    torch.manual_seed(0)
    return AutoModelForSequenceClassification.from_config(config)


def test_encoder_falls_back_with_one_logged_line_and_trains_unshared(tiny_tokenizer, tmp_path, caplog):
    """A MiniLM/BERT-style encoder cannot share a prompt (its prompt tokens attend to the completion): one warning
    says so, and every batch runs unshared, with today's loss."""
    results = {}
    for shared in (True, False):
        trainer = _ranked_trainer(
            tmp_path / str(shared),
            tiny_tokenizer,
            _bert_reward_model(len(tiny_tokenizer)),
            RANKED_LONG,
            shared_prompt=shared,
            per_device_train_batch_size=2,
            max_steps=2,
        )
        calls = record_rows(trainer.model)
        with caplog.at_level(logging.WARNING, logger="rlhf_ext.shared_prompt"):
            trainer.train()
        results[shared] = [h["loss"] for h in trainer.state.log_history if "loss" in h]
        assert len(calls) == 2 and sum(calls) == 14  # no probe; both batches unshared, one row per completion
    lines = [r.getMessage() for r in caplog.records if r.name == "rlhf_ext.shared_prompt"]
    assert len(lines) == 1
    assert lines[0].startswith("Shared-prompt batching is off: BertForSequenceClassification has bidirectional")
    assert "BertSelfAttention.is_causal is False" in lines[0]
    assert results[True] == pytest.approx(results[False], abs=TOL)


def test_static_reasons():
    assert unsupported_reason(tiny_model("llama", "reward"), "reward") is None
    assert unsupported_reason(tiny_model("gpt2", "causal_lm"), "causal_lm") is None
    model = tiny_model("llama", "reward")
    model.config._attn_implementation = "flash_attention_2"
    assert "attention implementation 'flash_attention_2' takes no 4-D attention mask" in unsupported_reason(
        model, "reward"
    )
    causal = tiny_model("llama", "causal_lm")
    assert "no per-token `score` head" in unsupported_reason(causal, "reward")
    windowed = tiny_model("qwen2", "causal_lm")
    windowed.config.layer_types = ["sliding_attention", "full_attention"]
    assert "sliding_attention layers" in unsupported_reason(windowed, "causal_lm")
    reward = tiny_model("llama", "reward")
    reward.config.pad_token_id = None
    assert "no pad_token_id" in unsupported_reason(reward, "reward")


def test_probe_catches_a_model_that_ignores_position_ids(tiny_tokenizer, tmp_path, caplog):
    """A model that passes the static checks but does not honour position ids: the probe compares and refuses."""
    model = tiny_model("llama", "reward", vocab_size=len(tiny_tokenizer))
    forward = model.forward

    def forward_without_positions(*args, position_ids=None, **kwargs):
        return forward(*args, **kwargs)

    model.forward = forward_without_positions
    trainer = _ranked_trainer(tmp_path, tiny_tokenizer, model, RANKED_LONG, max_steps=1)
    with caplog.at_level(logging.WARNING, logger="rlhf_ext.shared_prompt"):
        trainer.train()
    (line,) = [r.getMessage() for r in caplog.records if r.name == "rlhf_ext.shared_prompt"]
    assert line.startswith("Shared-prompt batching is off: packed scores differ from unshared ones on a probe by ")
    assert "does not honour a 4-D attention mask and position ids" in line
    assert trainer.state.global_step == 1


def test_switch_off_packs_nothing_and_skips_the_probe(tiny_tokenizer, tmp_path):
    from transformers import HfArgumentParser

    from rlhf_ext import ORPOConfig, RankedRewardConfig

    model = tiny_model("llama", "reward", vocab_size=len(tiny_tokenizer))
    trainer = _ranked_trainer(tmp_path, tiny_tokenizer, model, RANKED_LONG, shared_prompt=False, max_steps=1)
    assert trainer.data_collator.shared_prompt is False
    calls = record_rows(trainer.model)
    trainer.train()
    assert calls == [14]  # one unshared forward, no probe
    for config in (RankedRewardConfig, ORPOConfig):
        (parsed,) = HfArgumentParser(config).parse_args_into_dataclasses(
            ["--output_dir", str(tmp_path), "--use_cpu", "--bf16", "false", "--shared_prompt", "false"]
        )
        assert parsed.shared_prompt is False
        assert "K(P + C) -> P + KC" in config.__dataclass_fields__["shared_prompt"].metadata["help"]


def test_shared_batches_run_as_one_packed_forward(tiny_models, tiny_tokenizer, tmp_path):
    trainer = _ranked_trainer(
        tmp_path,
        tiny_tokenizer,
        str(tiny_models.reward_model),
        RANKED_LONG,
        per_device_train_batch_size=4,
        max_steps=1,
    )
    calls = record_rows(trainer.model)
    trainer.train()
    # The probe (2 unshared rows, then their packed row), then one packed row per prompt for the 14 completions.
    assert calls == [2, 1, 4]
    assert trainer.state.log_history[0]["num_completions"] == 14
    assert math.isfinite(trainer.state.log_history[0]["loss"])


def test_resume_with_shared_prompts_matches_uninterrupted_run(tiny_models, tiny_tokenizer, tmp_path):
    """The packed path keeps no state across steps: a run resumed from checkpoint-2 ends as the uninterrupted run
    (atol 1e-6 as the other resume tests), and its batches were packed."""
    from rlhf_ext.testing import resume

    rows = [dict(r, margin=0.0) for r in RANKED_LONG] * 3
    packed = []

    def build(folder):
        trainer = _ranked_trainer(
            folder,
            tiny_tokenizer,
            str(tiny_models.reward_model),
            rows,
            per_device_train_batch_size=2,
            max_steps=4,
            learning_rate=3e-3,
            save_strategy="steps",
            save_steps=2,
        )
        collate = trainer.data_collator.torch_call

        def recording(examples):
            batch = collate(examples)
            packed.append(SHARED_KEYS[0] in batch)
            return batch

        trainer.data_collator.torch_call = recording
        return trainer

    runs = resume.interrupt_and_resume(build, tmp_path, stop_after=2)
    assert runs.steps_run == [3, 4] and all(packed) and len(packed) >= 8
    resume.assert_same_weights(runs.full.model, runs.resumed.model, atol=1e-6)
    resume.assert_same_step_metrics(
        runs.full, runs.resumed, [3, 4], required=lambda step: {"loss", "accuracy", "num_tokens"}, atol=1e-6
    )


def test_docs_tables_are_rendered_from_the_benchmark_json():
    """The measured tables of docs/ranked_reward.md are what `benchmarks/bench_ranked_reward.py --render-docs` writes
    from the committed JSON of the runs: no number in them is copied by hand."""
    from pathlib import Path

    from recipe_loader import load_benchmark

    root = Path(__file__).resolve().parents[1]
    bench = load_benchmark("bench_ranked_reward")
    page = root / "docs" / "ranked_reward.md"
    runs = [root / "docs" / "bench_ranked_reward.json", root / "docs" / "bench_shared_prompt_designs.json"]
    assert bench.render_docs(runs, page) == page.read_text()
    assert "| 4 | 24 |" in page.read_text()  # the TL;DR and short-prompt rows of K = 4 are there
