"""Helpers for resume tests: interrupt a run after a checkpoint, then compare the resumed run with an uninterrupted one.

An honest interruption keeps everything that shapes the run identical (same ``max_steps``, so the same learning-rate
schedule and epoch count) and only stops the loop: :class:`StopAfterStep` sets ``control.should_training_stop`` at
the end of optimizer step ``step``, after the step's checkpoint is due, so the checkpoint is written exactly as in the
uninterrupted run, and the loop then exits. A *new* trainer object (fresh model from the initial weights) resumes with
``train(resume_from_checkpoint=...)``; :class:`CountSteps` proves it ran only the remaining steps.
"""

from __future__ import annotations

from transformers import TrainerCallback

# Keys of a per-step log row that do not describe the training itself.
_NOT_COMPARED = frozenset({"step"})


class StopAfterStep(TrainerCallback):
    """Stop training at the end of optimizer step ``step`` (the Trainer saves a due checkpoint before it exits)."""

    def __init__(self, step: int):
        self.step = step

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == self.step:
            control.should_training_stop = True
        return control


class CountSteps(TrainerCallback):
    """Record the optimizer steps this trainer object actually ran (``state.global_step`` after each)."""

    def __init__(self):
        self.steps: list[int] = []

    def on_step_end(self, args, state, control, **kwargs):
        self.steps.append(state.global_step)
        return control


def step_logs(trainer, steps) -> dict[int, dict]:
    """The per-step training log rows (those with ``loss``) of the given global steps, keyed by step."""
    rows = {row["step"]: row for row in trainer.state.log_history if "loss" in row and row.get("step") in steps}
    missing = set(steps) - set(rows)
    if missing:
        raise AssertionError(f"no training log row for step(s) {sorted(missing)}")
    return rows


def max_abs_diffs(a: dict[str, float], b: dict[str, float], ignore=()) -> dict[str, float]:
    """Absolute difference of every key logged by both rows but ``ignore`` (wall-clock timings); the key sets must be
    equal."""
    skip = _NOT_COMPARED | set(ignore)
    keys_a, keys_b = set(a) - skip, set(b) - skip
    if keys_a != keys_b:
        raise AssertionError(f"logged keys differ: only in first {keys_a - keys_b}, only in second {keys_b - keys_a}")
    return {k: abs(float(a[k]) - float(b[k])) for k in sorted(keys_a)}


def named_tensors(module) -> dict[str, object]:
    """Detached CPU copies of every parameter and buffer of ``module`` (parameters and buffers of a value head too)."""
    out = {name: p.detach().cpu().clone() for name, p in module.named_parameters()}
    out.update({f"buffer:{name}": b.detach().cpu().clone() for name, b in module.named_buffers()})
    return out
