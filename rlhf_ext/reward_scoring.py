"""One way to turn a prompt and a completion into reward-model input, for training, PPO and evaluation alike.

A reward model scores what it was trained on. ``RankedRewardTrainer`` trains on ``prompt + completion`` tokenized
with the reward model's own tokenizer, special tokens included (``[CLS] ... [SEP]`` for BERT, ``<s> ...`` for a
Llama-style model), the completion of a text row ending with the tokenizer's EOS token, and a conversation rendered
with the chat template. :func:`reward_input_ids` is that format; :func:`score_texts` scores texts in it. The three
places that score with a reward model all go through them:

- ``RankedRewardTrainer`` tokenizes its text and conversational rows with :func:`reward_input_ids`;
- ``PPOTrainer`` scores each sampled completion (decoded, special tokens removed) with :class:`RewardModelScorer`;
- evaluation (``rlhf_ext.sampling.reward_model_scores``, used by the recipes) calls :func:`score_texts`, with
  ``shared_prompt=True`` when several systems' completions of each prompt are scored together.

So the same prompt and completion text get the same score on all three paths (``tests/test_reward_scoring.py`` pins
it for an encoder and a decoder reward model). Texts longer than ``max_length`` tokens lose tokens from the left,
after any leading special tokens, so the completion (the part being judged) and the framing tokens are kept.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch


def _is_conversation(x) -> bool:
    return isinstance(x, list)


def reward_input_ids(tokenizer, prompt, completion, **chat_template_kwargs) -> list[int]:
    """Token ids of ``prompt`` + ``completion`` as the reward model sees them in training.

    Text rows: ``prompt + completion`` (the completion gets the tokenizer's EOS token appended unless it already ends
    with it), tokenized with special tokens. Conversational rows (lists of messages): the chat template applied to
    ``prompt + completion``; ``chat_template_kwargs`` (``tools``, ...) go to ``apply_chat_template``.
    """
    from trl.data_utils import _tokenize

    if _is_conversation(prompt) or _is_conversation(completion):
        return list(_tokenize(tokenizer, list(prompt) + list(completion), **chat_template_kwargs)["input_ids"])
    eos = tokenizer.eos_token
    if eos is not None and not completion.endswith(eos):
        completion = completion + eos
    return list(_tokenize(tokenizer, prompt + completion)["input_ids"])


def _truncate_left(ids: list[int], max_length: int, special_ids: set[int]) -> list[int]:
    if len(ids) <= max_length:
        return ids
    lead = 0
    while lead < len(ids) and ids[lead] in special_ids and lead < max_length - 1:
        lead += 1
    return ids[:lead] + ids[len(ids) - (max_length - lead) :]


def _model_max_length(model) -> int | None:
    config = getattr(model, "config", None)
    if config is None:
        return None
    config = config.get_text_config() if hasattr(config, "get_text_config") else config
    return getattr(config, "max_position_embeddings", None) or getattr(config, "n_positions", None)


@torch.inference_mode()
@torch.no_grad()
def score_texts(
    model,
    tokenizer,
    prompts: Sequence[Any],
    completions: Sequence[Any],
    *,
    batch_size: int | None = 64,
    max_length: int | None = None,
    device: torch.device | str | None = None,
    chat_template_kwargs: dict | None = None,
    shared_prompt: bool = False,
    progress: str | None = None,
) -> torch.Tensor:
    """Scalar score (``logits[:, 0]``) of a sequence-classification reward model for each prompt and completion.

    Rows are tokenized with :func:`reward_input_ids`, right-padded with ``tokenizer.pad_token_id`` (the model finds
    the last real token from its ``config.pad_token_id``, which must be the same id) and scored in batches of
    ``batch_size`` (None: all at once). ``max_length`` defaults to the model's position limit. Returns a float32
    tensor on ``device``, without gradient: scores are rewards, never differentiated, and a graph of the reward
    model's activations would only cost time and memory.

    With ``shared_prompt``, rows with the same prompt are scored together, the prompt encoded once
    (:mod:`rlhf_ext.shared_prompt`: one packed row per prompt, a block attention mask): the same scores up to float
    rounding, for less compute when each prompt has several completions (e.g. every system's summary of an article).
    A batch then holds whole prompts' rows, ``batch_size`` completions or the first prompt's rows if more; batches
    (or models) where packing does not pay or is not supported are scored row by row. ``progress`` names a progress
    bar over the batches (None: no bar).
    """
    from tqdm.auto import tqdm

    if len(prompts) != len(completions):
        raise ValueError(f"{len(prompts)} prompts but {len(completions)} completions: pair them one to one")
    if tokenizer.pad_token_id is None:
        raise ValueError("the reward model's tokenizer has no pad token: set tokenizer.pad_token")
    if device is None:
        device = next(model.parameters()).device
    limits = [x for x in (max_length, _model_max_length(model)) if x]
    limit = min(limits) if limits else None
    special = set(tokenizer.all_special_ids)
    kwargs = chat_template_kwargs or {}
    rows = [reward_input_ids(tokenizer, p, c, **kwargs) for p, c in zip(prompts, completions, strict=True)]
    if limit:
        rows = [_truncate_left(r, limit, special) for r in rows]
    batch_size = batch_size or max(1, len(rows))
    if shared_prompt:
        return _score_shared(model, tokenizer.pad_token_id, prompts, rows, batch_size, device, progress)
    scores = []
    for start in tqdm(range(0, len(rows), batch_size), desc=progress, disable=progress is None):
        input_ids, attention_mask = _right_padded(rows[start : start + batch_size], tokenizer.pad_token_id)
        logits = model(input_ids=input_ids.to(device), attention_mask=attention_mask.to(device)).logits
        scores.append(logits[:, 0].float())
    if not scores:
        return torch.zeros(0, device=device)
    return torch.cat(scores)


def _right_padded(rows: list[list[int]], pad_token_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(r) for r in rows)
    input_ids = torch.full((len(rows), width), pad_token_id, dtype=torch.long)
    attention_mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, row in enumerate(rows):
        input_ids[i, : len(row)] = torch.tensor(row)
        attention_mask[i, : len(row)] = 1
    return input_ids, attention_mask


def _score_shared(model, pad_token_id: int, prompts, rows: list[list[int]], batch_size: int, device, progress):
    """:func:`score_texts` with each prompt's rows packed into one row (see there)."""
    from tqdm.auto import tqdm

    from .shared_prompt import SharedPrompt, pack

    groups: dict[str, list[int]] = {}
    for i, prompt in enumerate(prompts):
        groups.setdefault(repr(prompt), []).append(i)
    batches, current = [], []
    for members in groups.values():
        if current and sum(len(g) for g in current) + len(members) > batch_size:
            batches.append(current)
            current = []
        current.append(members)
    if current:
        batches.append(current)
    sharing = SharedPrompt(True, "reward")
    scores = torch.zeros(len(rows), device=device)
    for batch in tqdm(batches, desc=progress, disable=progress is None):
        order = [i for members in batch for i in members]
        input_ids, attention_mask = _right_padded([rows[i] for i in order], pad_token_id)
        inputs = {"input_ids": input_ids, "attention_mask": attention_mask}
        inputs.update(pack([[rows[i] for i in members] for members in batch], pad_token_id, input_ids.shape[1]) or {})
        inputs = {key: value.to(device) for key, value in inputs.items()}
        packed = sharing.take(model, inputs)
        batch_scores = sharing.rewards(model, inputs["input_ids"], packed) if packed else None
        if batch_scores is None:
            batch_scores = model(**inputs).logits[:, 0]
        scores[torch.tensor(order, device=device)] = batch_scores.float()
    return scores


class RewardModelScorer:
    """A reward function for TRL trainers that scores with a reward model through :func:`score_texts`.

    ``PPOTrainer`` hands its reward models to GRPO's reward loop wrapped in this, so that they see the training
    format (GRPO would re-tokenize ``prompt + completion`` without special tokens and without EOS).
    """

    def __init__(
        self, model, tokenizer, device, batch_size: int | None = None, chat_template_kwargs: dict | None = None
    ):
        self.model = model
        self.tokenizer = tokenizer
        self.device = device
        self.batch_size = batch_size
        self.chat_template_kwargs = chat_template_kwargs or {}

    def __call__(self, prompts, completions, **kwargs) -> list[float]:
        scores = score_texts(
            self.model,
            self.tokenizer,
            prompts,
            completions,
            batch_size=self.batch_size,
            device=self.device,
            chat_template_kwargs=self.chat_template_kwargs,
        )
        return scores.tolist()


def reward_model_scorers(trainer) -> list:
    """For each of a TRL trainer's ``reward_funcs``: a :class:`RewardModelScorer` for a reward model, None for a
    reward function (kept as it is)."""
    from torch import nn

    scorers = []
    for func, tok in zip(trainer.reward_funcs, trainer.reward_processing_classes, strict=True):
        if not isinstance(func, nn.Module):
            scorers.append(None)
            continue
        scorer = RewardModelScorer(
            func,
            tok,
            trainer.accelerator.device,
            batch_size=trainer.args.local_rollout_forward_batch_size,
            chat_template_kwargs=trainer.chat_template_kwargs,
        )
        scorers.append(scorer)
    return scorers
