"""Sampling completions from a causal LM and scoring their log-probabilities, outside any trainer.

Used by the recipes to label data (K samples per prompt) and to evaluate policies (samples, and the KL
between a policy and its reference on those samples).
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass

import torch

from .lm_head import plain_logits, selected_log_probs


@dataclass
class Samples:
    prompts: list[str]
    texts: list[list[str]]  # per prompt, K decoded completions (special tokens removed)
    prompt_ids: list[list[int]]  # per prompt, its token ids (no padding)
    completion_ids: list[list[list[int]]]  # per prompt, K completion token ids (EOS kept, padding removed)
    # with ``logprobs=True``: per prompt, K tensors of the sampling model's per-token log-probabilities of
    # ``completion_ids`` at ``logprob_temperature`` (softmax of logits / temperature, before top-k/top-p)
    logprobs: list[list[torch.Tensor]] | None = None
    logprob_temperature: float | None = None


@torch.no_grad()
def sample_completions(
    model,
    tokenizer,
    prompts: list[str],
    *,
    k: int = 1,
    max_new_tokens: int = 24,
    temperature: float = 1.0,
    top_k: int = 0,
    top_p: float = 1.0,
    batch_size: int = 16,
    seed: int | None = None,
    progress: str | None = None,
    share_prompt: bool = True,
    logprobs: bool = False,
) -> Samples:
    """K sampled completions per prompt (left-padded batches), cut after the first EOS.

    With ``share_prompt`` (and K > 1) each prompt is run through the model once and its key/value cache is copied
    K times before decoding; ``generate(num_return_sequences=K)`` would run the prompt K times. At the summarization
    stand-in's shape (~130 prompt tokens, 24 new tokens) the prompt passes are most of the work: sampling K = 8 takes
    2.5-2.7x less CPU this way (``benchmarks/bench_sampling.py``, 16 articles, the SFT policy). The samples are the
    same as without sharing up to float rounding (the K copies of a row see the same cache, and the random draws are
    the same).

    With ``logprobs`` the samples also carry the model's log-probabilities of each sampled token at ``temperature``
    (``Samples.logprobs``), read from the logits ``generate`` computed anyway; :func:`sequence_kl` then needs no
    forward pass of the sampling model. They equal :func:`completion_logprobs` up to float rounding.
    """
    from tqdm.auto import tqdm

    if k < 1 or max_new_tokens < 1 or batch_size < 1:
        raise ValueError(f"k, max_new_tokens and batch_size must be >= 1, got {k}, {max_new_tokens}, {batch_size}")
    if tokenizer.pad_token_id is None:
        raise ValueError("the tokenizer has no pad token: set tokenizer.pad_token before sampling")
    if seed is not None:
        torch.manual_seed(seed)
    tokenizer.padding_side = "left"
    model.eval()
    eos = tokenizer.eos_token_id
    out = Samples(prompts=list(prompts), texts=[], prompt_ids=[], completion_ids=[])
    if logprobs:
        out.logprobs, out.logprob_temperature = [], temperature
    starts = range(0, len(prompts), batch_size)
    for start in tqdm(starts, desc=progress, disable=progress is None):
        batch = list(prompts[start : start + batch_size])
        enc = tokenizer(batch, return_tensors="pt", padding=True)
        settings = dict(
            do_sample=True,
            temperature=temperature,
            top_k=top_k or None,
            top_p=top_p,
            max_new_tokens=max_new_tokens,
            pad_token_id=tokenizer.pad_token_id,
            eos_token_id=eos,
        )
        if logprobs:
            settings.update(output_logits=True, return_dict_in_generate=True)
        if share_prompt and k > 1 and enc["input_ids"].shape[1] > 1:
            gen = model.generate(**_shared_prefill(model, enc, k), **settings)
        else:
            gen = model.generate(**enc, num_return_sequences=k, **settings)
        sequences = gen.sequences if logprobs else gen
        new_ids = sequences[:, enc["input_ids"].shape[1] :]
        if logprobs:  # (rows, steps): log-softmax of each step's raw logits / temperature at the sampled token
            logits = torch.stack(gen.logits, dim=1).float() / temperature
            token_logprobs = torch.log_softmax(logits, dim=-1).gather(-1, new_ids[..., None].to(logits.device))
            token_logprobs = token_logprobs.squeeze(-1).cpu()
        new = new_ids.tolist()
        for i, prompt_mask in enumerate(enc["attention_mask"].tolist()):
            ids = enc["input_ids"][i].tolist()
            out.prompt_ids.append([t for t, m in zip(ids, prompt_mask) if m])
            comps = []
            for seq in new[i * k : (i + 1) * k]:
                cut = seq.index(eos) + 1 if eos in seq else len(seq)
                comps.append(seq[:cut])  # generate() pads only after EOS, so nothing else to strip
            out.completion_ids.append(comps)
            if logprobs:
                out.logprobs.append([token_logprobs[i * k + j, : len(c)] for j, c in enumerate(comps)])
            out.texts.append([tokenizer.decode(c, skip_special_tokens=True) for c in comps])
    return out


def _shared_prefill(model, enc, k: int) -> dict:
    """``generate`` inputs for K samples per row: the prompts' cache (all but the last token) computed once, then
    repeated K times in ``generate``'s own order (row i's copies at i*K .. i*K+K-1); ``generate`` feeds the last
    prompt token itself and decodes from there."""
    input_ids, mask = enc["input_ids"].to(model.device), enc["attention_mask"].to(model.device)
    positions = (mask.long().cumsum(-1) - 1).masked_fill(mask == 0, 1)  # as generate() numbers left-padded rows
    # Only the cache is used (generate() scores the last prompt token itself): project one position, not every one,
    # through the LM head when the model allows it.
    keep = {"logits_to_keep": 1} if "logits_to_keep" in inspect.signature(model.forward).parameters else {}
    out = model(
        input_ids=input_ids[:, :-1],
        attention_mask=mask[:, :-1],
        position_ids=positions[:, :-1],
        use_cache=True,
        **keep,
    )
    # transformers 5.x names the cache `cache` (`past_key_values` is its deprecated alias, the only name before)
    name = "cache" if "cache" in out else "past_key_values"
    cache = out[name]
    cache.batch_repeat_interleave(k)
    return {
        "input_ids": input_ids.repeat_interleave(k, dim=0),
        "attention_mask": mask.repeat_interleave(k, dim=0),
        name: cache,
    }


@torch.no_grad()
def completion_logprobs(
    model, prompt_ids: list[int], completion_ids: list[list[int]], temperature: float = 1.0
) -> list[torch.Tensor]:
    """Per-token log-probabilities of each completion given the prompt, under ``model`` at ``temperature``."""
    return pair_logprobs(model, [(prompt_ids, c) for c in completion_ids], temperature)


@torch.no_grad()
def pair_logprobs(model, pairs: list[tuple[list[int], list[int]]], temperature: float = 1.0) -> list[torch.Tensor]:
    """Per-token log-probabilities of each ``(prompt_ids, completion_ids)`` pair's completion, in one forward.

    Rows are right-padded, so every token keeps the position it has alone (0, 1, ... from the prompt's first token)."""
    if not pairs:
        return []
    device = next(model.parameters()).device
    width = max(len(p) + len(c) for p, c in pairs)
    input_ids = torch.zeros(len(pairs), width, dtype=torch.long, device=device)
    attention = torch.zeros_like(input_ids)
    for row, (prompt, comp) in enumerate(pairs):
        seq = list(prompt) + list(comp)
        input_ids[row, : len(seq)] = torch.tensor(seq, device=device)
        attention[row, : len(seq)] = 1
    if plain_logits(model) and hasattr(model, "base_model"):  # only the completions' positions through the LM head
        hidden = model.base_model(input_ids=input_ids, attention_mask=attention).last_hidden_state
        scored = torch.zeros_like(attention, dtype=torch.bool)
        for row, (prompt, comp) in enumerate(pairs):
            scored[row, len(prompt) - 1 : len(prompt) - 1 + len(comp)] = True
        head = model.get_output_embeddings()
        targets = input_ids[:, 1:][scored[:, :-1]]
        flat, _ = selected_log_probs(hidden[scored], head.weight, head.bias, targets, temperature)
        return [part.cpu() for part in flat.split([len(c) for _, c in pairs])]
    logits = model(input_ids=input_ids, attention_mask=attention).logits.float() / temperature
    logps = torch.log_softmax(logits[:, :-1], dim=-1).gather(-1, input_ids[:, 1:, None]).squeeze(-1)
    return [logps[row, len(p) - 1 : len(p) - 1 + len(c)].cpu() for row, (p, c) in enumerate(pairs)]


def sequence_kl(
    policy, reference, samples: Samples, temperature: float = 1.0, batch_size: int = 16, progress: str | None = None
) -> list[float]:
    """Summed per-token log pi - log pi_ref of each sampled completion (the k1 estimate of KL(pi || pi_ref)).

    The samples must come from ``policy``; the mean over samples estimates the sequence-level KL, the
    quantity Ziegler et al.'s adaptive controller targets. ``batch_size`` completions (of any prompts) share a forward.
    Samples drawn with ``logprobs=True`` at the same temperature bring the policy's log-probabilities along, so only
    the reference runs (``policy`` may then be None). ``progress`` names a progress bar (None: no bar).
    """
    from tqdm.auto import tqdm

    pairs = [(p, c) for p, comps in zip(samples.prompt_ids, samples.completion_ids) for c in comps]
    carried = None
    if samples.logprobs is not None and samples.logprob_temperature == temperature:
        carried = [lp for per_prompt in samples.logprobs for lp in per_prompt]
    elif policy is None:
        raise ValueError(
            "sequence_kl needs the policy: the samples carry no log-probabilities at temperature "
            f"{temperature} (sample with logprobs=True at that temperature, or pass the policy)"
        )
    out = []
    for start in tqdm(range(0, len(pairs), batch_size), desc=progress, disable=progress is None):
        chunk = pairs[start : start + batch_size]
        lp = carried[start : start + batch_size] if carried is not None else pair_logprobs(policy, chunk, temperature)
        lr = pair_logprobs(reference, chunk, temperature)
        out.extend(float((a - b).sum()) for a, b in zip(lp, lr))
    return out


def reward_model_scores(
    path: str,
    prompts: list[str],
    completions: list[str],
    batch_size: int = 64,
    max_length: int = 512,
    shared_prompt: bool = False,
    progress: str | None = None,
) -> list[float]:
    """Scalar score of a sequence-classification reward model (folder or Hub id) for each prompt + completion.

    Scored by :func:`rlhf_ext.reward_scoring.score_texts`: the text is formatted exactly as ``RankedRewardTrainer``
    trained on it and as ``PPOTrainer`` scores it; over-long texts lose tokens from the left, so the completion, the
    part being judged, is always kept. ``shared_prompt``: rows with the same prompt share its encoding (the same
    scores up to float rounding, less compute when prompts repeat). ``progress`` names a progress bar.
    """
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from .reward_scoring import score_texts

    if len(prompts) != len(completions):
        raise ValueError(f"{len(prompts)} prompts but {len(completions)} completions: pair them one to one")
    tok = AutoTokenizer.from_pretrained(path)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    rm = AutoModelForSequenceClassification.from_pretrained(path).eval()
    rm.config.pad_token_id = tok.pad_token_id
    scores = score_texts(
        rm,
        tok,
        prompts,
        completions,
        batch_size=batch_size,
        max_length=max_length,
        shared_prompt=shared_prompt,
        progress=progress,
    )
    return scores.tolist()
