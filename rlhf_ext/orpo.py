"""ORPO (Hong et al. 2024) on preference pairs and on ranked lists, exact and numerically sound.

``ORPOTrainer`` is a thin subclass of ``trl.experimental.orpo.ORPOTrainer``. The loss of a prompt is

    L = L_SFT + beta * mean over its ordered pairs (w, l) of -log sigmoid(log odds(y_w|x) - log odds(y_l|x)),

with ``odds = P / (1 - P)`` on length-normalised (mean per completion token) log-probabilities, computed by
:func:`rlhf_ext.losses.odds_ratio_loss` (finite value and gradient at logp = 0, where TRL returns -inf, and for very
negative logps). The batch loss is the mean over prompts. What differs from TRL's trainer:

- **Ranked rows** (``prompt``, ``completions``, ``ranks``; lower rank is better, equal ranks tie and form no pair):
  every completion of every prompt in the batch runs through the model once (one forward pass for the whole
  batch), the odds-ratio term is averaged over all C(K, 2) ordered pairs of the prompt (ties excluded), and the SFT
  term is the NLL of the best-ranked completion. K may differ between the rows of a batch. TRL preference rows
  (``chosen``/``rejected``, explicit or implicit prompt, text or conversations) are read as K = 2, where loss and
  metrics equal TRL's. Processed pairs keep TRL's columns (``chosen_input_ids``, ``chosen_labels``,
  ``rejected_input_ids``, ..., plus ``ranks=[0, 1]``); ranked rows hold ``completions_input_ids``,
  ``completions_attention_mask``, ``completions_labels`` and ``ranks``.
- **Ties for best**: all completions sharing the best rank are SFT targets, each with weight ``1 / n_best`` so a
  prompt weighs the same in the SFT term whatever its number of tied winners (InstructGPT-style ranking data ties
  often; picking the first would depend on the order the completions happen to be stored in).
- **All-masked rows**: a completion left with no completion token after truncation (the prompt alone fills
  ``max_length``) has no mean log-probability (TRL divides by zero and the loss is NaN). It is excluded from the
  odds-ratio pairs and the SFT term, and counted in the ``num_masked_rows`` metric (summed over the logging window).
  A batch with no valid pair contributes 0 to the odds-ratio term.
- **SFT term** (``sft_target``): ``"prompt_and_completion"`` (default, TRL's: cross-entropy over every non-padding
  token of the chosen sequence, prompt included) or ``"completion"`` (the paper's Eq. 2: NLL of the chosen response
  tokens only). The default keeps this class a drop-in, numerically identical replacement for TRL's trainer.
- Bad rows raise ``ValueError`` naming the row in ``__init__`` (``rlhf_ext.data.validation.validate_ranked_dataset``).
- **Encoder-decoder models** (e.g. T5) train on pairs, through the parent's tokenization, collator and forward pass
  (prompt to the encoder, completions to the decoder) with this module's odds-ratio loss; their SFT term is the NLL of
  the chosen completion whatever ``sft_target`` says, since the prompt is the encoder's input. Ranked rows need a
  decoder-only model (one forward over a flat batch of prompt + completion sequences) and raise ``ValueError``.
- ``eval_dataset`` may be a ``Dataset``, a ``DatasetDict`` or a plain dict of datasets (metrics ``eval_<name>_*``);
  streaming ``IterableDataset``s are refused with ``ValueError``, since TRL's ORPO preprocessing needs map-style data.
- **Shared prompts** (``shared_prompt``, default on): the tokens the K completions of a row share are encoded
  once, the completions packed after them into one row (:mod:`rlhf_ext.shared_prompt`); log-probabilities, loss and
  gradients are those of one row per completion. ``logits/chosen``/``logits/rejected`` then average each sequence's
  own positions instead of the batch's padded width (equal when no row is padded).

Logged metrics (train and ``eval_``) are TRL's: ``rewards/chosen``, ``rewards/rejected`` (``beta * logp``),
``rewards/accuracies``, ``rewards/margins``, ``logps/chosen``, ``logps/rejected``, ``logits/chosen``,
``logits/rejected`` (mean logit over the sequence positions, padding included, as TRL; see shared prompts above),
``nll_loss``, ``log_odds_ratio`` (mean ``log sigmoid`` of the log-odds difference) and ``log_odds_chosen`` (mean
log-odds difference). On ranked rows the pair metrics are averaged like the loss: over the pairs of a prompt, then over
prompts; "chosen"/"rejected" are each pair's winner/loser. Plus ``num_masked_rows`` and ``num_pairs``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
import trl

try:
    from trl.experimental.orpo import ORPOConfig as _TRLORPOConfig
    from trl.experimental.orpo import ORPOTrainer as _TRLORPOTrainer
except ImportError as error:  # pragma: no cover - depends on the installed TRL
    raise ImportError(
        "rlhf_ext.ORPOTrainer subclasses trl.experimental.orpo.ORPOTrainer, which the installed TRL "
        f"({trl.__version__}) does not provide. rlhf_ext is tested with trl 1.16 (setup.py allows trl>=1.16,<2); "
        "install it with `pip install 'trl>=1.16,<1.17'`."
    ) from error
from datasets import Dataset, DatasetDict, IterableDataset
from trl.data_utils import apply_chat_template, is_conversational, maybe_apply_chat_template, maybe_extract_prompt
from trl.experimental.utils import DPODataCollatorWithPadding
from trl.trainer.utils import pad, selective_log_softmax

from rlhf_ext.base_trainer import TrainerMixin
from rlhf_ext.data.ranking import ranked_pairs
from rlhf_ext.data.validation import validate_ranked_dataset
from rlhf_ext.losses import log_odds, odds_ratio_loss
from rlhf_ext.nonfinite import check_finite
from rlhf_ext.shared_prompt import SharedPrompt, pack

SFT_TARGETS = ("prompt_and_completion", "completion")
# Token columns of a processed ranked row (K lists each); a processed pair has TRL's chosen_*/rejected_* instead.
_TOKEN_COLUMNS = ("completions_input_ids", "completions_attention_mask", "completions_labels")
_SEQUENCE_KEYS = ("input_ids", "attention_mask", "labels")
_PAIR_COLUMNS = tuple(f"{side}_{key}" for side in ("chosen", "rejected") for key in _SEQUENCE_KEYS)


def _sequences_and_ranks(example: dict[str, Any]) -> tuple[list[tuple[list, list, list]], list]:
    """(input_ids, attention_mask, labels) of each completion of a processed row, and their ranks (pairs: [0, 1])."""
    if _TOKEN_COLUMNS[0] in example:
        return list(zip(*(example[c] for c in _TOKEN_COLUMNS))), example["ranks"]
    sequences = [tuple(example[f"{side}_{key}"] for key in _SEQUENCE_KEYS) for side in ("chosen", "rejected")]
    return sequences, example.get("ranks") or [0, 1]


@dataclass
class ORPOConfig(_TRLORPOConfig):
    r"""Configuration for [`rlhf_ext.ORPOTrainer`]: every `trl.experimental.orpo.ORPOConfig` field, plus the ones below.

    `per_device_train_batch_size` counts prompts (rows): a batch of B ranked rows with K completions each runs
    B*K sequences through the model at once. `beta` is the paper's lambda (0.1).
    """

    sft_target: str = field(
        default="prompt_and_completion",
        metadata={
            "help": "Tokens of the best-ranked (chosen) sequence that the SFT (NLL) term covers. "
            "'prompt_and_completion' (default): every non-padding token, prompt included, as "
            "trl.experimental.orpo.ORPOTrainer does, so that defaults reproduce TRL's loss exactly. "
            "'completion': the completion tokens only, the paper's L_SFT (Hong et al. 2024, Eq. 2).",
            "choices": list(SFT_TARGETS),
        },
    )
    odds_ratio_eps: float | None = field(
        default=None,
        metadata={
            "help": "Mean log-probabilities are clamped to at most -odds_ratio_eps before log(1 - p): the log-odds "
            "of a completion are capped at log((1-eps)/eps) (13.8 for 1e-6), and logp = 0, which float32 "
            "log-softmax returns for a confident token, gives a finite loss and gradient (TRL's: -inf). None: "
            "1e-6 for float32 (and lower precisions), the same margin over float64's resolution (~1.9e-15)."
        },
    )

    shared_prompt: bool = field(
        default=True,
        metadata={
            "help": "Encode the shared prompt of a ranked row once: its K completions are packed after it into one "
            "sequence with a block attention mask and restarted position ids, K(P + C) -> P + KC tokens, with the "
            "same log-probabilities, loss and gradients (logits/chosen and logits/rejected then average each "
            "sequence's own positions, not the batch's padding). Used for batches where it saves work, on causal "
            "LMs with sdpa or eager attention and no router auxiliary loss; other models fall back with one logged "
            "warning saying why. False: every completion runs in its own row with its prompt, exactly as TRL."
        },
    )

    def __post_init__(self):
        super().__post_init__()
        if self.sft_target not in SFT_TARGETS:
            raise ValueError(f"sft_target must be one of {SFT_TARGETS}, got {self.sft_target!r}.")
        if self.odds_ratio_eps is not None and not self.odds_ratio_eps > 0:
            raise ValueError(f"odds_ratio_eps must be positive, got {self.odds_ratio_eps}.")


@dataclass
class DataCollatorForRankedORPO:
    """Flattens the completions of all rows into one right-padded batch and lists the comparison pairs.

    Each example has ``completions_input_ids``/``completions_attention_mask``/``completions_labels`` (K token lists,
    prompt + completion, labels -100 on the prompt) and ``ranks``, or TRL's pair columns ``chosen_input_ids``/
    ``chosen_attention_mask``/``chosen_labels`` and ``rejected_*`` (K = 2, chosen first). Returns
    ``input_ids``/``attention_mask``/``labels`` of shape (sum K, L), ``prompt_index`` and ``ranks`` (sum K,),
    ``pair_winner``/``pair_loser``/``pair_prompt`` (P,) (flat sequence indices), ``prompt_input_ids``/
    ``prompt_attention_mask`` left-padded when present (for ``generate_during_eval``) and ``prompt`` strings when
    present. With ``shared_prompt``, also the packed layout of ``rlhf_ext.shared_prompt.pack`` (one row per prompt)
    for batches where it costs less.
    """

    pad_token_id: int | None = None
    shared_prompt: bool = True

    def __call__(self, examples: list[dict[str, Any]]) -> dict[str, Any]:
        if self.pad_token_id is None:
            raise ValueError("DataCollatorForRankedORPO needs a pad_token_id.")
        input_ids, attention_mask, labels, ranks, prompt_index = [], [], [], [], []
        winners, losers, pair_prompt = [], [], []
        groups, packable = [], self.shared_prompt  # token lists per row, for shared-prompt packing
        for b, example in enumerate(examples):
            offset = len(input_ids)
            sequences, row_ranks = _sequences_and_ranks(example)
            groups.append([list(ids) for ids, _, _ in sequences])
            for ids, mask, lab in sequences:
                packable = packable and all(mask)
                input_ids.append(torch.tensor(ids, dtype=torch.long))
                attention_mask.append(torch.tensor(mask, dtype=torch.long))
                labels.append(torch.tensor(lab, dtype=torch.long))
            ranks.extend(int(r) for r in row_ranks)
            prompt_index.extend([b] * len(row_ranks))
            for win, lose in ranked_pairs(row_ranks):
                winners.append(offset + win)
                losers.append(offset + lose)
                pair_prompt.append(b)
        batch = {
            "input_ids": pad(input_ids, self.pad_token_id, "right"),
            "attention_mask": pad(attention_mask, 0, "right"),
            "labels": pad(labels, -100, "right"),
            "ranks": torch.tensor(ranks, dtype=torch.long),
            "prompt_index": torch.tensor(prompt_index, dtype=torch.long),
            "pair_winner": torch.tensor(winners, dtype=torch.long),
            "pair_loser": torch.tensor(losers, dtype=torch.long),
            "pair_prompt": torch.tensor(pair_prompt, dtype=torch.long),
        }
        if "prompt_input_ids" in examples[0]:
            prompts = [torch.tensor(e["prompt_input_ids"], dtype=torch.long) for e in examples]
            batch["prompt_input_ids"] = pad(prompts, self.pad_token_id, "left")
            batch["prompt_attention_mask"] = pad([torch.ones_like(p) for p in prompts], 0, "left")
        if "prompt" in examples[0]:
            batch["prompt"] = [e["prompt"] for e in examples]
        if packable:
            batch.update(pack(groups, self.pad_token_id, batch["input_ids"].shape[1]) or {})
        return batch


def _common_prefix(texts: list[str]) -> str:
    first = texts[0]
    n = len(first)
    for text in texts[1:]:
        n = min(n, len(text))
        for i in range(n):
            if first[i] != text[i]:
                n = i
                break
    return first[:n]


def _ranked_chat_template(example: dict[str, Any], processing_class) -> dict[str, Any]:
    """Render a conversational ranked row as text, splitting prompt/completion the way TRL does for pairs."""
    if not is_conversational({"prompt": example["prompt"]}):
        return {}
    tools = example.get("tools")
    rendered = [
        apply_chat_template({"prompt": example["prompt"], "completion": c}, processing_class, tools=tools)
        for c in example["completions"]
    ]
    prompt = _common_prefix([r["prompt"] for r in rendered])
    return {"prompt": prompt, "completions": [r["prompt"][len(prompt) :] + r["completion"] for r in rendered]}


class ORPOTrainer(TrainerMixin, _TRLORPOTrainer):
    """`trl.experimental.orpo.ORPOTrainer` for pairs and ranked lists, NaN-free; see the module docstring.

    Takes the parent's arguments. Rows are validated (``ValueError`` naming the row) before anything is loaded.
    """

    _tag_names = ["trl", "orpo", "rlhf_ext"]
    # rlhf_ext's model card (TrainerMixin replaces TRL's create_model_card).
    _card_kind = "policy"
    _card_method = "ORPO (odds-ratio preference optimisation, no reference model), on pairs or ranked lists"
    _card_citations = ("orpo", "trl")
    _card_curves = ("loss", "nll_loss", "log_odds_ratio", "rewards/accuracies")
    _card_hyperparameters = TrainerMixin._card_hyperparameters + ("beta", "sft_target", "max_length")

    def __init__(
        self,
        model=None,
        args: ORPOConfig | None = None,
        data_collator=None,
        train_dataset: Dataset | list[dict] | None = None,
        eval_dataset=None,
        processing_class=None,
        model_init=None,
        callbacks=None,
        optimizers=(None, None),
        preprocess_logits_for_metrics=None,
        peft_config=None,
        compute_metrics=None,
    ):
        if args is None:
            args = ORPOConfig(self.default_run_name(model, "ORPO"))
        if train_dataset is None:
            raise ValueError("`train_dataset` is required")
        # Check the data before loading anything: bad rows must fail here, not steps into training.
        self._validate_datasets(self._validate, train_dataset, eval_dataset)
        model_config = getattr(model, "config", None)
        is_encoder_decoder = bool(
            getattr(model_config, "is_encoder_decoder", False) if model_config is not None else args.is_encoder_decoder
        )

        if processing_class is None:
            from transformers import AutoTokenizer
            from trl.trainer.utils import get_config_model_id

            source = model if isinstance(model, str) else get_config_model_id(model.config)
            revision = (args.model_init_kwargs or {}).get("revision") if isinstance(model, str) else None
            processing_class = AutoTokenizer.from_pretrained(
                source, revision=revision, trust_remote_code=args.trust_remote_code
            )
        train_dataset = self._as_text(train_dataset, processing_class, args)
        if isinstance(eval_dataset, dict):
            # The parent calls eval_dataset.map(...): a DatasetDict maps every split and keeps the names.
            eval_dataset = DatasetDict({k: self._as_text(v, processing_class, args) for k, v in eval_dataset.items()})
        elif eval_dataset is not None:
            eval_dataset = self._as_text(eval_dataset, processing_class, args)

        own_collator = data_collator is None
        if own_collator:
            pad_id = args.padding_value if args.padding_value is not None else processing_class.pad_token_id
            if is_encoder_decoder:  # pairs only: the parent's collator and forward pass
                data_collator = DPODataCollatorWithPadding(pad_token_id=pad_id, is_encoder_decoder=True)
            else:
                data_collator = DataCollatorForRankedORPO(
                    pad_token_id=pad_id, shared_prompt=getattr(args, "shared_prompt", True)
                )
        self._num_masked_rows = {"train": 0, "eval": 0}
        super().__init__(
            model=model,
            args=args,
            data_collator=data_collator,
            train_dataset=train_dataset,
            eval_dataset=eval_dataset,
            processing_class=processing_class,
            model_init=model_init,
            callbacks=callbacks,
            optimizers=optimizers,
            preprocess_logits_for_metrics=preprocess_logits_for_metrics,
            peft_config=peft_config,
            compute_metrics=compute_metrics,
        )
        # Our collator is the ranked counterpart of TRL's DPO collator: prediction_step need not warn.
        self.use_dpo_data_collator = own_collator or self.use_dpo_data_collator
        self._shared_prompt = SharedPrompt(getattr(args, "shared_prompt", True), kind="causal_lm")

    # ----------------------------------------------------------------------------------------------------------
    # Data
    # ----------------------------------------------------------------------------------------------------------

    @staticmethod
    def _validate(dataset, name: str, limit: int | None = None) -> None:
        if isinstance(dataset, IterableDataset):
            raise ValueError(
                f"{name} is an IterableDataset; ORPOTrainer needs a map-style datasets.Dataset (or a list of rows), "
                "as trl.experimental.orpo.ORPOTrainer tokenizes with Dataset.map(num_proc=...). Load it without "
                "streaming=True, or build one with Dataset.from_generator."
            )
        validate_ranked_dataset(dataset, name=name, limit=limit, generation_prompt=True)

    @staticmethod
    def _as_text(dataset, processing_class, args):
        """Any accepted row format -> rows of text (chat templates applied), ready for ``tokenize_row``.

        Pairs stay pairs, rendered by TRL's own prompt extraction and chat template (the parent's first steps, which
        then find nothing left to do), so the text is exactly what TRL trains on; ranked rows stay ranked.
        """
        if isinstance(dataset, list):
            dataset = Dataset.from_list(dataset)
        map_kwargs = {"num_proc": args.dataset_num_proc}
        if "completions" not in dataset.column_names:
            dataset = dataset.map(maybe_extract_prompt, **map_kwargs)
            return dataset.map(
                maybe_apply_chat_template, fn_kwargs={"processing_class": processing_class}, **map_kwargs
            )
        return dataset.map(_ranked_chat_template, fn_kwargs={"processing_class": processing_class}, **map_kwargs)

    def tokenize_row(self, feature, model=None) -> dict:
        """Tokenize every completion of a row exactly as TRL tokenizes a chosen response.

        Each completion goes through the parent's ``tokenize_row`` on its own (BOS/EOS rules, merge-aware prompt
        split, truncation of the response to ``max_length``), so pairs get TRL's token ids, under TRL's column names
        (``chosen_input_ids``, ``rejected_labels``, ...); ranked rows get ``completions_*`` lists. An encoder-decoder
        model tokenizes pairs with the parent's ``tokenize_row`` as is.
        """
        is_pair = "completions" not in feature
        if self.is_encoder_decoder:
            if not is_pair:
                raise ValueError(
                    "rlhf_ext.ORPOTrainer trains encoder-decoder models on chosen/rejected pairs only; ranked rows "
                    "(prompt, completions, ranks) need a decoder-only model. rlhf_ext.data.ranking.ranked_to_pairs "
                    "turns them into pairs."
                )
            return {**super().tokenize_row(feature, model), "ranks": [0, 1]}
        completions = [feature["chosen"], feature["rejected"]] if is_pair else feature["completions"]
        rows = [
            super(ORPOTrainer, self).tokenize_row({"prompt": feature["prompt"], "chosen": c, "rejected": c})
            for c in completions
        ]
        # The generation prompt: the shortest merge-safe one (TRL's rule for a pair).
        prompt_ids = min((row["prompt_input_ids"] for row in rows), key=len)
        if is_pair:
            out = {
                f"{side}_{key}": row[f"chosen_{key}"]
                for side, row in zip(("chosen", "rejected"), rows)
                for key in _SEQUENCE_KEYS
            }
            return {
                **out,
                "prompt_input_ids": prompt_ids,
                "prompt_attention_mask": [1] * len(prompt_ids),
                "ranks": [0, 1],
            }
        out = {column: [row[f"chosen_{key}"] for row in rows] for column, key in zip(_TOKEN_COLUMNS, _SEQUENCE_KEYS)}
        return {**out, "prompt_input_ids": prompt_ids}

    def evaluate(self, eval_dataset=None, ignore_keys=None, metric_key_prefix="eval"):
        """The parent's ``evaluate``; a raw ``eval_dataset`` (pairs or ranked rows) is validated and tokenized first."""
        if isinstance(eval_dataset, dict):
            eval_dataset = {k: self._prepare_eval(v, f"eval_dataset[{k!r}]") for k, v in eval_dataset.items()}
        elif eval_dataset is not None and not isinstance(eval_dataset, str):
            eval_dataset = self._prepare_eval(eval_dataset, "eval_dataset")
        return super().evaluate(
            eval_dataset=eval_dataset, ignore_keys=ignore_keys, metric_key_prefix=metric_key_prefix
        )

    def _prepare_eval(self, dataset, name: str):
        columns = getattr(dataset, "column_names", None) or []
        if any(c in columns for c in (_TOKEN_COLUMNS[0], "chosen_input_ids", "chosen_labels")):
            return dataset  # already went through __init__'s pipeline
        self._validate(dataset, name, self._rows_to_check(dataset))
        dataset = self._as_text(dataset, self.processing_class, self.args)
        return dataset.map(self.tokenize_row, num_proc=self.args.dataset_num_proc)

    def _set_signature_columns_if_needed(self):
        if self._signature_columns is None:
            prompt = ["prompt_input_ids", "prompt_attention_mask", "prompt"]
            self._signature_columns = [*_TOKEN_COLUMNS, *_PAIR_COLUMNS, "ranks", *prompt]

    # ----------------------------------------------------------------------------------------------------------
    # Loss and metrics
    # ----------------------------------------------------------------------------------------------------------

    def get_batch_loss_metrics(self, model, batch: dict[str, Any], train_eval: str = "train"):
        """One forward over every completion of the batch; ORPO loss and TRL's metrics (see the module docstring)."""
        if self.is_encoder_decoder:
            return self._encoder_decoder_loss_metrics(model, batch, train_eval)
        model_kwargs = {"output_router_logits": True} if self.aux_loss_enabled else {}
        batch = dict(batch)
        input_ids, attention_mask, labels = batch["input_ids"], batch["attention_mask"], batch["labels"]
        no_sharing = "the router auxiliary loss depends on the token layout" if self.aux_loss_enabled else None
        shared = self._shared_prompt.take(model, batch, extra_reason=no_sharing)
        if shared is not None:  # each prompt encoded once (rlhf_ext.shared_prompt)
            token_logps, mean_logits = self._shared_prompt.token_logps(model, input_ids, shared)
        else:
            outputs = model(input_ids, attention_mask=attention_mask, use_cache=False, **model_kwargs)
            logits = outputs.logits[:, :-1, :]
            token_logps = selective_log_softmax(logits, input_ids[:, 1:])  # (N, T-1): log p(token t+1 | <= t)
            mean_logits = logits.detach().mean(dim=(1, 2))  # TRL's logits/*: every position, padding included

        completion_mask = labels[:, 1:] != -100
        num_completion_tokens = completion_mask.sum(-1)
        valid = num_completion_tokens > 0  # False: truncation left this completion no token
        logps = (token_logps * completion_mask).sum(-1) / num_completion_tokens.clamp(min=1)

        num_prompts = int(batch["prompt_index"].max().item()) + 1 if len(batch["prompt_index"]) else 0
        nll_loss = self._sft_loss(token_logps, attention_mask, completion_mask, valid, batch, num_prompts)

        # Pairs with both completions present; mean over each prompt's pairs, then over prompts.
        winner, loser, pair_prompt = batch["pair_winner"], batch["pair_loser"], batch["pair_prompt"]
        keep = valid[winner] & valid[loser]
        winner, loser, pair_prompt = winner[keep], loser[keep], pair_prompt[keep]
        pairs_per_prompt = torch.bincount(pair_prompt, minlength=num_prompts).to(logps.dtype)
        prompts_with_pairs = (pairs_per_prompt > 0).sum().clamp(min=1)
        weights = 1.0 / (pairs_per_prompt[pair_prompt] * prompts_with_pairs)

        chosen_logps, rejected_logps = logps[winner], logps[loser]
        eps = getattr(self.args, "odds_ratio_eps", None)  # a plain TRL ORPOConfig works too
        pair_losses = odds_ratio_loss(chosen_logps, rejected_logps, eps=eps)
        or_loss = (pair_losses * weights).sum() if len(pair_losses) else logps.sum() * 0.0
        if train_eval == "train":
            check_finite(self, {"sft": nll_loss, "odds_ratio": or_loss})
        loss = nll_loss + self.beta * or_loss
        if self.aux_loss_enabled:
            loss = loss + self.aux_loss_coef * outputs.aux_loss

        with torch.no_grad():
            chosen_logps, rejected_logps = chosen_logps.detach(), rejected_logps.detach()
            margin = log_odds(chosen_logps, eps) - log_odds(rejected_logps, eps)
            metrics = self._metrics_for(
                train_eval,
                chosen_logps,
                rejected_logps,
                margin,
                weights,
                mean_logits[winner],
                mean_logits[loser],
                nll_loss.detach(),
            )
            masked = self.accelerator.gather_for_metrics((~valid).sum().reshape(1)).sum().item()
            self._num_masked_rows[train_eval] += int(masked)
        return loss, metrics

    def _encoder_decoder_loss_metrics(self, model, batch: dict[str, Any], train_eval: str):
        """Pairs on an encoder-decoder model: the parent's forward pass and NLL, this module's odds-ratio loss."""
        forward = self.concatenated_forward(model, batch)
        chosen_logps, rejected_logps, chosen_logits, rejected_logits, nll_loss = forward[:5]
        eps = getattr(self.args, "odds_ratio_eps", None)  # a plain TRL ORPOConfig works too
        or_loss = odds_ratio_loss(chosen_logps, rejected_logps, eps=eps).mean()
        if train_eval == "train":
            check_finite(self, {"sft": nll_loss, "odds_ratio": or_loss})
        loss = nll_loss + self.beta * or_loss
        if self.aux_loss_enabled:
            loss = loss + self.aux_loss_coef * forward[5]
        with torch.no_grad():
            chosen_logps, rejected_logps = chosen_logps.detach(), rejected_logps.detach()
            margin = log_odds(chosen_logps, eps) - log_odds(rejected_logps, eps)
            weights = torch.full_like(chosen_logps, 1.0 / len(chosen_logps))
            metrics = self._metrics_for(
                train_eval,
                chosen_logps,
                rejected_logps,
                margin,
                weights,
                chosen_logits.detach().mean(dim=(1, 2)),
                rejected_logits.detach().mean(dim=(1, 2)),
                nll_loss.detach(),
            )
        return loss, metrics

    def _sft_loss(self, token_logps, attention_mask, completion_mask, valid, batch, num_prompts):
        """Token-mean NLL over the best-ranked completions (tied winners weighted 1/n_best), TRL's CE for K = 2."""
        ranks, prompt_index = batch["ranks"], batch["prompt_index"]
        big = torch.iinfo(ranks.dtype).max
        valid_ranks = torch.where(valid, ranks, torch.full_like(ranks, big))
        best_rank = torch.full((num_prompts,), big, dtype=ranks.dtype, device=ranks.device)
        best_rank = best_rank.scatter_reduce(0, prompt_index, valid_ranks, reduce="amin")
        is_best = valid & (ranks == best_rank[prompt_index])
        n_best = torch.zeros(num_prompts, dtype=token_logps.dtype, device=ranks.device).index_add_(
            0, prompt_index, is_best.to(token_logps.dtype)
        )
        seq_weight = is_best.to(token_logps.dtype) / n_best[prompt_index].clamp(min=1)
        if getattr(self.args, "sft_target", "prompt_and_completion") == "completion":
            token_mask = completion_mask
        else:
            token_mask = attention_mask[:, 1:].bool()
        token_weight = token_mask.to(token_logps.dtype) * seq_weight[:, None]
        denominator = token_weight.sum()
        if denominator == 0:
            return token_logps.sum() * 0.0
        return -(token_logps * token_weight).sum() / denominator

    def _metrics_for(
        self, train_eval, chosen_logps, rejected_logps, margin, weights, chosen_logits, rejected_logits, nll
    ) -> dict[str, float]:
        gather = self.accelerator.gather_for_metrics
        has_pairs = len(weights) > 0

        def wmean(values: torch.Tensor) -> torch.Tensor:
            local = (values.float() * weights.float()).sum() if has_pairs else torch.zeros((), device=nll.device)
            return gather(local.reshape(1)).mean()

        chosen_rewards = self.beta * chosen_logps
        rejected_rewards = self.beta * rejected_logps
        prefix = "eval_" if train_eval == "eval" else ""
        metrics = {
            "rewards/chosen": wmean(chosen_rewards),
            "rewards/rejected": wmean(rejected_rewards),
            "rewards/accuracies": wmean((chosen_rewards > rejected_rewards).float()),
            "rewards/margins": wmean(chosen_rewards - rejected_rewards),
            "logps/rejected": wmean(rejected_logps),
            "logps/chosen": wmean(chosen_logps),
            "logits/rejected": wmean(rejected_logits),
            "logits/chosen": wmean(chosen_logits),
            "nll_loss": gather(nll.reshape(1)).mean(),
            # TRL's names: log_odds_ratio is the mean log sigmoid of the log-odds difference, log_odds_chosen the
            # mean difference itself.
            "log_odds_ratio": wmean(torch.nn.functional.logsigmoid(margin)),
            "log_odds_chosen": wmean(margin),
            "num_pairs": gather(torch.tensor([float(len(weights))], device=nll.device)).sum(),
        }
        return {f"{prefix}{k}": v.item() for k, v in metrics.items()}

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        # Completions excluded because truncation left them no token, summed since the last log of that mode.
        if "loss" in logs:
            logs["num_masked_rows"] = float(self._num_masked_rows["train"])
            self._num_masked_rows["train"] = 0
        else:
            eval_loss = [k for k in logs if k.startswith("eval") and k.endswith("_loss")]
            if eval_loss:  # eval_loss, or eval_<name>_loss for a dict of eval datasets
                logs[eval_loss[0][: -len("loss")] + "num_masked_rows"] = float(self._num_masked_rows["eval"])
                self._num_masked_rows["eval"] = 0
        return super().log(logs, start_time)
