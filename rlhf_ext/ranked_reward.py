"""InstructGPT-style reward training on ranked lists: K completions per prompt, all C(K, 2) pairs in one element.

``RankedRewardTrainer`` is a thin subclass of ``trl.RewardTrainer``. Each batch element is one prompt with K >= 2
completions and their ranks (lower is better, equal ranks tie). Every completion of every prompt in the batch is
scored by one forward pass of the model (one model call per batch), and the loss of a prompt is the mean over its
ordered pairs (w, l) of ``-log sigmoid(r_w - r_l - margin)``; the batch loss is the mean over prompts
(``pair_weighting="prompt"``, Ouyang et al. 2022) or over all pairs (``pair_weighting="pair"``).

TRL preference rows (``chosen``/``rejected``, explicit or implicit prompt, text or messages) are read as K = 2, where
both weightings equal ``trl.RewardTrainer``'s loss and metrics. The processed datasets (``trainer.train_dataset``,
``trainer.eval_dataset``) keep TRL's columns for pairs (``chosen_ids``/``rejected_ids``, next to ``ranks=[0, 1]``)
and hold ``completions_ids``/``ranks`` for ranked lists.

With ``shared_prompt`` (the default), the tokens the K completions of a prompt share are encoded once: the K
completions are packed after them into one row (:mod:`rlhf_ext.shared_prompt`), with the same rewards, loss and
gradients as one row per completion.
"""

from __future__ import annotations

import json
import logging
import warnings
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from datasets import Dataset, IterableDataset
from transformers.data.data_collator import DataCollatorMixin
from transformers.modeling_outputs import SequenceClassifierOutput
from trl import RewardConfig, RewardTrainer
from trl.data_utils import get_dataset_column_names, is_conversational
from trl.trainer.utils import pad

from rlhf_ext.base_trainer import TrainerMixin
from rlhf_ext.checkpoints import read_checkpoint_state, write_checkpoint_state
from rlhf_ext.data.formats import pairwise_row_to_ranked
from rlhf_ext.data.ranking import ranked_pairs
from rlhf_ext.data.validation import is_integer, validate_ranked_dataset, validate_ranked_row
from rlhf_ext.nonfinite import check_finite
from rlhf_ext.reward_scoring import reward_input_ids
from rlhf_ext.shared_prompt import SharedPrompt, pack

logger = logging.getLogger(__name__)

PAIR_WEIGHTINGS = ("prompt", "pair")


@dataclass
class RankedRewardConfig(RewardConfig):
    r"""Configuration for [`RankedRewardTrainer`]: every [`trl.RewardConfig`] field, plus the ones below.

    `per_device_train_batch_size` counts prompts (ranked rows), not pairs: a batch of B prompts with K completions
    each runs B*K sequences through the model. `max_length` drops a whole row if any of its completions is longer.
    `center_rewards_coefficient` adds `coef * (r_w + r_l)**2` per pair (TRL's term), weighted like the loss.
    A per-row `margin` column is subtracted from every pair of that row, as TRL does for its pairs.
    """

    pair_weighting: str = field(
        default="prompt",
        metadata={
            "help": "How the pairwise losses of a batch are averaged. 'prompt' (InstructGPT): mean over each "
            "prompt's pairs, then mean over prompts, so every ranked prompt weighs the same whatever its K. "
            "'pair': mean over all pairs of the batch, so a prompt with K completions weighs C(K,2) times more. "
            "Both equal trl.RewardTrainer's loss on chosen/rejected data.",
            "choices": list(PAIR_WEIGHTINGS),
        },
    )
    max_completions: int | None = field(
        default=None,
        metadata={
            "help": "If set, reject (ValueError in the trainer's __init__) any row with more completions than this. "
            "Guards memory: a batch runs per_device_train_batch_size * K sequences at once."
        },
    )

    shared_prompt: bool = field(
        default=True,
        metadata={
            "help": "Encode the shared prompt of a ranked row once: its K completions are packed after it into one "
            "sequence with a block attention mask and restarted position ids, K(P + C) -> P + KC tokens, with the "
            "same rewards, loss and gradients. Used for batches where it saves work, on causal models with sdpa or "
            "eager attention; other models (encoders such as BERT/MiniLM, flash attention...) fall back with one "
            "logged warning saying why. False: every completion is scored in its own row with its prompt."
        },
    )

    def __post_init__(self):
        super().__post_init__()
        if self.pair_weighting not in PAIR_WEIGHTINGS:
            raise ValueError(f"pair_weighting must be one of {PAIR_WEIGHTINGS}, got {self.pair_weighting!r}.")
        if self.max_completions is not None and self.max_completions < 2:
            raise ValueError(f"max_completions must be at least 2, got {self.max_completions}.")


@dataclass
class DataCollatorForRanking(DataCollatorMixin):
    """Flattens the completions of all prompts into one right-padded batch and lists the comparison pairs.

    Each example has `completions_ids` (K token lists) and `ranks` (K ints), or TRL's pair `chosen_ids`/`rejected_ids`
    (K = 2, ranks [0, 1]), optionally `margin`. Returns `input_ids`/`attention_mask` of shape (sum K, L),
    `prompt_index` (sum K,) mapping each sequence to its prompt, `ranks` (sum K,), `pair_winner`/`pair_loser`/
    `pair_prompt` (P,) for the P ordered pairs (flat indices into the sequences) and `margin` (B,) when present. With
    `shared_prompt`, also the packed layout of `rlhf_ext.shared_prompt.pack` (one row per prompt) for batches where
    it costs less.
    """

    pad_token_id: int | None = None
    pad_to_multiple_of: int | None = None
    return_tensors: str = "pt"
    shared_prompt: bool = True

    def torch_call(self, examples: list[dict[str, Any]]) -> dict[str, Any]:
        if self.pad_token_id is None:
            raise ValueError("DataCollatorForRanking needs a pad_token_id.")
        sequences, ranks, prompt_index = [], [], []
        winners, losers, pair_prompt = [], [], []
        groups = []  # each row's token lists, for shared-prompt packing
        for b, example in enumerate(examples):
            offset = len(sequences)
            completions, row_ranks = _completions_and_ranks(example)
            groups.append(completions)
            sequences.extend(torch.tensor(ids, dtype=torch.long) for ids in completions)
            ranks.extend(int(r) for r in row_ranks)
            prompt_index.extend([b] * len(completions))
            for win, lose in ranked_pairs(row_ranks):
                winners.append(offset + win)
                losers.append(offset + lose)
                pair_prompt.append(b)
        mask = [torch.ones_like(s) for s in sequences]
        output = {
            "input_ids": pad(sequences, self.pad_token_id, "right", self.pad_to_multiple_of),
            "attention_mask": pad(mask, 0, "right", self.pad_to_multiple_of),
            "ranks": torch.tensor(ranks, dtype=torch.long),
            "prompt_index": torch.tensor(prompt_index, dtype=torch.long),
            "pair_winner": torch.tensor(winners, dtype=torch.long),
            "pair_loser": torch.tensor(losers, dtype=torch.long),
            "pair_prompt": torch.tensor(pair_prompt, dtype=torch.long),
        }
        if "margin" in examples[0]:
            output["margin"] = torch.tensor([float(e["margin"]) for e in examples], dtype=torch.float)
        if self.shared_prompt:
            width = output["input_ids"].shape[1]
            output.update(pack(groups, self.pad_token_id, width, pad_to_multiple_of=self.pad_to_multiple_of) or {})
        return output


_RANKING_KEYS = ("ranks", "prompt_index", "pair_winner", "pair_loser", "pair_prompt", "margin")
# Token columns of a processed row: ours for ranked lists, TRL's for pairs (and TRL's legacy names for pairs).
RANKED_IDS = "completions_ids"
PAIR_IDS = ("chosen_ids", "rejected_ids")
LEGACY_PAIR_IDS = ("chosen_input_ids", "rejected_input_ids")


def _completions_and_ranks(example: dict[str, Any]) -> tuple[list, list]:
    """The token lists of a processed row and their ranks: a ranked row's own, or (chosen, rejected) and [0, 1]."""
    if RANKED_IDS in example:
        return example[RANKED_IDS], example["ranks"]
    return [example[PAIR_IDS[0]], example[PAIR_IDS[1]]], [0, 1]


def kendall_tau_b(ranks: list[int], scores: list[float]) -> float:
    """Kendall's tau-b between the labeled order (rank 0 best) and the scores; 0 when either side is all tied."""
    concordant = discordant = tied_ranks = tied_scores = total = 0
    for i in range(len(ranks)):
        for j in range(i + 1, len(ranks)):
            total += 1
            a = (ranks[j] > ranks[i]) - (ranks[j] < ranks[i])  # +1 if i is ranked better
            s = (scores[i] > scores[j]) - (scores[i] < scores[j])  # +1 if i scored higher
            tied_ranks += a == 0
            tied_scores += s == 0
            concordant += a * s > 0
            discordant += a * s < 0
    denominator = ((total - tied_ranks) * (total - tied_scores)) ** 0.5
    return (concordant - discordant) / denominator if denominator > 0 else 0.0


class RankedRewardTrainer(TrainerMixin, RewardTrainer):
    """`trl.RewardTrainer` for ranked lists (InstructGPT): one forward per completion, all pairs of a prompt at once.

    Accepts ranked rows (`prompt`, `completions`, `ranks`) and TRL preference rows (`chosen`/`rejected`, read as
    K = 2), as text or conversations. Everything else (model id or instance, `peft_config`, eval, `push_to_hub`,
    `center_rewards_coefficient`) is the parent's. Bad rows raise `ValueError` in `__init__` naming the row.

    With `shared_prompt` (default) each prompt is encoded once per batch element, its K completions packed after it
    (`rlhf_ext.shared_prompt`); a model that cannot do it is told apart once, with one logged warning.

    Logged metrics (train and `eval_`): `accuracy` (fraction of labeled pairs with r_w > r_l), `margin`
    (mean r_w - r_l), `num_pairs`, `num_completions` (per batch), `min/mean/max_reward`, `kendall_tau` (tau-b per
    prompt, averaged), `top1_accuracy` (the top-scored completion carries the best rank) and `num_tokens`.
    """

    _tag_names = ["trl", "reward-trainer", "rlhf_ext", "ranked-reward"]
    _name = "Ranked Reward"
    # rlhf_ext's model card (TrainerMixin replaces TRL's create_model_card).
    _card_kind = "reward_model"
    _card_method = "reward modelling on ranked lists (InstructGPT: all C(K,2) pairs of a prompt in one batch element)"
    _card_citations = ("instructgpt", "trl")
    _card_curves = ("loss", "accuracy", "kendall_tau", "top1_accuracy")
    _card_hyperparameters = TrainerMixin._card_hyperparameters + (
        "pair_weighting",
        "max_length",
        "center_rewards_coefficient",
    )

    def __init__(
        self,
        model,
        args: RewardConfig | None = None,
        data_collator=None,
        train_dataset: Dataset | IterableDataset | None = None,
        eval_dataset=None,
        processing_class=None,
        compute_metrics=None,
        callbacks=None,
        optimizers=(None, None),
        optimizer_cls_and_kwargs=None,
        preprocess_logits_for_metrics=None,
        quantization_config=None,
        peft_config=None,
    ):
        if args is None:
            args = RankedRewardConfig(self.default_run_name(model, "RankedReward"))
        # Check the data before loading anything: bad rows must fail here, not steps into training. A stream's first
        # rows are checked here, the rest as they stream (an error then stops training).
        self._validate_datasets(
            lambda dataset, name, limit: self._validate(dataset, name, args, limit), train_dataset, eval_dataset
        )
        if data_collator is None:
            # The pad token id is only settled inside the parent's __init__; filled in below.
            data_collator = DataCollatorForRanking(pad_to_multiple_of=args.pad_to_multiple_of)
            own_collator = True
        else:
            own_collator = False
        super().__init__(
            model=model,
            args=args,
            data_collator=data_collator,
            train_dataset=train_dataset,
            eval_dataset=eval_dataset,
            processing_class=processing_class,
            compute_metrics=compute_metrics,
            callbacks=callbacks,
            optimizers=optimizers,
            optimizer_cls_and_kwargs=optimizer_cls_and_kwargs,
            preprocess_logits_for_metrics=preprocess_logits_for_metrics,
            quantization_config=quantization_config,
            peft_config=peft_config,
        )
        if own_collator:
            self.data_collator.pad_token_id = self.processing_class.pad_token_id
            self.data_collator.shared_prompt = getattr(args, "shared_prompt", True)
        self._shared_prompt = SharedPrompt(getattr(args, "shared_prompt", True), kind="reward")

    # ----------------------------------------------------------------------------------------------------------
    # Data
    # ----------------------------------------------------------------------------------------------------------

    @staticmethod
    def _validate(dataset, name: str, args, limit: int | None) -> None:
        if not isinstance(dataset, (Dataset, IterableDataset)):
            raise ValueError(
                f"{name} must be a datasets.Dataset or IterableDataset, got {type(dataset).__name__} "
                "(Dataset.from_list(rows) makes one from a list of dicts)."
            )
        columns = get_dataset_column_names(dataset)
        tokenized = _tokenized_columns(columns)
        if tokenized is not None:
            rows = dataset if limit is None else dataset.take(limit)
            _validate_tokenized(rows, name, tokenized)
        else:
            validate_ranked_dataset(dataset, name=name, limit=limit)
        max_completions = getattr(args, "max_completions", None)
        column = next((c for c in ("completions", "completions_ids") if c in columns), None)
        if max_completions is not None and column is not None:
            rows = dataset if limit is None else dataset.take(limit)
            for index, row in enumerate(rows):
                if len(row[column]) > max_completions:
                    raise ValueError(
                        f"{name} row {index}: {len(row[column])} completions, more than "
                        f"max_completions={max_completions}."
                    )

    def _prepare_dataset(self, dataset, processing_class, args, dataset_name):
        """Tokenize (unless already tokenized) and drop rows longer than ``max_length``; idempotent.

        Pairs come out with TRL's columns (``chosen_ids``/``rejected_ids``, text columns kept) plus ``ranks=[0, 1]``;
        ranked rows as ``completions_ids``/``ranks``. TRL's legacy ``chosen_input_ids``/``rejected_input_ids`` are
        renamed to ``chosen_ids``/``rejected_ids`` with a ``FutureWarning``, as ``trl.RewardTrainer`` does.
        """
        columns = get_dataset_column_names(dataset)
        is_iterable = isinstance(dataset, IterableDataset)
        map_kwargs = {} if is_iterable else {"num_proc": args.dataset_num_proc}
        if _tokenized_columns(columns) == LEGACY_PAIR_IDS:
            warnings.warn(
                "trl.RewardTrainer deprecates the pre-tokenized pair columns `chosen_input_ids`/`rejected_input_ids` "
                "(they will not be supported in v1); rename them to `chosen_ids`/`rejected_ids`.",
                FutureWarning,
                stacklevel=2,
            )
            dataset = dataset.rename_columns(dict(zip(LEGACY_PAIR_IDS, PAIR_IDS)))
            columns = get_dataset_column_names(dataset)
        tokenized = _tokenized_columns(columns)
        if tokenized == PAIR_IDS and "ranks" not in columns:
            dataset = dataset.map(lambda _: {"ranks": [0, 1]}, **map_kwargs)
        elif tokenized is None:
            if is_iterable:

                def check(example, index):
                    validate_ranked_row(example, index, dataset_name)
                    return {}

                dataset = dataset.map(check, with_indices=True)
            dataset = self._tokenize(dataset, processing_class, dataset_name, map_kwargs)

        if args.max_length is not None:
            max_length = args.max_length

            def short_enough(example):
                return all(len(ids) <= max_length for ids in _completions_and_ranks(example)[0])

            if is_iterable:
                dataset = dataset.filter(short_enough)
                logger.warning(
                    "%s is an IterableDataset: rows with a completion longer than max_length=%d are dropped as they "
                    "stream; their count is not known in advance.",
                    dataset_name,
                    max_length,
                )
            else:
                before = len(dataset)
                dataset = dataset.filter(
                    short_enough, desc=f"Filtering {dataset_name} >{max_length} tokens", **map_kwargs
                )
                dropped = before - len(dataset)
                if dropped:
                    logger.warning(
                        "%s: dropped %d of %d rows with a completion longer than max_length=%d tokens "
                        "(prompt + completion + EOS).",
                        dataset_name,
                        dropped,
                        before,
                        max_length,
                    )
                if len(dataset) == 0:
                    raise ValueError(f"{dataset_name}: every row is longer than max_length={max_length}.")
        return dataset

    @staticmethod
    def _tokenize(dataset, processing_class, dataset_name, map_kwargs):
        """Tokenize prompt + completion, for each completion of a ranked row or both sides of a pair.

        Pairs keep their columns and gain ``chosen_ids``/``rejected_ids``/``ranks``, as ``trl.RewardTrainer`` keeps its
        input columns; ranked rows trade ``prompt``/``completions`` for ``completions_ids``.
        """
        pairs = "completions" not in get_dataset_column_names(dataset)
        first = next(iter(dataset))
        first = pairwise_row_to_ranked(first) if pairs else first
        conversational = is_conversational({"prompt": first["prompt"]}) or is_conversational(
            {"completion": first["completions"][0]}
        )

        def tokenize(example):
            row = pairwise_row_to_ranked(example) if pairs else example
            kwargs = {}
            if conversational:
                tools = example.get("tools")
                tools = json.loads(tools) if isinstance(tools, str) else tools
                kwargs = {"tools": tools, **(example.get("chat_template_kwargs") or {})}
            # The one reward-model input format, shared with PPO and evaluation (text rows end with EOS).
            ids = [reward_input_ids(processing_class, row["prompt"], c, **kwargs) for c in row["completions"]]
            if pairs:
                return {PAIR_IDS[0]: ids[0], PAIR_IDS[1]: ids[1], "ranks": [0, 1]}
            return {RANKED_IDS: ids}

        if not isinstance(dataset, IterableDataset):
            map_kwargs = {**map_kwargs, "desc": f"Tokenizing {dataset_name} dataset"}
        drop = [] if pairs else ["prompt", "completions"]
        return dataset.map(tokenize, remove_columns=drop, **map_kwargs)

    def _set_signature_columns_if_needed(self):
        if self._signature_columns is None:
            self._signature_columns = [RANKED_IDS, *PAIR_IDS, "ranks", "margin"]

    def evaluate(self, eval_dataset=None, ignore_keys=None, metric_key_prefix="eval"):
        if eval_dataset is not None and not isinstance(eval_dataset, str):
            self._validate_datasets(
                lambda dataset, name, limit: self._validate(dataset, name, self.args, limit), None, eval_dataset
            )
        return super().evaluate(
            eval_dataset=eval_dataset, ignore_keys=ignore_keys, metric_key_prefix=metric_key_prefix
        )

    # ----------------------------------------------------------------------------------------------------------
    # Loss and metrics
    # ----------------------------------------------------------------------------------------------------------

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        mode = "train" if self.model.training else "eval"
        ranking = {k: inputs.pop(k) for k in _RANKING_KEYS if k in inputs}
        # One forward over every completion of every prompt: packed (each prompt once) or one row per completion.
        shared = self._shared_prompt.take(model, inputs)
        rewards = self._shared_prompt.rewards(model, inputs["input_ids"], shared) if shared else None
        if rewards is None:
            inputs["use_cache"] = False
            outputs = model(**inputs)
            rewards = outputs.logits.squeeze(-1).float()
        else:
            outputs = SequenceClassifierOutput(logits=rewards[:, None])
            rewards = rewards.float()

        winner, loser, pair_prompt = ranking["pair_winner"], ranking["pair_loser"], ranking["pair_prompt"]
        num_prompts = int(ranking["prompt_index"].max().item()) + 1
        diff = rewards[winner] - rewards[loser]
        logits = diff - ranking["margin"][pair_prompt] if "margin" in ranking else diff
        pair_losses = -F.logsigmoid(logits)

        weights = self._pair_weights(pair_prompt, num_prompts, num_items_in_batch if mode == "train" else None)
        loss = (pair_losses * weights).sum()
        terms = {"pairwise": loss}
        if self.args.center_rewards_coefficient is not None:
            centered = (rewards[winner] + rewards[loser]) ** 2
            terms["centering"] = (centered * weights).sum()
            loss = loss + self.args.center_rewards_coefficient * terms["centering"]
        if mode == "train":
            check_finite(self, terms)

        if mode == "train":
            num_tokens = self.accelerator.gather_for_metrics(inputs["attention_mask"].sum()).sum().item()
            self._total_train_tokens += num_tokens // self._tp_size
        self._metrics[mode]["num_tokens"] = [self._total_train_tokens]
        with torch.no_grad():
            self._log_ranking_metrics(mode, rewards.detach(), diff.detach(), ranking, num_prompts)

        return (loss, outputs) if return_outputs else loss

    def _get_num_items_in_batch(self, batch_samples: list, device: torch.device):
        """With ``pair_weighting="pair"``: the pairs of the whole optimizer step, i.e. of every gradient-accumulation
        micro-batch on every process (the parent counts label tokens, which ranked batches do not have)."""
        if getattr(self.args, "pair_weighting", "prompt") != "pair" or not batch_samples:
            return super()._get_num_items_in_batch(batch_samples, device)
        if not all(isinstance(batch, dict) and "pair_winner" in batch for batch in batch_samples):
            return super()._get_num_items_in_batch(batch_samples, device)
        count = torch.tensor([float(sum(batch["pair_winner"].numel() for batch in batch_samples))], device=device)
        if self.accelerator.num_processes > 1:
            count = self.accelerator.gather(count)
        return count.sum()

    def _pair_weights(self, pair_prompt: torch.Tensor, num_prompts: int, num_items_in_batch=None) -> torch.Tensor:
        if getattr(self.args, "pair_weighting", "prompt") == "pair":
            num_pairs = pair_prompt.numel()
            world = self.accelerator.num_processes
            if num_items_in_batch is not None:
                # Training: every pair of the optimizer step (all micro-batches, all processes) weighs the same. The
                # Trainer divides the loss by the accumulation steps and DDP/DeepSpeed average over processes: undo
                # both, so micro-batches or processes holding more pairs (larger K) contribute proportionally more.
                num_pairs = float(num_items_in_batch) / (
                    world * getattr(self, "current_gradient_accumulation_steps", 1)
                )
            elif world > 1:
                # DDP/DeepSpeed average the processes' gradients, and K (so the pair count) may differ between
                # processes: weigh each pair 1 / (all processes' pairs), times the world size that averaging divides
                # by, so the step equals the mean over every pair of the global batch, as on one process.
                count = torch.tensor([float(num_pairs)], device=pair_prompt.device)
                num_pairs = self.accelerator.gather(count).sum().item() / world
            return torch.full(pair_prompt.shape, 1.0 / num_pairs, device=pair_prompt.device)
        pairs_per_prompt = torch.bincount(pair_prompt, minlength=num_prompts).float()
        return 1.0 / (pairs_per_prompt[pair_prompt] * num_prompts)

    # ----------------------------------------------------------------------------------------------------------
    # Checkpoints
    # ----------------------------------------------------------------------------------------------------------

    # The running token count behind the logged `num_tokens` lives in a trainer attribute (`_total_train_tokens`, as in
    # trl.RewardTrainer) that the Trainer's checkpoint does not hold: it goes into each checkpoint so that a resumed run
    # logs the counts of an uninterrupted one.
    def _save_checkpoint(self, model, trial):
        super()._save_checkpoint(model, trial)
        write_checkpoint_state(self, trial, "ranked_reward", {"total_train_tokens": int(self._total_train_tokens)})

    def _load_optimizer_and_scheduler(self, checkpoint):  # runs only when resuming
        super()._load_optimizer_and_scheduler(checkpoint)
        state = read_checkpoint_state(checkpoint, "ranked_reward")
        if state is not None:
            self._total_train_tokens = int(state["total_train_tokens"])

    def _log_ranking_metrics(self, mode, rewards, diff, ranking, num_prompts):
        metrics, gather = self._metrics[mode], self.accelerator.gather_for_metrics
        # K, hence the number of completions and pairs, may differ between processes: gather fixed-size per-process
        # sums and counts (never the variable-length reward or pair tensors), and divide the totals.
        local = torch.stack(
            [
                rewards.min(),
                rewards.max(),
                rewards.sum(),
                torch.tensor(float(rewards.numel()), device=rewards.device),
                (diff > 0).float().sum(),
                diff.sum(),
                torch.tensor(float(diff.numel()), device=diff.device),
            ]
        ).float()
        every = self.accelerator.gather(local.unsqueeze(0))  # (num_processes, 7)
        reward_sum, num_completions, correct, diff_sum, num_pairs = every[:, 2:].sum(dim=0).tolist()
        metrics["min_reward"].append(every[:, 0].min().item())
        metrics["mean_reward"].append(reward_sum / num_completions)
        metrics["max_reward"].append(every[:, 1].max().item())
        metrics["accuracy"].append(correct / num_pairs)
        metrics["margin"].append(diff_sum / num_pairs)
        metrics["num_pairs"].append(num_pairs)
        metrics["num_completions"].append(num_completions)
        # Per-prompt ranking quality, on the CPU: K <= ~10, so the O(K^2) loop is negligible.
        groups = defaultdict(list)
        for b, r, s in zip(ranking["prompt_index"].tolist(), ranking["ranks"].tolist(), rewards.tolist()):
            groups[b].append((r, s))
        taus, top1 = [], []
        for items in groups.values():
            ranks, scores = [r for r, _ in items], [s for _, s in items]
            taus.append(kendall_tau_b(ranks, scores))
            top1.append(float(ranks[max(range(len(scores)), key=scores.__getitem__)] == min(ranks)))
        device = rewards.device
        metrics["kendall_tau"].append(gather(torch.tensor(sum(taus) / len(taus), device=device)).mean().item())
        metrics["top1_accuracy"].append(gather(torch.tensor(sum(top1) / len(top1), device=device)).mean().item())


def _tokenized_columns(columns) -> str | tuple[str, str] | None:
    """Which token columns a dataset already has: ``completions_ids``, a pair of TRL's, or None (text to tokenize)."""
    if RANKED_IDS in columns:
        return RANKED_IDS
    for pair in (PAIR_IDS, LEGACY_PAIR_IDS):
        if all(c in columns for c in pair):
            return pair
    return None


def _validate_tokenized(rows, name: str, columns: str | tuple[str, str]) -> None:
    """Checks of already tokenized rows (`completions_ids`/`ranks`, or a pair of TRL's token columns)."""
    for index, row in enumerate(rows):
        if columns != RANKED_IDS:
            empty = [c for c in columns if not row[c]]
            if empty:
                raise ValueError(f"{name} row {index}: empty {' and '.join(repr(c) for c in empty)}.")
            continue
        if "ranks" not in row:
            raise ValueError(f"{name} row {index}: missing column(s) ['ranks'] next to 'completions_ids'.")
        ids, ranks = row["completions_ids"], row["ranks"]
        where = f"{name} row {index}"
        if len(ids) < 2:
            raise ValueError(f"{where}: 'completions_ids' has {len(ids)} entry(ies); a ranked row needs at least 2.")
        if any(len(x) == 0 for x in ids):
            raise ValueError(f"{where}: a completion is empty.")
        if len(ranks) != len(ids):
            raise ValueError(f"{where}: 'ranks' has {len(ranks)} entries but 'completions_ids' has {len(ids)}.")
        if not all(is_integer(r) for r in ranks):
            raise ValueError(f"{where}: ranks must be integers (not bool or float), got {ranks!r}.")
        if len(set(ranks)) < 2:
            raise ValueError(f"{where}: all {len(ranks)} completions are tied (ranks {list(ranks)}).")
