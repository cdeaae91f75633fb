import pytest
import torch

from rlhf_ext.sampling import completion_logprobs, sample_completions, sequence_kl


@pytest.fixture(scope="module")
def lm_and_tok(tiny_models):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    return AutoModelForCausalLM.from_pretrained(tiny_models.causal_lm), AutoTokenizer.from_pretrained(
        tiny_models.tokenizer
    )


def test_samples_are_cut_after_eos_and_grouped_by_prompt(lm_and_tok):
    model, tok = lm_and_tok
    s = sample_completions(model, tok, ["The movie", "A long story about the sea"], k=3, max_new_tokens=6, seed=0)
    assert len(s.texts) == 2 and all(len(t) == 3 for t in s.texts)
    for comps in s.completion_ids:
        for ids in comps:
            assert 1 <= len(ids) <= 6
            assert tok.eos_token_id not in ids[:-1], "nothing may follow the first EOS"
    assert s.prompt_ids[0] == tok("The movie")["input_ids"], "prompt ids must not include left padding"


def test_completion_logprobs_match_a_direct_forward(lm_and_tok):
    model, tok = lm_and_tok
    prompt = tok("The movie was")["input_ids"]
    comp = tok(" great and warm")["input_ids"]
    (lp,) = completion_logprobs(model, prompt, [comp], temperature=0.7)
    with torch.no_grad():
        logits = model(torch.tensor([prompt + comp])).logits[0] / 0.7
    manual = [torch.log_softmax(logits[len(prompt) - 1 + i], -1)[t].item() for i, t in enumerate(comp)]
    assert lp.tolist() == pytest.approx(manual, abs=1e-5)


def test_sequence_kl_is_zero_against_itself_and_positive_against_another_model(lm_and_tok, tiny_models):
    from transformers import AutoModelForCausalLM

    model, tok = lm_and_tok
    s = sample_completions(model, tok, ["The movie", "Good"], k=2, max_new_tokens=5, seed=1)
    assert sequence_kl(model, model, s) == pytest.approx([0.0] * 4, abs=1e-6)
    other = AutoModelForCausalLM.from_pretrained(tiny_models.causal_lm)
    with torch.no_grad():
        for p in other.parameters():
            p.add_(0.5 * torch.randn_like(p))
    kl = sequence_kl(model, other, s)
    assert sum(kl) / len(kl) > 0


def test_sampling_rejects_bad_arguments(lm_and_tok):
    model, tok = lm_and_tok
    with pytest.raises(ValueError, match="k, max_new_tokens and batch_size"):
        sample_completions(model, tok, ["x"], k=0)


def test_sequence_kl_of_a_batch_of_prompts_equals_each_sample_scored_alone(lm_and_tok, tiny_models):
    """Completions of prompts of different lengths share a right-padded forward: each keeps the positions and the
    log-probs it has alone (the per-sample sum, computed here one unpadded sequence at a time, to 1e-5)."""
    from transformers import AutoModelForCausalLM

    model, tok = lm_and_tok
    other = AutoModelForCausalLM.from_pretrained(tiny_models.causal_lm)
    with torch.no_grad():
        for p in other.parameters():
            p.add_(0.3 * torch.randn_like(p))
    s = sample_completions(
        model, tok, ["Hi", "The council voted on Tuesday to", "A story"], k=2, max_new_tokens=6, seed=2
    )

    def alone(m, prompt, comp):
        with torch.no_grad():
            logits = m(torch.tensor([prompt + comp])).logits[0] / 0.7
        return sum(torch.log_softmax(logits[len(prompt) - 1 + i], -1)[t].item() for i, t in enumerate(comp))

    expected = [
        alone(model, p, c) - alone(other, p, c) for p, comps in zip(s.prompt_ids, s.completion_ids) for c in comps
    ]
    assert sequence_kl(model, other, s, temperature=0.7, batch_size=4) == pytest.approx(expected, abs=1e-5)
    assert sequence_kl(model, other, s, temperature=0.7, batch_size=1) == pytest.approx(expected, abs=1e-5)


def test_a_shared_prompt_prefill_samples_what_generate_samples_per_copy(lm_and_tok):
    """K samples from one prompt pass (its cache copied K times) equal generate(num_return_sequences=K)'s, left
    padding included."""
    model, tok = lm_and_tok
    prompts = ["The movie", "A long story about the sea and the ships", "Good"]
    shared = sample_completions(model, tok, prompts, k=4, max_new_tokens=8, temperature=0.7, seed=3)
    unshared = sample_completions(
        model, tok, prompts, k=4, max_new_tokens=8, temperature=0.7, seed=3, share_prompt=False
    )
    assert shared.completion_ids == unshared.completion_ids
    assert shared.prompt_ids == unshared.prompt_ids
    assert len({tuple(c) for comps in shared.completion_ids for c in comps}) > 3, "the K copies must differ"


def test_a_shared_prompt_is_run_once_per_prompt_not_once_per_sample(lm_and_tok):
    """The prompt tokens go through the model for each prompt once; the K copies only decode, one token a step."""
    model, tok = lm_and_tok
    prompts = ["The movie", "A long story about the sea and the ships", "Good"]
    shapes = []
    hook = model.register_forward_pre_hook(
        lambda m, a, kw: shapes.append(tuple(kw["input_ids"].shape)), with_kwargs=True
    )
    try:
        sample_completions(model, tok, prompts, k=4, max_new_tokens=5, seed=0)
        shared, shapes[:] = list(shapes), []
        sample_completions(model, tok, prompts, k=4, max_new_tokens=5, seed=0, share_prompt=False)
        unshared = list(shapes)
    finally:
        hook.remove()
    width = max(len(tok(p)["input_ids"]) for p in prompts)
    assert shared[0] == (3, width - 1), "one pass of the 3 prompts (their last token is decoding's first input)"
    assert all(rows == 12 and tokens == 1 for rows, tokens in shared[1:]), shared
    assert unshared[0] == (12, width), "generate(num_return_sequences=K) runs each prompt K times"


@pytest.mark.parametrize("k,share_prompt", [(1, True), (3, True), (3, False)])
def test_sampled_logprobs_equal_a_forward_of_each_completion(lm_and_tok, k, share_prompt):
    """The log-probs read from generate's logits are the model's tempered log-probs of each sampled token: a
    separate forward of every (prompt, completion) gives the same, EOS-cut completions and top-k included."""
    model, tok = lm_and_tok
    prompts = ["The movie", "A long story about the sea and the ships", "Good"]
    s = sample_completions(
        model, tok, prompts, k=k, max_new_tokens=7, temperature=0.7, top_k=5, seed=4,
        share_prompt=share_prompt, logprobs=True,
    )  # fmt: skip
    plain = sample_completions(model, tok, prompts, k=k, max_new_tokens=7, temperature=0.7, top_k=5, seed=4,
                               share_prompt=share_prompt)  # fmt: skip
    assert s.completion_ids == plain.completion_ids, "asking for log-probs must not change the samples"
    assert s.logprob_temperature == 0.7
    for p, comps, carried in zip(s.prompt_ids, s.completion_ids, s.logprobs):
        expected = completion_logprobs(model, p, comps, temperature=0.7)
        assert [len(c) for c in carried] == [len(c) for c in comps]
        for got, want in zip(carried, expected):
            assert got.tolist() == pytest.approx(want.tolist(), abs=1e-4)


def test_sequence_kl_uses_carried_logprobs_and_needs_the_policy_otherwise(lm_and_tok, tiny_models):
    from transformers import AutoModelForCausalLM

    model, tok = lm_and_tok
    other = AutoModelForCausalLM.from_pretrained(tiny_models.causal_lm)
    with torch.no_grad():
        for p in other.parameters():
            p.add_(0.3 * torch.randn_like(p))
    s = sample_completions(model, tok, ["Hi", "The council voted"], k=2, max_new_tokens=6, temperature=0.7, seed=5,
                           logprobs=True)  # fmt: skip
    by_forward = sequence_kl(model, other, s, temperature=0.7)
    assert sum(abs(x) for x in by_forward) > 0.1
    assert sequence_kl(None, other, s, temperature=0.7) == pytest.approx(by_forward, abs=1e-4)
    with pytest.raises(ValueError, match="no log-probabilities at temperature 1.0"):
        sequence_kl(None, other, s, temperature=1.0)
