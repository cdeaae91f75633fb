"""The summarization recipes: a toy pass of every stage, and the paper configs building their trainers.

The paper configs name Hub models and datasets (Pythia, trl-lib/tldr, abisee/cnn_dailymail). Here every Hub
model id is redirected to a tiny local GPT-NeoX (Pythia's architecture) and every Hub dataset to a few rows
with the real columns, so the configs go through the recipes' own code unchanged except for
``use_cpu``/``bf16`` (a GPU user runs them as they are).
"""

from __future__ import annotations

import json
import math

import pytest
import yaml
from recipe_loader import RECIPES, load_recipe

CONFIGS = RECIPES / "configs"


@pytest.fixture(scope="module")
def recipes():
    names = {
        "sft": "sft_tldr",
        "reward": "reward_tldr",
        "ppo": "ppo_tldr",
        "dpo": "dpo_tldr",
        "orpo": "orpo_tldr",
        "evaluate": "evaluate_summaries",
        "run": "run_summarize",
    }
    return {key: load_recipe(name) for key, name in names.items()}


# ----------------------------------------------------------------------------- the toy pipeline


def test_toy_pipeline_runs_every_stage_and_writes_results_and_cards(recipes, toy_summarize_run):
    from datasets import load_from_disk
    from transformers import AutoModelForCausalLM

    out, results, timings = toy_summarize_run
    assert list(timings) == list(recipes["run"].STAGES)

    labels = load_from_disk(str(out / "labels"))
    assert labels["train"].column_names == ["prompt", "completions", "ranks", "scores"]
    k = yaml.safe_load((CONFIGS / "label_tldr_offline.yaml").read_text())["k"]
    assert all(len(r) == k for r in labels["train"]["completions"])
    for policy in ("sft", "ppo", "dpo", "orpo"):
        files = {p.name for p in (out / policy).iterdir()}
        assert "model.safetensors" in files and "adapter_config.json" not in files, policy
        assert not any("value_head" in f for f in files), policy
        AutoModelForCausalLM.from_pretrained(out / policy)
        card = (out / policy / "README.md").read_text()
        assert "## Summarization comparison" in card and "plots/summarization_results.png" in card, policy
        assert (out / policy / "plots" / "summarization_results.png").stat().st_size > 1000

    stored = json.loads((out / "eval" / "results.json").read_text())
    # what --publish would put into docs/summarize_results.json renders into the README's and docs' tables
    from rlhf_ext.results import render_summarize_facts, render_summarize_table

    record = json.loads((out / "summary.json").read_text())
    assert record["evaluation"] == stored and list(record["stage_seconds"]) == list(recipes["run"].STAGES)
    assert "| ppo |" in render_summarize_table(record) and "comparisons" in render_summarize_facts(record)
    systems = {"sft", "ppo", "dpo", "orpo", "reference"}
    assert set(results) == systems
    for name in systems - {"reference"}:
        row = results[name]
        assert 0.0 <= row["rouge1"] <= 1.0 and 0.0 <= row["rougeL"] <= 1.0
        assert 0.0 <= row["distinct_2"] <= 1.0 and 0.0 <= row["repetition_3"] <= 1.0
        assert {"judge_score", "reward_model_score", "length_words", "kl_to_sft", "elo"} <= set(row)
    assert all(math.isfinite(results[name]["kl_to_sft"]) for name in ("ppo", "dpo", "orpo"))
    assert "rouge1" not in results["reference"]
    table = (out / "eval" / "results.md").read_text()
    for name in systems:
        assert name in table
    assert stored  # written next to the table


def test_stage_times_of_an_earlier_invocation_on_the_same_root_are_kept(recipes, tmp_path):
    earlier_timings = recipes["run"].earlier_timings
    path = tmp_path / "timings.json"
    path.write_text(
        json.dumps({"seconds": {"sft": 500.0, "label": 700.0, "old": 1.0}, "toy": False, "dataset": "tldr"})
    )
    assert earlier_timings(path, toy=False, dataset="tldr") == {"sft": 500.0, "label": 700.0}
    assert earlier_timings(path, toy=True, dataset="tldr") == {}  # a toy run's times are not this run's
    assert earlier_timings(path, toy=False, dataset="cnndm") == {}
    assert earlier_timings(tmp_path / "missing.json", toy=False, dataset="tldr") == {}


def test_the_reward_stage_starts_from_this_runs_sft_policy_when_its_config_says_so(recipes, tmp_path, monkeypatch):
    # both offline configs start from the SFT trunk (Huang et al.), so run_summarize passes <output_dir>/sft
    assert recipes["run"].reward_starts_from_sft("tldr")
    assert recipes["run"].reward_starts_from_sft("cnndm")
    (tmp_path / "configs").mkdir()
    (tmp_path / "configs" / "reward_tldr_offline.yaml").write_text("model_name_or_path: offline   # MiniLM\n")
    monkeypatch.setattr(recipes["run"], "HERE", tmp_path)
    assert not recipes["run"].reward_starts_from_sft("tldr"), "a config with its own backbone keeps it"


# ----------------------------------------------------------------------------- paper configs

HUB_MODELS = ("EleutherAI/", "cleanrl/", "outputs/")


@pytest.fixture
def offline_hub(monkeypatch, tmp_path_factory):
    """Hub model ids -> tiny GPT-NeoX folders; Hub datasets -> a few rows with the real columns."""
    import datasets
    from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForSequenceClassification, AutoTokenizer

    from rlhf_ext.testing.tiny_models import build_tiny_gpt_neox

    tiny = build_tiny_gpt_neox(tmp_path_factory.mktemp("tiny-neox"))
    seen = []

    def redirect(cls, target):
        original = cls.from_pretrained.__func__

        def from_pretrained(klass, name, *args, **kwargs):
            if str(name).startswith(HUB_MODELS):
                seen.append(str(name))
                name = target(str(name))
            return original(klass, name, *args, **kwargs)

        monkeypatch.setattr(cls, "from_pretrained", classmethod(from_pretrained))

    redirect(AutoModelForCausalLM, lambda name: tiny.causal_lm)
    redirect(AutoModelForSequenceClassification, lambda name: tiny.reward_model)
    redirect(AutoTokenizer, lambda name: tiny.tokenizer)
    redirect(AutoConfig, lambda name: tiny.reward_model if "reward" in name else tiny.causal_lm)

    post = "SUBREDDIT: r/movies\nTITLE: A film\nPOST: The team won the final match after a late goal.\nTL;DR:"
    rows = {
        "trl-lib/tldr": {"prompt": [post] * 8, "completion": [" the team won."] * 8},
        "trl-lib/tldr-preference": {
            "prompt": [post] * 8,
            "chosen": [" the team won the final."] * 8,
            "rejected": [" a film."] * 8,
        },
        "abisee/cnn_dailymail": {
            "article": ["The council voted on Tuesday to approve the new budget for schools and roads."] * 8,
            "highlights": ["Council approves budget."] * 8,
            "id": [str(i) for i in range(8)],
        },
    }

    def load_dataset(path, name=None, split=None, **kwargs):
        if path not in rows:
            raise AssertionError(f"a paper config asked for an unexpected Hub dataset {path!r}")
        seen.append(path)
        return datasets.Dataset.from_dict(rows[path])

    monkeypatch.setattr(datasets, "load_dataset", load_dataset)
    return seen


PAPER = [
    ("sft", "sft_tldr_paper.yaml"),
    ("sft", "sft_cnndm_paper.yaml"),
    ("reward", "reward_tldr_paper.yaml"),
    ("ppo", "ppo_tldr_paper.yaml"),
    ("ppo", "ppo_cnndm_paper.yaml"),
    ("dpo", "dpo_tldr_paper.yaml"),
    ("orpo", "orpo_tldr_paper.yaml"),
]


@pytest.mark.parametrize("stage,config", PAPER)
def test_paper_configs_parse_and_build_their_trainers(recipes, offline_hub, tmp_path, stage, config):
    from trl import DPOConfig, ModelConfig, SFTConfig, TrlParser

    from rlhf_ext import ORPOConfig, PPOConfig, RankedRewardConfig

    module = recipes[stage]
    args_class = {"sft": "SFTRecipeArgs", "reward": "SummaryRewardArgs", "ppo": "SummaryPPOArgs"}.get(stage)
    args_class = getattr(module, args_class or f"Summary{stage.upper()}Args")
    config_class = {"sft": SFTConfig, "reward": RankedRewardConfig, "ppo": PPOConfig, "dpo": DPOConfig}.get(stage)
    types = (args_class, config_class or ORPOConfig, ModelConfig)
    cpu = ["--use_cpu", "true", "--bf16", "false", "--gradient_checkpointing", "false"]
    recipe, args, model_args = TrlParser(types).parse_args_and_config(
        ["--config", str(CONFIGS / config), "--output_dir", str(tmp_path / "out"), *cpu]
    )
    # The config's values reach the trainer's arguments (the paper's, not the library defaults).
    paper = yaml.safe_load((CONFIGS / config).read_text())
    for key, value in paper.items():
        if key in {"output_dir", "bf16", "gradient_checkpointing"}:
            continue
        holder = next(h for h in (recipe, model_args, args) if hasattr(h, key))
        assert getattr(holder, key) == value, key
    trainer = module.build_trainer(recipe, args, model_args)
    assert (
        type(trainer).__name__
        == {
            "sft": "SFTTrainer",
            "reward": "RankedRewardTrainer",
            "ppo": "PPOTrainer",
            "dpo": "DPOTrainer",
            "orpo": "ORPOTrainer",
        }[stage]
    )
    assert any(name.startswith(HUB_MODELS) for name in offline_hub), "the config's model was never loaded"
    assert trainer.card_info.dataset_is_standin is False


def test_huang_et_al_ppo_values_in_the_tldr_paper_config():
    """The values the issue asks for, each from Huang et al. 2024 (cited in the YAML)."""
    cfg = yaml.safe_load((CONFIGS / "ppo_tldr_paper.yaml").read_text())
    assert (cfg["kl_coef"], cfg["kl_target"], cfg["gamma"], cfg["lam"], cfg["num_ppo_epochs"]) == (
        0.05,
        None,
        1.0,
        0.95,
        4,
    )
    assert (cfg["cliprange"], cfg["vf_coef"], cfg["temperature"], cfg["max_completion_length"]) == (0.2, 0.1, 0.7, 53)
    assert cfg["model_name_or_path"].endswith("sft")
    # Huang et al.'s EOS trick: the score of a response without EOS becomes -1 on a reward shifted so that the
    # reference summaries score 0 on average
    assert (cfg["missing_eos_score"], cfg["reward_normalization"], cfg["reward_normalization_std"]) == (
        -1.0,
        "reference",
        False,
    )
    assert "missing_eos_penalty" not in cfg
    assert cfg["critic_from_reward_model"] is True  # their critic starts as a copy of the reward model


def test_evaluation_paper_configs_parse(recipes):
    from trl import TrlParser

    for name in ("evaluate_tldr_paper.yaml", "evaluate_cnndm_paper.yaml"):
        (cfg,) = TrlParser(recipes["evaluate"].SummaryEvalConfig).parse_args_and_config(
            ["--config", str(CONFIGS / name)]
        )
        assert cfg.baseline in cfg.policies and cfg.temperature == 0.7
