"""The one small base of rlhf_ext's trainers: what each of them adds to its TRL parent in the same way.

Put :class:`TrainerMixin` first in the bases of a TRL trainer subclass, e.g.
``class PPOTrainer(TrainerMixin, KLControlAndPtxMixin, trl.GRPOTrainer)``. It provides:

- :meth:`~TrainerMixin.default_run_name`: ``<model name>-<method>``, the output folder when no config is passed;
- :meth:`~TrainerMixin._validate_datasets`: runs a trainer's row checks on ``train_dataset`` and ``eval_dataset``
  (one dataset or a dict of them, named ``eval_dataset['key']`` in errors) before anything is loaded; a dataset
  without a length (``IterableDataset``) is checked on its first :attr:`~TrainerMixin.streaming_check_rows` rows;
- ``training_args.bin`` without tokens: the Trainer pickles its arguments into every checkpoint and output folder
  and uploads them, so every ``*_token`` field is pickled as None (:func:`rlhf_ext.hub.keep_tokens_out_of_pickles`);
- a stop before any optimizer step whose gradient is NaN or infinite (:func:`rlhf_ext.nonfinite.check_finite_gradients`
  on the gradient norm the Trainer computes anyway), so an overflowing backward pass never writes NaN into the weights;
- ``push_to_hub`` retried on server errors and dropped connections, failing with :class:`rlhf_ext.hub.HubPushError`
  that names the intact output folder;
- rlhf_ext's model card: ``create_model_card`` (which ``save_model`` and ``push_to_hub`` call) gathers what the
  trainer knows (method, citations, hyperparameters, base model, logged curves) and hands it to ``rlhf_ext.cards``,
  which renders the template and draws the plots. TRL resolves its own card template inside its package, so a card of
  our own means overriding this method.

Subclasses describe their card with class attributes: ``_card_kind`` (``"policy"`` or ``"reward_model"``),
``_card_method``, ``_card_citations`` (keys of ``rlhf_ext.cards.CITATIONS`` or free text), ``_card_curves`` (logged
keys to plot), ``_card_reward_kl`` (reward key, KL key) and ``_card_hyperparameters`` (``args`` fields to list).
Callers add what only they know (evaluation results, the data's provenance) through ``trainer.card_info``.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from .cards import CardInfo, draw_training_plots, render_model_card
from .data.validation import named_datasets
from .hub import keep_tokens_out_of_pickles, retry_push
from .nonfinite import check_finite_gradients

__all__ = ["TrainerMixin", "card_hyperparameters"]


def card_hyperparameters(args, names: tuple[str, ...]) -> dict:
    """The ``args`` fields ``names`` for a model card, less the one of ``num_train_epochs`` / ``max_steps`` that did not
    decide the run's length (a positive ``max_steps`` overrides the epochs; ``-1`` means "use the epochs")."""
    hyper = {name: getattr(args, name, None) for name in names}
    max_steps = getattr(args, "max_steps", None)
    if max_steps is not None:
        hyper.pop("num_train_epochs" if max_steps > 0 else "max_steps", None)
    return hyper


class TrainerMixin:
    """Shared behaviour of rlhf_ext's trainers (see the module docstring); first in the bases."""

    _card_kind = "policy"
    _card_method = ""
    _card_citations: tuple[str, ...] = ("trl",)
    _card_curves: tuple[str, ...] = ("loss",)
    _card_reward_kl: tuple[str, str] | None = None
    _card_hyperparameters: tuple[str, ...] = (
        "learning_rate",
        "num_train_epochs",
        "max_steps",
        "per_device_train_batch_size",
        "gradient_accumulation_steps",
        "lr_scheduler_type",
        "seed",
    )
    #: Rows of a dataset without a length (``IterableDataset``) checked when the trainer is built.
    streaming_check_rows = 100

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        keep_tokens_out_of_pickles(type(self.args))  # training_args.bin is pickled into every save and push

    # ------------------------------------------------------------------------------------------------------------
    # Before the parent is built: the run name and the data
    # ------------------------------------------------------------------------------------------------------------

    @staticmethod
    def default_run_name(model, method: str) -> str:
        """``<last part of the model's name or path>-<method>``, e.g. ``SmolLM2-135M-PPO``; ``model-<method>`` when the
        model has no name (one built with ``from_config``)."""
        name = model if isinstance(model, str) else getattr(getattr(model, "config", None), "_name_or_path", "")
        return f"{str(name or '').rstrip('/').split('/')[-1] or 'model'}-{method}"

    @classmethod
    def _validate_datasets(cls, check: Callable, train_dataset=None, eval_dataset=None) -> None:
        """Call ``check(dataset, name, limit)`` on ``train_dataset`` and on each eval dataset (None is skipped).

        ``limit`` is None for a dataset with a length and :attr:`streaming_check_rows` for one without.
        """
        for name, dataset in named_datasets(train_dataset, eval_dataset):
            check(dataset, name, cls._rows_to_check(dataset))

    @classmethod
    def _rows_to_check(cls, dataset) -> int | None:
        """None (every row) for a dataset with a length, :attr:`streaming_check_rows` for a stream."""
        return None if hasattr(dataset, "__len__") else cls.streaming_check_rows

    def _get_grad_norm(self, model, grad_norm=None):
        grad_norm = super()._get_grad_norm(model, grad_norm=grad_norm)
        check_finite_gradients(self, grad_norm)  # the Trainer calls this right before optimizer.step()
        return grad_norm

    # ------------------------------------------------------------------------------------------------------------
    # Hub and card
    # ------------------------------------------------------------------------------------------------------------

    def push_to_hub(self, *args, **kwargs):
        """``Trainer.push_to_hub`` (save, card, upload of ``output_dir``), retried on server errors and dropped
        connections, and failing with :class:`rlhf_ext.hub.HubPushError` that names the intact output folder."""
        parent = super().push_to_hub
        repo_id = self.args.hub_model_id or Path(self.args.output_dir).name
        return retry_push(lambda: parent(*args, **kwargs), folder=self.args.output_dir, repo_id=repo_id)

    @property
    def card_info(self) -> CardInfo:
        """What the card says beyond the trainer's own facts; edit it before ``save_model`` / ``push_to_hub``."""
        if getattr(self, "_card_info", None) is None:
            self._card_info = CardInfo(
                kind=self._card_kind,
                method=self._card_method,
                citations=list(self._card_citations),
            )
        return self._card_info

    def create_model_card(self, model_name: str | None = None, dataset_name: str | None = None, tags=None):
        """Write ``<output_dir>/README.md`` and its plots (``<output_dir>/plots/``); main process only."""
        if not self.is_world_process_zero():
            return
        info = self.card_info
        if dataset_name and not info.dataset_name:
            info.dataset_name = dataset_name
        if tags:
            info.tags = sorted(set(info.tags) | ({tags} if isinstance(tags, str) else set(tags)))
        hyper = card_hyperparameters(self.args, self._card_hyperparameters)
        hyper.update(info.hyperparameters)
        info.hyperparameters = hyper
        output_dir = self.args.output_dir
        config = getattr(getattr(self, "model", None), "config", None)
        base_model = info.base_model or getattr(config, "_name_or_path", None) or None
        hub_id = self.args.hub_model_id
        name = model_name or (hub_id.split("/")[-1] if hub_id else Path(output_dir).name)
        history = list(getattr(self.state, "log_history", []) or [])
        plots = draw_training_plots(history, output_dir, self._card_curves, self._card_reward_kl)
        card = render_model_card(
            info,
            model_name=name,
            base_model=base_model,
            repo_id=hub_id or name,
            plots=plots + list(info.extra_plots),
        )
        card.save(os.path.join(output_dir, "README.md"))
