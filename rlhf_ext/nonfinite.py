"""Stop training at the first non-finite loss term or gradient, naming the step and the term.

One NaN or inf in a loss turns every weight into NaN at the next optimizer step, and every checkpoint written after
it is garbage. Transformers' Trainer only filters such values out of its logs (``logging_nan_inf_filter``) and keeps
training. rlhf_ext's trainers call :func:`check_finite` on the terms of each training micro-step *before* the
backward pass and the optimizer step, so:

- the error names the optimizer step (1-based, as the progress bar counts) and the term(s) (``policy``, ``value``,
  ``ptx``, ``odds_ratio``, ``sft``, ``pairwise``, ...);
- the weights in memory are still those of the last good step: the optimizer never stepped on the bad value;
- no checkpoint is written after the bad step, and every checkpoint already in ``output_dir`` is left as it is (the
  message names the newest, to resume from after fixing the cause).

Under DDP every process learns of a non-finite term on any process (one all-reduce of a few flags per micro-step),
so all processes stop together instead of the healthy ones waiting forever in the next collective.

A finite loss can still have a non-finite gradient: its backward pass overflows (fp16 weights with a large learning
rate do this) and the optimizer would write NaN into every weight. :func:`check_finite_gradients` looks at the
gradient norm the Trainer computes before each optimizer step (``rlhf_ext.base_trainer.TrainerMixin`` calls it for
every trainer) and stops there, with the last good weights still in memory. Gradients are synchronised across
processes by then, so every process sees the same norm and all stop together.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch

from .checkpoints import last_checkpoint

__all__ = ["NonFiniteLossError", "check_finite", "check_finite_gradients"]


class NonFiniteLossError(FloatingPointError):
    """A loss term or the gradient is NaN or infinite; training stopped before the optimizer step that would have
    used it."""


def _stopped(trainer, what: str) -> NonFiniteLossError:
    step = trainer.state.global_step + 1
    last = last_checkpoint(trainer.args.output_dir)
    kept = f"the last good checkpoint, {last}, is kept" if last else "no checkpoint had been written yet"
    return NonFiniteLossError(
        f"Non-finite {what.format(step=step)}; training stopped before that step's update, so the model in memory "
        f"holds step {step - 1}'s weights and {kept}. Common causes: a learning rate too high, fp16 overflow, a "
        "reward function returning inf/NaN, or data that empties a completion."
    )


def check_finite(trainer, terms: Mapping[str, torch.Tensor | float]) -> None:
    """Raise :class:`NonFiniteLossError` if any term (a tensor of any shape, or a number) holds a NaN or an inf.

    ``trainer`` is a ``transformers.Trainer``: its ``state.global_step``, ``args.output_dir`` and ``accelerator`` give
    the step, the checkpoints and the processes. Call it on every process with the same term names.
    """
    if not terms:
        return
    device = trainer.accelerator.device
    sums = [torch.as_tensor(v).detach().float().sum().to(device) for v in terms.values()]
    bad = (~torch.isfinite(torch.stack(sums))).float()
    if trainer.accelerator.num_processes > 1:
        bad = trainer.accelerator.reduce(bad, reduction="sum")
    flags = bad.tolist()
    if not any(flags):
        return
    names = [name for name, flag in zip(terms, flags, strict=True) if flag]
    local = {name: float(s) for name, s in zip(terms, sums, strict=True)}
    shown = ", ".join(f"{name}={local[name]}" for name in names)
    raise _stopped(
        trainer, f"{' and '.join(repr(n) for n in names)} loss at optimizer step {{step}} (on this process: {shown})"
    )


def _loss_scaled(trainer) -> bool:
    """True under fp16 mixed precision with a loss scaler, which skips an overflowing step and lowers its scale."""
    if getattr(trainer.accelerator, "scaler", None) is not None:
        return True
    plugin = getattr(trainer.accelerator.state, "deepspeed_plugin", None)
    fp16 = (getattr(plugin, "deepspeed_config", None) or {}).get("fp16") or {}
    return bool(fp16.get("enabled")) and fp16.get("enabled") != "auto"


def check_finite_gradients(trainer, grad_norm) -> None:
    """Raise :class:`NonFiniteLossError` if ``grad_norm`` (the global gradient norm of the coming optimizer step, a
    tensor or a number; None is skipped) is NaN or infinite.

    Under fp16 mixed precision with a loss scaler (accelerate's GradScaler, DeepSpeed's fp16) an overflowing step is
    skipped by the scaler, which then lowers the scale: that is the intended recovery, so nothing is raised there.
    """
    if grad_norm is None or _loss_scaled(trainer):
        return
    value = float(grad_norm.item() if hasattr(grad_norm, "item") else grad_norm)
    if math.isfinite(value):
        return
    raise _stopped(
        trainer,
        f"gradient (norm {value}) at optimizer step {{step}}: the loss was finite but its backward pass overflowed or "
        "produced NaN",
    )
