"""benchmarks/ablate_ppo_tldr.py: the K = 4 label subset, the critic check, and a toy ablation from start to JSON."""

from __future__ import annotations

import json

import pytest
from recipe_loader import load_benchmark, load_recipe


@pytest.fixture(scope="module")
def ablate():
    return load_benchmark("ablate_ppo_tldr")


def labels(train_scores: list[list[float]]):
    """Ranked labels as sample_and_label.py saves them: two training articles with 6 scored summaries, one held out."""
    from datasets import Dataset, DatasetDict

    from rlhf_ext.data.ranking import ranks_from_scores

    def row(article, scores):
        completions = [f" summary {i} of {article}" for i in range(len(scores))]
        return {"prompt": f"ARTICLE: {article}\nTL;DR:", "completions": completions,
                "ranks": ranks_from_scores(scores), "scores": scores}  # fmt: skip

    train = [row(f"article {i}", scores) for i, scores in enumerate(train_scores)]
    test = [row("held-out article", [0.3, 0.1, 0.8, 0.2, 0.5, 0.4])]
    return DatasetDict({"train": Dataset.from_list(train), "test": Dataset.from_list(test)})


def test_first_k_labels_reranks_the_first_k_from_their_scores_and_keeps_the_heldout_split(ablate):
    full = labels([[0.1, 0.9, 0.5, 0.3, 2.0, -1.0], [0.2, 0.2, 0.7, 0.2, 0.9, 0.1]])
    assert full["train"][0]["ranks"] == [4, 1, 2, 3, 0, 5]  # the best (2.0) is the 5th summary, left out below

    subset, stats = ablate.first_k_labels(full, 4)
    a, b = subset["train"][0], subset["train"][1]
    assert a["completions"] == [" summary 0 of article 0", " summary 1 of article 0", " summary 2 of article 0",
                                " summary 3 of article 0"]  # fmt: skip
    assert a["scores"] == [0.1, 0.9, 0.5, 0.3] and a["ranks"] == [3, 0, 1, 2]
    assert b["scores"] == [0.2, 0.2, 0.7, 0.2] and b["ranks"] == [1, 1, 0, 1]  # equal scores tie
    assert subset["test"].to_list() == full["test"].to_list()  # held out, whole: the same pairs score both RMs
    assert stats == {"k": 4, "train_prompts": 2, "all_tied_dropped": 0, "comparisons": 6 + 3,
                     "test_prompts": {"test": 1}}  # fmt: skip


def test_first_k_labels_drops_an_article_whose_first_k_tie_and_refuses_nothing_to_take(ablate):
    full = labels([[0.1, 0.9, 0.5, 0.3, 2.0, -1.0], [0.2, 0.2, 0.2, 0.2, 0.9, 0.1]])
    subset, stats = ablate.first_k_labels(full, 4)
    assert subset["train"]["prompt"] == ["ARTICLE: article 0\nTL;DR:"] and stats["all_tied_dropped"] == 1
    with pytest.raises(ValueError, match="6 completions for some article; 6 of them takes nothing away"):
        ablate.first_k_labels(full, 6)


def test_a_critic_from_an_encoder_reward_model_is_refused_with_the_trainers_reason(ablate, tiny_models, tmp_path):
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    tok = AutoTokenizer.from_pretrained(tiny_models.tokenizer)
    config = BertConfig(vocab_size=len(tok), hidden_size=32, num_hidden_layers=1, num_attention_heads=4,
                        intermediate_size=64, num_labels=1)  # fmt: skip
    BertForSequenceClassification(config).save_pretrained(tmp_path / "bert-rm")
    tok.save_pretrained(tmp_path / "bert-rm")
    why = ablate.critic_unavailable(tmp_path / "bert-rm", tiny_models.causal_lm)
    assert "BertForSequenceClassification" in why and "no scalar `score` head" in why
    assert ablate.critic_unavailable(tiny_models.reward_model, tiny_models.causal_lm) is None  # a decoder: fine


def test_the_k4_reward_model_starts_from_the_runs_own_sft_folder_as_its_reward_config_says(ablate, tmp_path):
    run_summarize = load_recipe("run_summarize")
    sft = tmp_path / "run" / "sft"
    for dataset in ("tldr", "cnndm"):  # both reward configs name outputs/<dataset>/sft, which need not exist here
        assert run_summarize.reward_backbone(dataset, False, sft) == ["--model_name_or_path", str(sft)]
    assert run_summarize.reward_backbone("tldr", True, sft) == []  # the toy run's overrides name its model


@pytest.mark.slow  # the evaluation's judge loads MiniLM and SmolLM2
def test_toy_ablation_runs_two_variants_writes_the_json_and_resumes(ablate, toy_summarize_run, tmp_path, capsys):
    root, _, _ = toy_summarize_run
    output = tmp_path / "ablation.json"
    argv = ["--root", str(root), "--toy", "--variants", "full", "k4_labels", "reference_reward_normalization",
            "--output", str(output)]  # fmt: skip
    summary = ablate.main(argv)
    assert json.loads(output.read_text()) == summary
    assert json.loads((root / "ablation" / "summary.json").read_text()) == summary
    # the offline config normalises on the references already: said, not run
    assert summary["skipped"] == {
        "reference_reward_normalization": "the config already has reward_normalization = reference: that is `full`"
    }
    assert list(summary["variants"]) == ["full", "k4_labels"]
    full, k4 = summary["variants"]["full"], summary["variants"]["k4_labels"]
    assert full["overrides"] == [] and k4["overrides"] == ["--reward_model", str(root / "ablation" / "reward_k4")]
    for row in (full, k4):
        low, high = row["win_rate_vs_sft_ci"]
        assert 0.0 <= low <= row["win_rate_vs_sft"] <= high <= 1.0
        assert {"kl_to_sft", "judge_score", "reward_model_score", "length_words"} <= set(row)
        assert row["ppo_seconds"] > 0
        assert row["episodes"] == 8  # the toy PPO: one batch of 4 prompts x 2 minibatches
    # the K = 4 reward model: the toy labels' 14 training articles x C(4, 2) pairs, scored on the same held-out rows
    labels_k4 = k4["reward_model"]["labels"]
    assert labels_k4["k"] == 4 and labels_k4["test_prompts"] == {"test": 2}
    assert labels_k4["comparisons"] <= 6 * labels_k4["train_prompts"]
    assert 0.0 <= k4["reward_model"]["heldout_pairwise_accuracy"] <= 1.0
    # one evaluation: SFT and both variants on the toy run's own held-out articles and seed
    evaluated = json.loads((root / "ablation" / "eval" / "results.json").read_text())["systems"]
    assert set(evaluated) == {"sft", "ablation/full", "ablation/k4_labels", "reference"}
    main_eval = json.loads((root / "eval" / "samples.json").read_text())["config"]
    assert {k: summary["evaluation"][k] for k in ("num_prompts", "seed", "split")} == {
        k: main_eval[k] for k in ("num_prompts", "seed", "split")
    }
    assert "## Summarization comparison" not in (root / "ablation" / "full" / "README.md").read_text()

    # run again: the K = 4 policy and reward model are finished, so they are not trained again; a policy trained with
    # other options than its variant's now (here: a record edited by hand) is
    record = root / "ablation" / "full" / "ablation_run.json"
    record.write_text(json.dumps({**json.loads(record.read_text()), "overrides": ["--max_steps", "1"]}))
    capsys.readouterr()
    again = ablate.main(argv)
    printed = capsys.readouterr().out
    assert "[ablation] k4_labels: " in printed and "holds a finished policy" in printed
    assert "reward_k4 is a finished reward model: not trained again" in printed
    assert "full was trained with ['--max_steps', '1'], not []: run again" in printed
    assert "=== 1/2 PPO: full ===" in printed and "PPO: k4_labels" not in printed
    assert again["variants"]["k4_labels"]["ppo_seconds"] == k4["ppo_seconds"]
    assert again["variants"]["k4_labels"]["win_rate_vs_sft"] == k4["win_rate_vs_sft"]  # same seed, same samples
    assert again["variants"]["full"]["overrides"] == []


@pytest.mark.slow  # the evaluation's judge loads MiniLM and SmolLM2
def test_toy_ablation_full_from_run_evaluates_the_runs_own_ppo(ablate, toy_summarize_run, tmp_path, capsys):
    root, _, _ = toy_summarize_run
    argv = [
        "--root",
        str(root),
        "--toy",
        "--variants",
        "full",
        "--full_from_run",
        "--output",
        str(tmp_path / "a.json"),
    ]
    summary = ablate.main(argv)
    assert "full: the run's own PPO stage" in capsys.readouterr().out
    full = summary["variants"]["full"]
    assert full["policy"] == "ppo" and full["overrides"] == []
    assert full["ppo_seconds"] == json.loads((root / "timings.json").read_text())["seconds"]["ppo"]
    assert full["episodes"] == 8
    evaluated = json.loads((root / "ablation" / "eval" / "results.json").read_text())["systems"]
    assert set(evaluated) == {"sft", "ppo", "reference"}
    # same policy, seed and articles as the run's own evaluation: the same win rate
    main = json.loads((root / "eval" / "results.json").read_text())["systems"]["ppo"]
    assert full["win_rate_vs_sft"] == main["win_rate_vs_sft"]

    (root / "timings.json").rename(tmp_path / "timings.json")
    try:
        with pytest.raises(SystemExit, match="--full_from_run needs the run's PPO policy"):
            ablate.main(argv)
    finally:
        (tmp_path / "timings.json").rename(root / "timings.json")
