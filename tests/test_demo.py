"""The README's main job at toy size: every stage of the sentiment pipeline, cards, and the Hub push."""

from __future__ import annotations

import json

import pytest
import torch
from recipe_loader import RECIPES, load_recipe
from tiny_args import CPU


@pytest.fixture(scope="module")
def run_demo():
    return load_recipe("run_demo")


def test_toy_pipeline_runs_every_stage_and_pushes(run_demo, local_hub, tmp_path):
    from datasets import load_from_disk
    from huggingface_hub import HfApi, ModelCard
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification

    out, cards = tmp_path / "demo", tmp_path / "model_cards"
    argv = ["--toy", "--output_dir", str(out), "--push_to_hub", "--hub_model_id", "local-user/toy-ppo"]
    summary, results = run_demo.main(argv + ["--hub_token", local_hub.token, "--cards_dir", str(cards)])

    # Stage outputs on disk.
    labels = load_from_disk(str(out / "labels"))
    assert labels["train"].column_names == ["prompt", "completions", "ranks", "scores"]
    assert all(len(set(r)) > 1 for r in labels["train"]["ranks"])
    assert (out / "reward" / "README.md").exists() and (out / "ppo" / "config.json").exists()
    stored = json.loads((out / "summary.json").read_text())
    assert stored["eval"]["num_prompts"] == 16 and 0.0 <= stored["eval"]["win_rate"] <= 1.0
    assert set(summary) >= {"RM held-out pairwise accuracy", "KL to initial (nats)", "wall time"}
    # what --publish would put into docs/demo_summary.json renders into the README's block
    from rlhf_ext.results import render_demo

    assert stored["ppo"]["episodes"] == stored["ppo"]["batches"] * stored["ppo"]["episodes_per_batch"] > 0
    assert f"**{results['win_rate']:.3f}**" in render_demo(stored)
    # The rendered cards of the policy and the reward model, copied for model_cards/ (--cards_dir).
    assert (cards / "policy" / "README.md").read_text() == (out / "ppo" / "README.md").read_text()
    assert (cards / "policy" / "plots" / "labeler_scores.png").stat().st_size > 1000
    assert "reward model (scalar score" in (cards / "reward_model" / "README.md").read_text()

    # The policy card carries the evaluation as model-index metadata and shows the plots.
    api = HfApi(token=local_hub.token)
    policy_files = set(api.list_repo_files("local-user/toy-ppo"))
    assert {"README.md", "model.safetensors", "plots/labeler_scores.png"} <= policy_files
    assert not any("value_head" in f for f in policy_files), "the value head must not be exported"
    card = ModelCard.load("local-user/toy-ppo", token=local_hub.token)
    metrics = {r.metric_name: r.metric_value for r in card.data.eval_results}
    assert metrics["win rate vs initial policy (16 prompts, labeler)"] == pytest.approx(results["win_rate"], abs=1e-4)
    assert "Offline stand-in data" in card.text and local_hub.token not in card.text
    assert "![labeler scores](plots/labeler_scores.png)" in card.text

    # The reward model and the ranked dataset have their own repos, and everything loads back.
    assert "README.md" in api.list_repo_files("local-user/toy-ppo-reward")
    assert "data/train.parquet" in api.list_repo_files("local-user/toy-ppo-labels", repo_type="dataset")
    # (local-user/* are the repos this test pushed to the local Hub server above, not Hub models)
    policy = AutoModelForCausalLM.from_pretrained("local-user/toy-ppo", token=local_hub.token)
    rm = AutoModelForSequenceClassification.from_pretrained("local-user/toy-ppo-reward", token=local_hub.token)
    assert rm.config.num_labels == 1
    # what a user downloads is the trained policy and reward model the run saved, weight for weight
    for pushed, saved in ((policy, AutoModelForCausalLM.from_pretrained(out / "ppo")),
                          (rm, AutoModelForSequenceClassification.from_pretrained(out / "reward"))):  # fmt: skip
        mine, theirs = pushed.state_dict(), saved.state_dict()
        assert mine.keys() == theirs.keys() and all(torch.equal(mine[k], theirs[k]) for k in mine)


def test_push_with_a_bad_token_fails_clearly_and_keeps_outputs(run_demo, local_hub, tmp_path):
    """Also runs the PPO-ptx variant (--ptx), whose LM loss on review text must show up in the logs."""
    from rlhf_ext.hub import HubPushError

    out = tmp_path / "demo"
    argv = ["--toy", "--ptx", "--output_dir", str(out), "--push_to_hub", "--hub_model_id", "local-user/x"]
    with pytest.raises(HubPushError, match="rejected the token") as err:
        run_demo.main(argv + ["--hub_token", "hf_wrong_token_123"])
    assert "hf_wrong_token_123" not in str(err.value)
    assert (out / "ppo" / "model.safetensors").exists() and (out / "summary.json").exists()
    card = (out / "ppo" / "README.md").read_text()
    assert "| `ptx_coef` | 27.8 |" in card


def test_push_needs_a_repo_id(run_demo):
    with pytest.raises(SystemExit):
        run_demo.main(["--toy", "--push_to_hub"])


def test_each_task_writes_into_its_own_folder(run_demo, tmp_path, monkeypatch):
    """The descriptiveness run must not overwrite the sentiment run's labels, reward model, policy and summary."""
    import rlhf_ext.pipeline

    commands = []

    def record_and_stop(script, config, overrides=()):
        commands.append(list(overrides))
        raise StopIteration  # the first stage's command is enough

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(rlhf_ext.pipeline, "run_stage", record_and_stop)
    for task in ("sentiment", "descriptiveness"):
        with pytest.raises(StopIteration):
            run_demo.main([] if task == "sentiment" else ["--task", task])
    outputs = [cmd[cmd.index("--output_dir") + 1] for cmd in commands]
    assert outputs == ["outputs/sentiment/labels", "outputs/descriptiveness/labels"]


@pytest.mark.parametrize("stage", ["sample_and_label", "reward_sentiment", "ppo_sentiment", "evaluate_sentiment"])
def test_paper_and_offline_configs_parse(run_demo, stage):
    """Every recipe config parses into its dataclasses, so a GPU user can run the paper configs unchanged."""
    from trl import ModelConfig, TrlParser

    from rlhf_ext import PPOConfig, RankedRewardConfig

    module = load_recipe(stage)
    types = {
        "sample_and_label": lambda: (module.SampleAndLabelConfig,),
        "reward_sentiment": lambda: (module.RewardRecipeArgs, RankedRewardConfig, ModelConfig),
        "ppo_sentiment": lambda: (module.PPORecipeArgs, PPOConfig, ModelConfig),
        "evaluate_sentiment": lambda: (module.EvalConfig,),
    }[stage]()
    for variant in ("offline", "paper"):
        # bf16 needs a GPU; the rest of each config is parsed as written.
        extra = ["--bf16", "false", "--use_cpu", "true"] if len(types) > 1 else []
        parsed = TrlParser(types).parse_args_and_config(
            ["--config", str(RECIPES / "configs" / f"{stage}_{variant}.yaml"), *extra]
        )
        assert len(parsed) == len(types)
        if stage == "ppo_sentiment" and variant == "paper":
            args = parsed[1]
            # Ziegler et al.'s controller and PPO settings survive parsing.
            assert (args.kl_coef, args.kl_target, args.kl_horizon, args.num_ppo_epochs) == (0.15, 6.0, 10000, 4)
            assert args.per_device_train_batch_size * 8 * args.steps_per_generation == 512


def test_reward_recipe_prints_its_accuracy_on_the_main_process_only(tiny_models, tmp_path, monkeypatch, capsys):
    """Under DDP every process runs the recipe; the held-out accuracy line must appear once, not once per process."""
    from datasets import Dataset, DatasetDict
    from trl import ModelConfig

    from rlhf_ext import RankedRewardConfig, RankedRewardTrainer

    recipe = load_recipe("reward_sentiment")
    rows = [{"prompt": "The movie", "completions": [" was great", " was bad", " was fine"], "ranks": [0, 2, 1]}] * 4
    DatasetDict({"train": Dataset.from_list(rows), "test": Dataset.from_list(rows[:2])}).save_to_disk(tmp_path / "l")
    common = dict(max_steps=1, per_device_train_batch_size=2, save_strategy="no", **CPU)
    for main_process in (True, False):
        monkeypatch.setattr(RankedRewardTrainer, "is_world_process_zero", lambda self, main=main_process: main)
        recipe.main(
            recipe.RewardRecipeArgs(labels_dir=str(tmp_path / "l")),
            RankedRewardConfig(output_dir=str(tmp_path / f"rm-{main_process}"), **common),
            ModelConfig(model_name_or_path=str(tiny_models.reward_model)),
        )
        printed = capsys.readouterr().out
        assert ("held-out pairwise accuracy:" in printed) is main_process
