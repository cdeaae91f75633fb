"""Where the Trainer's checkpoints are: the folder being written, and the newest one in an output directory.

Trainers that keep extra state next to the Trainer's own checkpoint files (PPO's KL controller and rollout buffer,
the ranked reward model's token count) write it into :func:`checkpoint_dir` from their ``_save_checkpoint``.
"""

from __future__ import annotations

import os


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
