"""Shared-prompt batching: encode the prompt of a ranked element once and its K completions against it.

A ranked batch element is one prompt x (P tokens) with K completions y_1..y_K (C tokens each). Scored one sequence
per completion, as InstructGPT describes and ``trl.RewardTrainer`` does, the element costs K(P + C) tokens and the
prompt is encoded K times. Packed into one sequence ``[x, y_1, ..., y_K]`` it costs P + KC tokens: 2,244 -> 708 for
a TL;DR-shaped element (P = 512, C = 48 + EOS, K = 4). Two things keep the numbers those of the unshared path:

- a block attention mask: a prompt token sees the earlier prompt tokens, a completion token sees the whole prompt
  and the earlier tokens of its own completion, never a sibling completion;
- position ids that restart at P for every completion, so each token sits at the position it has in its own row.

Every completion token then sees exactly the keys, values and positions it sees in the unshared row, so the
rewards, log-probabilities, losses and gradients are the same function of the weights (float32 rounding aside;
the gradient of a prompt token is the sum of the K completions' contributions, as in the unshared path).

What is shared is the longest common *token* prefix of the element's K sequences, which are tokenized as
prompt + completion (BPE merges may cross the boundary, so the token prefix, not the prompt text, is what really
repeats). It is capped so that every completion keeps at least one token of its own.

Pieces: :func:`common_prefix_length` and :func:`pack` (used by the collators; ``pack`` returns ``None`` for a batch
whose packed form would cost more, e.g. short prompts with long completions), :func:`block_attention_mask`,
:func:`unsupported_reason` (static checks), and :class:`SharedPrompt`, the per-trainer switch that checks the model
once (static checks plus a numerical probe against the unshared forward), logs one line when it cannot share, and
runs packed batches: :meth:`SharedPrompt.rewards` for scalar reward models, :meth:`SharedPrompt.token_logps` for
causal LMs.

The alternative, a forward of the prompt with a KV cache repeated K times and a forward of the completions on it,
is a little faster on CPU but needs more memory and two model calls per step, and breaks under gradient
checkpointing (TRL's default: checkpointed layers drop the cache); docs/ranked_reward.md gives the measurements.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import torch

logger = logging.getLogger(__name__)

__all__ = [
    "PAD_SEGMENT",
    "PROMPT_SEGMENT",
    "SHARED_KEYS",
    "SharedPrompt",
    "block_attention_mask",
    "common_prefix_length",
    "pack",
    "unsupported_reason",
]

# Segment ids of the packed rows: completion k of an element has segment k (0-based); the shared prefix and the
# padding have these two.
PROMPT_SEGMENT = -1
PAD_SEGMENT = -2
# Batch keys added by `pack`. `shared_index[n, t]` is the flat index (row * width + column) in the packed batch of
# token t of sequence n of the unshared batch, -1 where that sequence is padding.
SHARED_KEYS = ("shared_input_ids", "shared_position_ids", "shared_segment_ids", "shared_index")
# Tokens of the probe's longer sequence: enough to exercise masks and positions, cheap next to a training step.
_PROBE_TOKENS = 48
# Attention implementations that take a ready 4-D mask (transformers returns such a mask as it is).
MASKABLE_ATTENTION = ("sdpa", "eager")


def common_prefix_length(sequences: Sequence[Sequence[int]]) -> int:
    """Length of the longest common prefix of ``sequences``, capped so that each keeps at least one token."""
    if len(sequences) < 2:
        return 0
    limit = min(len(s) for s in sequences) - 1
    first = sequences[0]
    n = 0
    while n < limit and all(s[n] == first[n] for s in sequences[1:]):
        n += 1
    return max(n, 0)


def pack(
    groups: Sequence[Sequence[Sequence[int]]],
    pad_token_id: int,
    width: int,
    padding_side: str = "right",
    pad_to_multiple_of: int | None = None,
    force: bool = False,
) -> dict[str, torch.Tensor] | None:
    """Pack each group (one element's K token lists, in the order of the unshared batch) into one row.

    ``width`` is the width T of the unshared batch (its padded sequence length); ``shared_index`` has that width.
    Returns the :data:`SHARED_KEYS` tensors, or ``None`` when packing would not pay: unless ``force``, the packed
    batch must hold fewer tokens than the unshared one and no more query-key pairs (a packed row's attention is
    dense over its whole length, an unshared row's over its own).
    """
    if padding_side not in ("left", "right"):
        raise ValueError(f"padding_side must be 'left' or 'right', got {padding_side!r}")
    rows, positions, segments, spans = [], [], [], []
    for sequences in groups:
        shared = common_prefix_length(sequences)
        ids, pos, seg = list(sequences[0][:shared]), list(range(shared)), [PROMPT_SEGMENT] * shared
        starts = []
        for k, sequence in enumerate(sequences):
            starts.append(len(ids) - shared)  # where token `shared` of this sequence lands, minus `shared`
            suffix = sequence[shared:]
            ids.extend(suffix)
            pos.extend(range(shared, len(sequence)))
            seg.extend([k] * len(suffix))
        rows.append(ids)
        positions.append(pos)
        segments.append(seg)
        spans.append((shared, starts, [len(s) for s in sequences]))
    length = max(len(r) for r in rows)
    if pad_to_multiple_of:
        length = -(-length // pad_to_multiple_of) * pad_to_multiple_of
    num_sequences = sum(len(g) for g in groups)
    if not force and (len(rows) * length >= num_sequences * width or len(rows) * length**2 > num_sequences * width**2):
        return None

    input_ids = torch.full((len(rows), length), pad_token_id, dtype=torch.long)
    position_ids = torch.zeros((len(rows), length), dtype=torch.long)
    segment_ids = torch.full((len(rows), length), PAD_SEGMENT, dtype=torch.long)
    index = torch.full((num_sequences, width), -1, dtype=torch.long)
    n = 0
    for b, (ids, pos, seg, (shared, starts, lengths)) in enumerate(zip(rows, positions, segments, spans)):
        offset = length - len(ids) if padding_side == "left" else 0
        input_ids[b, offset : offset + len(ids)] = torch.tensor(ids, dtype=torch.long)
        position_ids[b, offset : offset + len(ids)] = torch.tensor(pos, dtype=torch.long)
        segment_ids[b, offset : offset + len(ids)] = torch.tensor(seg, dtype=torch.long)
        base = b * length + offset
        for start, seq_len in zip(starts, lengths):
            index[n, :shared] = torch.arange(shared) + base
            index[n, shared:seq_len] = torch.arange(seq_len - shared) + base + shared + start
            n += 1
    return {
        "shared_input_ids": input_ids,
        "shared_position_ids": position_ids,
        "shared_segment_ids": segment_ids,
        "shared_index": index,
    }


def block_attention_mask(segment_ids: torch.Tensor, implementation: str, dtype: torch.dtype) -> torch.Tensor:
    """The (B, 1, L, L) mask of packed rows, in the form transformers builds for ``implementation``.

    Query i may attend key j <= i when j is a prompt token or in i's own completion; a padding query attends only to
    itself (its output is never used, but a row with nothing to attend to is NaN in sdpa and would spread NaN into
    the gradients). ``sdpa`` takes a boolean mask (True = attend), ``eager`` an additive float mask.
    """
    length = segment_ids.shape[1]
    position = torch.arange(length, device=segment_ids.device)
    causal = position[None, :] <= position[:, None]  # [query, key]
    query, key = segment_ids[:, :, None], segment_ids[:, None, :]
    allowed = causal & (key != PAD_SEGMENT) & (query != PAD_SEGMENT) & ((key == PROMPT_SEGMENT) | (key == query))
    allowed = allowed | torch.eye(length, dtype=torch.bool, device=segment_ids.device)
    allowed = allowed[:, None]
    if implementation == "sdpa":
        return allowed
    return torch.zeros(allowed.shape, dtype=dtype, device=segment_ids.device).masked_fill(
        ~allowed, torch.finfo(dtype).min
    )


def _base_model(model):
    """The transformers model under DDP/DeepSpeed wrappers and a PEFT adapter."""
    while hasattr(model, "module") and isinstance(model.module, torch.nn.Module):
        model = model.module
    get_base = getattr(model, "get_base_model", None)
    return get_base() if callable(get_base) else model


def _score_head(model):
    head = getattr(_base_model(model), "score", None)
    return head if isinstance(head, torch.nn.Module) else None


def unsupported_reason(model, kind: str) -> str | None:
    """Why ``model`` cannot score packed rows (a short phrase), or ``None`` if nothing rules it out.

    ``kind`` is ``"reward"`` (a sequence classifier whose per-token scores come from a ``score`` head) or
    ``"causal_lm"`` (per-token logits).
    """
    base = _base_model(model)
    config = getattr(base, "config", None)
    if config is None:
        return f"{type(base).__name__} has no transformers config"
    if getattr(config, "is_encoder_decoder", False):
        return f"{type(base).__name__} is an encoder-decoder model"
    bidirectional = [type(m).__name__ for m in base.modules() if getattr(m, "is_causal", True) is False]
    if bidirectional:
        return (
            f"{type(base).__name__} has bidirectional attention ({bidirectional[0]}.is_causal is False): an encoder "
            "lets prompt tokens see the completion, so the prompt cannot be shared"
        )
    implementation = getattr(config, "_attn_implementation", None)
    if implementation not in MASKABLE_ATTENTION:
        return (
            f"attention implementation {implementation!r} takes no 4-D attention mask (packing needs "
            f"one of {', '.join(MASKABLE_ATTENTION)})"
        )
    text_config = config.get_text_config() if hasattr(config, "get_text_config") else config
    layer_types = getattr(text_config, "layer_types", None) or []
    windowed = sorted({t for t in layer_types if t != "full_attention"})
    if windowed or (
        not layer_types
        and getattr(text_config, "sliding_window", None) is not None
        and getattr(text_config, "use_sliding_window", True)
    ):
        return f"{type(base).__name__} has {', '.join(windowed) or 'sliding-window'} layers"
    if kind == "reward":
        if _score_head(model) is None:
            return f"{type(base).__name__} has no per-token `score` head to read the K rewards from"
        if getattr(text_config, "pad_token_id", None) is None:
            return "the model config has no pad_token_id (the classifier then scores the last position of a row)"
    return None


class SharedPrompt:
    """Per-trainer switch between packed (shared-prompt) and unshared forwards.

    The first call of :meth:`take` checks the model: :func:`unsupported_reason`, then a probe that scores a short
    two-completion element both ways under ``torch.no_grad()`` in eval mode and compares. It runs on every process
    at the same call (the trainers call it on every micro-batch, packed or not), so collectives inside the forward
    (DDP buffer broadcasts, ZeRO-3 gathers) line up. If either fails, one warning says why and every later batch
    takes the unshared path.
    """

    def __init__(self, enabled: bool, kind: str):
        if kind not in ("reward", "causal_lm"):
            raise ValueError(f"kind must be 'reward' or 'causal_lm', got {kind!r}")
        self.enabled = enabled
        self.kind = kind
        self.reason: str | None = None if enabled else "turned off (shared_prompt=False)"
        self._checked = not enabled

    def take(self, model, inputs: dict[str, Any], extra_reason: str | None = None) -> dict[str, torch.Tensor] | None:
        """Remove the packed tensors from ``inputs``; return them if this batch runs packed, else ``None``.

        Call it on every micro-batch, packed or not: the first call checks the model (``extra_reason``, if given, is
        a reason of the trainer's own not to share).
        """
        if not self._checked:
            self._checked = True
            self.reason = extra_reason or unsupported_reason(model, self.kind) or self._probe(model, inputs)
            if self.reason is None:
                logger.info("Shared-prompt batching on: each prompt is encoded once per ranked element.")
            else:
                logger.warning(
                    "Shared-prompt batching is off: %s. Each completion is scored in its own row with its prompt "
                    "(set shared_prompt=False to skip this check).",
                    self.reason,
                )
        shared = {key: inputs.pop(key) for key in SHARED_KEYS if key in inputs}
        return shared if self.reason is None and len(shared) == len(SHARED_KEYS) else None

    # ----------------------------------------------------------------------------------------------------------
    # Packed forwards
    # ----------------------------------------------------------------------------------------------------------

    @staticmethod
    def _forward(model, shared):
        base = _base_model(model)
        device = shared["shared_input_ids"].device.type
        if torch.is_autocast_enabled(device):
            dtype = torch.get_autocast_dtype(device)
        else:
            dtype = next(base.parameters()).dtype
        mask = block_attention_mask(shared["shared_segment_ids"], base.config._attn_implementation, dtype)
        return model(
            shared["shared_input_ids"],
            attention_mask=mask,
            position_ids=shared["shared_position_ids"],
            use_cache=False,
        )

    def rewards(self, model, input_ids: torch.Tensor, shared: dict[str, torch.Tensor]) -> torch.Tensor | None:
        """(N,) rewards of the N sequences of the unshared ``input_ids``, read where the classifier reads them.

        The classifier scores the rightmost token that is not its config's ``pad_token_id``; the same token is
        located in the packed batch. ``None`` (run the batch unshared) if that token is padding, which happens only
        when the collator's and the config's pad ids differ.
        """
        pad_id = _base_model(model).config.get_text_config().pad_token_id
        index = shared["shared_index"]
        columns = torch.arange(input_ids.shape[1], device=input_ids.device)
        last = (columns * (input_ids != pad_id)).argmax(-1)
        where = index.gather(1, last[:, None]).squeeze(1)
        if (where < 0).any():
            return None
        captured = []
        handle = _score_head(model).register_forward_hook(lambda module, args, output: captured.append(output))
        try:
            self._forward(model, shared)
        finally:
            handle.remove()
        scores = captured[-1]
        return scores.reshape(-1, scores.shape[-1])[where].squeeze(-1)

    def token_logps(
        self, model, input_ids: torch.Tensor, shared: dict[str, torch.Tensor]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-token log-probabilities (N, T-1) of the unshared ``input_ids`` (position t: log p(token t+1 | <= t),
        0 where token t+1 is padding) and, for TRL's ``logits/*`` metrics, each sequence's mean logit over its own
        positions 0..len-2 (detached; the unshared path averages over padding positions too)."""
        logits = self._forward(model, shared).logits
        flat = logits.reshape(-1, logits.shape[-1])
        index = shared["shared_index"]
        present = (index[:, :-1] >= 0) & (index[:, 1:] >= 0)  # token t and its target t + 1 are both real
        where = index[:, :-1].clamp(min=0)
        targets = input_ids[:, 1:]
        if logits.dtype in (torch.float32, torch.float64):
            # gather - logsumexp, one packed row at a time (the peak stays one row's worth of logits)
            normalizer = torch.cat([torch.logsumexp(row, dim=-1) for row in logits])
            token_logps = flat[where, targets] - normalizer[where]
        else:  # half precision: log_softmax per row is the stabler form, as in trl.trainer.utils.selective_log_softmax
            per_row = torch.cat([torch.log_softmax(row, dim=-1) for row in logits])
            token_logps = per_row[where, targets]
        token_logps = token_logps.masked_fill(~present, 0.0)
        with torch.no_grad():
            mean_logit = flat.detach().mean(-1)[where]
            mean_logits = (mean_logit * present).sum(-1) / present.sum(-1).clamp(min=1)
        return token_logps, mean_logits

    # ----------------------------------------------------------------------------------------------------------
    # Probe
    # ----------------------------------------------------------------------------------------------------------

    def _probe(self, model, inputs) -> str | None:
        """Score a two-completion element built from the batch's first sequence (its first tokens) both ways; a
        reason if the scores differ."""
        ids = inputs["input_ids"][0]
        tokens = ids[inputs["attention_mask"][0].bool()].tolist()[:_PROBE_TOKENS]
        if len(tokens) < 3:
            tokens = (tokens * 3)[:3]
        split = len(tokens) // 2
        sequences = [tokens, tokens[:split] + tokens[split:-1][::-1]]  # a shared prefix, different lengths
        pad_id = getattr(_base_model(model).config.get_text_config(), "pad_token_id", None)
        pad_id = 0 if pad_id is None else pad_id
        width = len(tokens)
        input_ids = torch.tensor([s + [pad_id] * (width - len(s)) for s in sequences], device=ids.device)
        attention_mask = torch.tensor([[1] * len(s) + [0] * (width - len(s)) for s in sequences], device=ids.device)
        shared = {k: v.to(ids.device) for k, v in pack([sequences], pad_id, width=width, force=True).items()}
        was_training = model.training
        model.eval()
        try:
            with torch.no_grad():
                output = model(input_ids, attention_mask=attention_mask, use_cache=False)
                if self.kind == "reward":
                    expected = output.logits.squeeze(-1).float()
                    got = self.rewards(model, input_ids, shared)
                    if got is None:
                        return "the classifier scores a padding position"
                    got = got.float()
                else:
                    logits = output.logits[:, :-1].float()
                    expected = torch.log_softmax(logits, -1).gather(-1, input_ids[:, 1:, None]).squeeze(-1)
                    keep = attention_mask[:, 1:].bool()
                    got, _ = self.token_logps(model, input_ids, shared)
                    expected, got = expected[keep], got.float()[keep]
        except Exception as error:  # noqa: BLE001 - any failure means: do not share, and say why
            return f"the packed forward failed on a probe ({type(error).__name__}: {error})"
        finally:
            model.train(was_training)
        full_precision = not torch.is_autocast_enabled(ids.device.type) and (
            next(_base_model(model).parameters()).dtype == torch.float32
        )
        tolerance = (1e-4 if full_precision else 5e-2) * (1 + expected.abs().max().item())
        difference = (expected - got).abs().max().item()
        if not difference <= tolerance:
            return (
                f"packed scores differ from unshared ones on a probe by {difference:.3g} (tolerance {tolerance:.3g}): "
                "the model does not honour a 4-D attention mask and position ids"
            )
        return None
