"""The README's main job at toy size: every stage of the sentiment pipeline, cards, and the Hub push."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

RECIPES = Path(__file__).resolve().parents[1] / "recipes"


@pytest.fixture(scope="module")
def run_demo():
    sys.path.insert(0, str(RECIPES))
    import run_demo

    yield run_demo
    sys.path.remove(str(RECIPES))


def test_toy_pipeline_runs_every_stage_and_pushes(run_demo, local_hub, tmp_path):
    from datasets import load_from_disk
    from huggingface_hub import HfApi, ModelCard
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification

    out = tmp_path / "demo"
    argv = ["--toy", "--output_dir", str(out), "--push_to_hub", "--hub_model_id", "local-user/toy-ppo"]
    summary, results = run_demo.main(argv + ["--hub_token", local_hub.token])

    # Stage outputs on disk.
    labels = load_from_disk(str(out / "labels"))
    assert labels["train"].column_names == ["prompt", "completions", "ranks", "scores"]
    assert all(len(set(r)) > 1 for r in labels["train"]["ranks"])
    assert (out / "reward" / "README.md").exists() and (out / "ppo" / "config.json").exists()
    stored = json.loads((out / "summary.json").read_text())
    assert stored["eval"]["num_prompts"] == 16 and 0.0 <= stored["eval"]["win_rate"] <= 1.0
    assert set(summary) >= {"RM held-out pairwise accuracy", "KL to initial (nats)", "wall time"}

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
    AutoModelForCausalLM.from_pretrained("local-user/toy-ppo", token=local_hub.token)
    rm = AutoModelForSequenceClassification.from_pretrained("local-user/toy-ppo-reward", token=local_hub.token)
    assert rm.config.num_labels == 1


def test_push_with_a_bad_token_fails_clearly_and_keeps_outputs(run_demo, local_hub, tmp_path):
    from rlhf_ext.hub import HubPushError

    out = tmp_path / "demo"
    argv = ["--toy", "--output_dir", str(out), "--push_to_hub", "--hub_model_id", "local-user/x"]
    with pytest.raises(HubPushError, match="rejected the token") as err:
        run_demo.main(argv + ["--hub_token", "hf_wrong_token_123"])
    assert "hf_wrong_token_123" not in str(err.value)
    assert (out / "ppo" / "model.safetensors").exists() and (out / "summary.json").exists()


def test_push_needs_a_repo_id(run_demo):
    with pytest.raises(SystemExit):
        run_demo.main(["--toy", "--push_to_hub"])
