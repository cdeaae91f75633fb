"""rlhf_ext.checkpoints: one state file per checkpoint with a section per component, released names still read."""

from __future__ import annotations

import json
from types import SimpleNamespace

import torch

from rlhf_ext.checkpoints import (
    STATE_FILE,
    checkpoint_dir,
    last_checkpoint,
    read_checkpoint_state,
    read_process_state,
    write_checkpoint_state,
    write_process_state,
)


def fake_trainer(output_dir, step=3, should_save=True, rank=0):
    """The few attributes of a transformers.Trainer that the checkpoint helpers read."""
    return SimpleNamespace(
        args=SimpleNamespace(should_save=should_save, output_dir=str(output_dir)),
        state=SimpleNamespace(global_step=step),
        accelerator=SimpleNamespace(process_index=rank, device=torch.device("cpu")),
        _get_output_dir=lambda trial=None: str(output_dir),
    )


def test_sections_share_one_file_and_read_back(tmp_path):
    trainer = fake_trainer(tmp_path)
    assert checkpoint_dir(trainer) == str(tmp_path / "checkpoint-3")
    write_checkpoint_state(trainer, None, "kl_controller", {"value": 0.2, "target": 6.0, "horizon": 10.0})
    write_checkpoint_state(trainer, None, "ptx", {"position": 4})
    folder = tmp_path / "checkpoint-3"
    assert [p.name for p in folder.iterdir()] == [STATE_FILE]  # no temporary file left behind
    assert json.loads((folder / STATE_FILE).read_text()) == {
        "kl_controller": {"value": 0.2, "target": 6.0, "horizon": 10.0},
        "ptx": {"position": 4},
    }
    assert read_checkpoint_state(folder, "ptx") == {"position": 4}
    assert read_checkpoint_state(folder, "ranked_reward") is None
    assert read_checkpoint_state(None, "ptx") is None
    assert last_checkpoint(str(tmp_path)) == str(folder)


def test_only_the_saving_process_writes_the_state_file(tmp_path):
    assert write_checkpoint_state(fake_trainer(tmp_path, should_save=False), None, "ptx", {"position": 1}) is None
    assert not (tmp_path / "checkpoint-3").exists()


def test_checkpoints_of_the_released_version_are_read(tmp_path):
    """rlhf_ext 0.1.0.dev0 wrote ppo_state.json (PPO/RLOO) and ranked_reward_state.json, one file per trainer."""
    old = tmp_path / "checkpoint-2"
    old.mkdir()
    kl = {"value": 0.12, "target": 6.0, "horizon": 10000.0}
    (old / "ppo_state.json").write_text(json.dumps({"kl_ctl": kl, "ptx_position": 7}))
    (old / "ranked_reward_state.json").write_text(json.dumps({"total_train_tokens": 1073}))
    assert read_checkpoint_state(old, "kl_controller") == kl
    assert read_checkpoint_state(old, "ptx") == {"position": 7}
    assert read_checkpoint_state(old, "ranked_reward") == {"total_train_tokens": 1073}
    # The current file wins where both exist.
    (old / STATE_FILE).write_text(json.dumps({"ptx": {"position": 9}}))
    assert read_checkpoint_state(old, "ptx") == {"position": 9}
    assert read_checkpoint_state(old, "kl_controller") == kl


def test_process_state_is_one_file_per_rank(tmp_path):
    for rank in (0, 1):
        trainer = fake_trainer(tmp_path, rank=rank)
        path = write_process_state(trainer, None, "rollout_buffer", {"step": rank, "x": torch.arange(3) + rank})
        assert path.endswith(f"checkpoint-3/rollout_buffer_{rank}.pt")
    folder = tmp_path / "checkpoint-3"
    one = read_process_state(fake_trainer(tmp_path, rank=1), folder, "rollout_buffer")
    assert one["step"] == 1 and torch.equal(one["x"], torch.tensor([1, 2, 3]))
    assert read_process_state(fake_trainer(tmp_path, rank=2), folder, "rollout_buffer") is None
    assert read_process_state(fake_trainer(tmp_path), None, "rollout_buffer") is None
