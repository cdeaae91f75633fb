"""Ziegler et al.'s adaptive KL coefficient and InstructGPT's pretraining mixture (PPO-ptx) for on-policy trainers.

Both ideas are shared by ``rlhf_ext.PPOTrainer`` (on ``trl.GRPOTrainer``) and ``rlhf_ext.RLOOTrainer`` (on
``trl.RLOOTrainer``) through :class:`KLControlAndPtxMixin`:

- the KL coefficient beta is a controller from ``rlhf_ext.kl_controllers``: fixed, or adaptive when the config sets
  ``kl_target`` (``e = clip(KL / target - 1, -0.2, 0.2)``, ``beta *= 1 + e * n / horizon``); the trainer feeds it the
  measured KL after each batch;
- PPO-ptx (Ouyang et al. 2022, eq. 2): each optimizer step adds ``ptx_coef`` times the language-model loss of one
  batch of ``ptx_dataset`` (a ``text`` column), drawn once per optimizer step and split across its
  gradient-accumulation micro-steps, so every process sees its own rows of one global batch;
- both states (and, for a checkpoint inside a generation cycle, the buffered rollouts) go into every checkpoint
  through ``rlhf_ext.checkpoints``, so a resumed run continues exactly.
"""

from __future__ import annotations

import warnings

import torch
import torch.nn.functional as F

from .checkpoints import read_checkpoint_state, read_process_state, write_checkpoint_state, write_process_state
from .kl_controllers import AdaptiveKLController, FixedKLController
from .nonfinite import check_finite

__all__ = ["KLControlAndPtxMixin", "validate_ptx_dataset"]

# Rollouts buffered for the rest of a generation cycle, one file per process: rollout_buffer_<rank>.pt.
ROLLOUT_BUFFER = "rollout_buffer"


def validate_ptx_dataset(args, ptx_dataset) -> None:
    """Raise ``ValueError`` before training if ``args.ptx_coef > 0`` and ``ptx_dataset`` cannot feed the mixture."""
    if args.ptx_coef > 0:
        if ptx_dataset is None:
            raise ValueError("`ptx_coef` > 0 needs a `ptx_dataset` (a dataset with a `text` column).")
        ptx_columns = getattr(ptx_dataset, "column_names", None)
        if ptx_columns is None or "text" not in ptx_columns:
            raise ValueError(f"`ptx_dataset` must have a `text` column; it has {ptx_columns}.")
        if len(ptx_dataset) == 0:
            raise ValueError("`ptx_dataset` is empty.")


class KLControlAndPtxMixin:
    """Adaptive/fixed KL coefficient and InstructGPT's pretraining mixture for TRL's on-policy trainers.

    Mixed in before ``trl.GRPOTrainer`` / ``trl.RLOOTrainer`` (after :class:`~rlhf_ext.base_trainer.TrainerMixin`).
    Provides ``kl_ctl``, ``ptx_position`` and one pretraining batch per optimizer step added in ``training_step``; both
    states are checkpointed (sections ``"kl_controller"`` and ``"ptx"`` of ``rlhf_ext_state.json``), and a checkpoint
    inside a generation cycle also holds the buffered rollouts (``rollout_buffer_<rank>.pt``), so resuming replays them.
    The subclass calls :func:`validate_ptx_dataset` before building the parent and ``_init_kl_and_ptx`` after.
    """

    def _init_kl_and_ptx(self, kl_coef, args, ptx_dataset):
        if args.kl_target is not None:
            self.kl_ctl = AdaptiveKLController(kl_coef, args.kl_target, args.kl_horizon)
        else:
            self.kl_ctl = FixedKLController(kl_coef)
        self.ptx_position = 0
        self._ptx_batch = None
        self._ptx_batch_step = None
        self._ptx_micro = 0
        self._ptx_nll_sum = 0.0
        self._ptx_rows = None
        if args.ptx_coef > 0:
            if getattr(self, "is_deepspeed_enabled", False):
                raise ValueError(
                    "`ptx_coef` > 0 is not supported with DeepSpeed yet: DeepSpeed counts backward calls for its own "
                    "gradient accumulation, and the pretraining loss adds one per micro-step."
                )
            self._ptx_rows = self._tokenize_ptx(ptx_dataset)
        elif ptx_dataset is not None:
            warnings.warn("ptx_dataset is ignored because ptx_coef is 0.", stacklevel=3)

    def _tokenize_ptx(self, dataset) -> list[list[int]]:
        tok = self._tokenizer
        rows = []
        for text in dataset["text"]:
            ids = tok(text, add_special_tokens=False, truncation=True, max_length=self.args.ptx_max_length)[
                "input_ids"
            ]
            if len(ids) >= 2:  # a one-token text has no next-token target
                rows.append(ids)
        if not rows:
            raise ValueError("`ptx_dataset` has no text of two tokens or more.")
        return rows

    @property
    def ptx_batch_size(self) -> int:
        if self.args.ptx_batch_size is not None:
            return self.args.ptx_batch_size
        return self.args.per_device_train_batch_size * self.args.gradient_accumulation_steps

    def _ptx_indices(self, position: int) -> list[int]:
        """Row indices of pretraining batch number ``position`` for this process."""
        n = len(self._ptx_rows)
        world, rank = self.accelerator.num_processes, self.accelerator.process_index
        per_global = self.ptx_batch_size * world
        start = position * per_global + rank * self.ptx_batch_size
        indices = []
        for k in range(start, start + self.ptx_batch_size):
            epoch, offset = divmod(k, n)
            generator = torch.Generator().manual_seed(self.args.seed + epoch)
            indices.append(int(torch.randperm(n, generator=generator)[offset]))
        return indices

    def draw_ptx_batch(self) -> dict[str, torch.Tensor]:
        """The next pretraining batch (advances ``ptx_position``): right-padded ``input_ids`` and ``attention_mask``."""
        rows = [self._ptx_rows[i] for i in self._ptx_indices(self.ptx_position)]
        self.ptx_position += 1
        width = max(len(r) for r in rows)
        pad = self._tokenizer.pad_token_id
        input_ids = torch.full((len(rows), width), pad, dtype=torch.long)
        attention_mask = torch.zeros((len(rows), width), dtype=torch.long)
        for i, row in enumerate(rows):
            input_ids[i, : len(row)] = torch.tensor(row)
            attention_mask[i, : len(row)] = 1
        device = self.accelerator.device
        return {"input_ids": input_ids.to(device), "attention_mask": attention_mask.to(device)}

    def ptx_nll_sum(self, model, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Summed next-token NLL of ``batch`` from the plain forward (untempered logits, not the sampling head)."""
        with self.accelerator.autocast():
            logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        logits = logits[:, :-1].float()
        targets = batch["input_ids"][:, 1:]
        target_mask = batch["attention_mask"][:, 1:].to(logits.dtype)
        nll = F.cross_entropy(logits.reshape(-1, logits.size(-1)), targets.reshape(-1), reduction="none")
        return (nll.view_as(targets) * target_mask).sum()

    def _ptx_micro_step(self, model) -> torch.Tensor:
        """Add this micro-step's share of ``ptx_coef * LM loss`` of the current optimizer step's batch (backward)."""
        n_micro = max(1, int(self.current_gradient_accumulation_steps))
        if self._ptx_batch is None or self._ptx_batch_step != self.state.global_step:
            self._ptx_batch = self.draw_ptx_batch()
            self._ptx_batch_step = self.state.global_step
            self._ptx_micro = 0
            self._ptx_nll_sum = 0.0
        batch = self._ptx_batch
        chunks = torch.arange(batch["input_ids"].size(0)).tensor_split(n_micro)
        rows = chunks[min(self._ptx_micro, n_micro - 1)] if self._ptx_micro < n_micro else chunks[0][:0]
        self._ptx_micro += 1
        if len(rows) == 0:
            return torch.zeros((), device=self.accelerator.device)
        # The whole batch's token count normalises every chunk, so the chunks sum to exactly the batch's mean NLL.
        n_tokens = batch["attention_mask"][:, 1:].sum().clamp(min=1)
        chunk = {k: v[rows] for k, v in batch.items()}
        nll_sum = self.ptx_nll_sum(model, chunk)
        check_finite(self, {"ptx": nll_sum})
        loss = self.args.ptx_coef * nll_sum / n_tokens
        self.accelerator.backward(loss)
        self._ptx_nll_sum += float(nll_sum.detach() / n_tokens)
        if self._ptx_micro == n_micro:
            value = torch.tensor(self._ptx_nll_sum, device=self.accelerator.device)
            self._metrics["train"]["loss/ptx"].append(self.accelerator.gather(value).mean().item())
        return loss.detach()

    def training_step(self, model, inputs, num_items_in_batch=None):
        ptx_loss = None
        if self._ptx_active():  # training_step only runs in training
            # The pretraining forward/backward runs first and never synchronises: its gradient accumulates locally and
            # is all-reduced together with the RL loss's by that micro-step's backward (DDP allows one synchronising
            # backward per forward; a second backward on the sync step would mark parameters ready twice).
            model.train()  # as Trainer.training_step does; the first call can come before it
            with self.accelerator.no_sync(model):
                ptx_loss = self._ptx_micro_step(model)
        loss = super().training_step(model, inputs, num_items_in_batch)
        if ptx_loss is not None:
            loss = loss + ptx_loss.to(loss.device)
        return loss

    # Checkpointed state: the KL controller, the pretraining-data position and, inside a generation cycle, the rollouts

    def _ptx_active(self) -> bool:
        """Whether this optimizer step adds a pretraining batch (PPO skips it while only its critic trains)."""
        return self._ptx_rows is not None

    def _save_checkpoint(self, model, trial):
        super()._save_checkpoint(model, trial)
        write_checkpoint_state(self, trial, "kl_controller", self.kl_ctl.state_dict())
        write_checkpoint_state(self, trial, "ptx", {"position": self.ptx_position})
        # GRPO/RLOO sample one generation batch every `steps_per_generation * num_iterations` micro-steps and replay it
        # from `_buffered_inputs` in between; the Trainer's checkpoint holds neither that buffer nor the micro-step
        # counter `_step`. A checkpoint inside such a cycle keeps both, so that a resumed run replays the buffered
        # rollouts and generates on the same micro-steps as an uninterrupted run (sampling afresh would move the KL
        # controller once more and shift every later generation). Each process buffers its own rows and saves them.
        generate_every = self.args.steps_per_generation * self.num_iterations
        if self._buffered_inputs is not None and self._step % generate_every != 0:
            write_process_state(
                self, trial, ROLLOUT_BUFFER, {"step": self._step, "buffered_inputs": self._buffered_inputs}
            )

    def _load_optimizer_and_scheduler(self, checkpoint):  # runs only when resuming
        super()._load_optimizer_and_scheduler(checkpoint)
        kl_state = read_checkpoint_state(checkpoint, "kl_controller")
        if kl_state is not None:
            self.kl_ctl.load_state_dict(kl_state)
        ptx_state = read_checkpoint_state(checkpoint, "ptx")
        if ptx_state is not None:
            self.ptx_position = int(ptx_state["position"])
            self._ptx_batch = None
        saved = read_process_state(self, checkpoint, ROLLOUT_BUFFER)
        if saved is not None:  # the checkpoint fell inside a generation cycle: replay its rollouts
            self._step = int(saved["step"])
            self._buffered_inputs = saved["buffered_inputs"]
