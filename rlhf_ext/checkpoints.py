"""Where the Trainer's checkpoints are, and the one place that writes and reads rlhf_ext's state inside them.

A ``transformers.Trainer`` checkpoint holds the model, optimizer, scheduler, RNG states and ``trainer_state.json``.
rlhf_ext's trainers keep a little more that must survive a resume: the KL controller and the pretraining-data position
of PPO/RLOO, the ranked reward model's running token count, and, for a checkpoint inside a generation cycle, each
process's buffered rollouts. They store it here:

- :func:`write_checkpoint_state` / :func:`read_checkpoint_state`: one JSON file per checkpoint, :data:`STATE_FILE`, with
  one section per component (``"kl_controller"``, ``"ptx"``, ``"ranked_reward"``). Checkpoints written by rlhf_ext
  0.1.0.dev0, which used one file per trainer (``ppo_state.json``, ``ranked_reward_state.json``), are read as well.
- :func:`write_process_state` / :func:`read_process_state`: a tensor payload per process (``<name>_<rank>.pt``).

The value head of PPO is part of every saved model folder, not only of checkpoints: ``rlhf_ext.value_head`` saves it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from typing import Any

__all__ = [
    "STATE_FILE",
    "checkpoint_dir",
    "last_checkpoint",
    "read_checkpoint_state",
    "read_process_state",
    "write_checkpoint_state",
    "write_process_state",
]

STATE_FILE = "rlhf_ext_state.json"

# section -> (file the released version wrote, how its content maps to the section's payload)
_LEGACY_FILES: dict[str, tuple[str, Callable[[dict], Any]]] = {
    "kl_controller": ("ppo_state.json", lambda state: state["kl_ctl"]),
    "ptx": ("ppo_state.json", lambda state: {"position": state["ptx_position"]}),
    "ranked_reward": ("ranked_reward_state.json", lambda state: state),
}


def checkpoint_dir(trainer, trial=None) -> str:
    """The ``checkpoint-<global_step>`` folder ``Trainer._save_checkpoint`` writes (or has just written)."""
    from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

    return os.path.join(trainer._get_output_dir(trial=trial), f"{PREFIX_CHECKPOINT_DIR}-{trainer.state.global_step}")


def last_checkpoint(output_dir: str | None) -> str | None:
    """The newest ``checkpoint-N`` folder in ``output_dir``, or None (no folder, or no checkpoint yet)."""
    from transformers.trainer_utils import get_last_checkpoint

    if not output_dir or not os.path.isdir(output_dir):
        return None
    return get_last_checkpoint(output_dir)


def _read_json(path: str) -> dict | None:
    if not os.path.isfile(path):
        return None
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def write_checkpoint_state(trainer, trial, section: str, payload: Any) -> str | None:
    """Store ``payload`` (JSON-serialisable) as ``section`` of :data:`STATE_FILE` in the checkpoint being saved.

    Call it from ``_save_checkpoint`` after the parent's. Only the process that saves (``args.should_save``) writes;
    the file's other sections are kept. Returns the file's path, or None on the other processes.
    """
    if not trainer.args.should_save:
        return None
    folder = checkpoint_dir(trainer, trial)
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, STATE_FILE)
    state = _read_json(path) or {}
    state[section] = payload
    tmp = f"{path}.tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(state, f, indent=1)
    os.replace(tmp, path)  # a reader never sees a half-written file
    return path


def read_checkpoint_state(checkpoint: str | os.PathLike | None, section: str) -> Any | None:
    """``section``'s payload in ``checkpoint`` (a folder), or None when the checkpoint holds none.

    Reads :data:`STATE_FILE`, then the file of the released version that held the section (``ppo_state.json`` for
    ``"kl_controller"`` and ``"ptx"``, ``ranked_reward_state.json`` for ``"ranked_reward"``).
    """
    if checkpoint is None:
        return None
    state = _read_json(os.path.join(checkpoint, STATE_FILE))
    if state is not None and section in state:
        return state[section]
    if section in _LEGACY_FILES:
        name, convert = _LEGACY_FILES[section]
        legacy = _read_json(os.path.join(checkpoint, name))
        if legacy is not None:
            return convert(legacy)
    return None


def _process_file(folder: str | os.PathLike, name: str, trainer) -> str:
    return os.path.join(folder, f"{name}_{trainer.accelerator.process_index}.pt")


def write_process_state(trainer, trial, name: str, payload: Any) -> str:
    """Save this process's ``payload`` (tensors, numbers, lists, dicts) as ``<name>_<rank>.pt`` in the checkpoint.

    Every process writes its own file (call it on every process that has state to keep).
    """
    import torch

    folder = checkpoint_dir(trainer, trial)
    os.makedirs(folder, exist_ok=True)
    path = _process_file(folder, name, trainer)
    torch.save(payload, path)
    return path


def read_process_state(trainer, checkpoint: str | os.PathLike | None, name: str) -> Any | None:
    """This process's ``<name>_<rank>.pt`` payload from ``checkpoint``, on the trainer's device; None if absent."""
    import torch

    if checkpoint is None:
        return None
    path = _process_file(checkpoint, name, trainer)
    if not os.path.isfile(path):
        return None
    return torch.load(path, map_location=trainer.accelerator.device, weights_only=True)
