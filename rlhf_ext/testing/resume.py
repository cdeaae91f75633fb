"""Helpers for resume tests: interrupt a run after a checkpoint, then compare the resumed run with an uninterrupted one.

An honest interruption keeps everything that shapes the run identical (same ``max_steps``, so the same learning-rate
schedule and epoch count) and only stops the loop: :class:`StopAfterStep` sets ``control.should_training_stop`` at
the end of optimizer step ``step``, after the step's checkpoint is due, so the checkpoint is written exactly as in the
uninterrupted run, and the loop then exits. A *new* trainer object (fresh model from the initial weights) resumes with
``train(resume_from_checkpoint=...)``; :class:`CountSteps` proves it ran only the remaining steps.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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


@dataclass
class Runs:
    full: Any  # trained uninterrupted
    interrupted: Any  # stopped after the checkpoint
    resumed: Any  # a new trainer, resumed from that checkpoint
    steps_run: list[int]  # the optimizer steps the resumed trainer ran


def interrupt_and_resume(
    build: Callable[[Path], Any], root: Path, stop_after: int, prepare: Callable[[Any], Any] | None = None
) -> Runs:
    """Train ``build(root / "a")`` uninterrupted; train ``build(root / "b")`` and stop it after step ``stop_after``
    (whose checkpoint must be due); resume a new ``build(root / "b")`` from ``<output_dir>/checkpoint-<stop_after>``.
    ``prepare(trainer)`` runs on the full and the resumed trainer before they train (spies, callbacks)."""
    full = build(root / "a")
    if prepare:
        prepare(full)
    full.train()

    interrupted = build(root / "b")
    interrupted.add_callback(StopAfterStep(stop_after))
    interrupted.train()
    checkpoint = Path(interrupted.args.output_dir) / f"checkpoint-{stop_after}"
    if interrupted.state.global_step != stop_after or not checkpoint.is_dir():
        raise AssertionError(f"the interrupted run did not stop at step {stop_after} with {checkpoint} written")

    resumed = build(root / "b")
    if prepare:
        prepare(resumed)
    counter = CountSteps()
    resumed.add_callback(counter)
    resumed.train(resume_from_checkpoint=str(checkpoint))
    return Runs(full, interrupted, resumed, counter.steps)


def max_weight_diff(a: dict, b: dict) -> float:
    return max((a[n] - b[n]).abs().max().item() for n in a)


def assert_same_weights(expected_model, got_model, atol: float) -> float:
    """Every parameter and buffer of ``got_model`` equals ``expected_model``'s within ``atol``; returns the max diff."""
    import torch

    expected, got = named_tensors(expected_model), named_tensors(got_model)
    if expected.keys() != got.keys():
        raise AssertionError(f"parameter names differ: {sorted(expected.keys() ^ got.keys())}")
    for name in expected:
        torch.testing.assert_close(got[name], expected[name], atol=atol, rtol=0, msg=name)
    return max_weight_diff(got, expected)


def assert_same_step_metrics(
    full, resumed, steps: Iterable[int], required: Callable[[int], set[str]], atol: float, ignore=()
) -> dict[int, dict[str, float]]:
    """The log rows of ``steps`` hold the same keys in both runs, at least ``required(step)``, and agree within
    ``atol``; returns the differences per step."""
    steps = list(steps)
    full_logs, resumed_logs = step_logs(full, steps), step_logs(resumed, steps)
    out = {}
    for step in steps:
        diffs = max_abs_diffs(full_logs[step], resumed_logs[step], ignore=ignore)
        missing = required(step) - diffs.keys()
        if missing:
            raise AssertionError(f"step {step}: metrics {sorted(missing)} were not logged")
        if max(diffs.values()) > atol:
            raise AssertionError(f"step {step}: metrics differ by more than {atol}: {diffs}")
        out[step] = diffs
    return out
