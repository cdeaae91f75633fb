"""Cards: metadata the Hub parses, stand-in data said plainly, plots drawn from the trainer's logs."""

from __future__ import annotations

import pytest
from huggingface_hub import ModelCard

from rlhf_ext.cards import CardInfo, plot_learning_curves, plot_reward_vs_kl, render_dataset_card, render_model_card


def _info(**kw):
    base = dict(
        kind="policy",
        method="PPO with adaptive KL",
        dataset_name="review-openings",
        dataset_description="Rotten Tomatoes review openings",
        dataset_is_standin=True,
        citations=["ziegler2019", "instructgpt"],
        hyperparameters={"learning_rate": 3e-4, "kl_target": 6.0},
        eval_results=[
            {"metric": "win rate vs initial policy", "value": 0.8125, "dataset": "review-openings"},
            {"metric": "VADER score", "value": 0.51, "dataset": "review-openings"},
        ],
    )
    base.update(kw)
    return CardInfo(**base)


def test_model_card_metadata_round_trips(tmp_path):
    card = render_model_card(
        _info(), model_name="smollm2-ppo-sentiment", base_model="HuggingFaceTB/SmolLM2-135M-Instruct"
    )
    card.save(tmp_path / "README.md")
    loaded = ModelCard.load(tmp_path / "README.md")
    results = {r.metric_name: r.metric_value for r in loaded.data.eval_results}
    assert results == {"win rate vs initial policy": 0.8125, "VADER score": 0.51}
    assert loaded.data.base_model == "HuggingFaceTB/SmolLM2-135M-Instruct"
    assert "rlhf_ext" in loaded.data.tags
    text = loaded.text
    assert "Offline stand-in data" in text and "not** the dataset of the paper" in text
    assert "Ziegler et al. 2019" in text and "| `kl_target` | 6.0 |" in text
    assert 'pipeline("text-generation"' in text
    # A stand-in must not be advertised as a Hub dataset in the metadata.
    assert not loaded.data.datasets


def test_reward_model_card_usage_and_real_dataset():
    card = render_model_card(
        _info(kind="reward_model", dataset_is_standin=False, dataset_name="openai/summarize_from_feedback"),
        model_name="rm",
        repo_id="me/rm",
    )
    assert card.data.datasets == ["openai/summarize_from_feedback"]
    assert 'AutoModelForSequenceClassification.from_pretrained("me/rm")' in card.text
    assert "Offline stand-in" not in card.text


def test_card_rejects_unknown_kind():
    with pytest.raises(ValueError, match="card kind"):
        render_model_card(_info(kind="critic"), model_name="x")


def test_non_finite_eval_results_are_left_out():
    card = render_model_card(_info(eval_results=[{"metric": "kl", "value": float("nan")}]), model_name="x")
    assert not card.data.eval_results


def test_dataset_card_says_stand_in():
    card = render_dataset_card(
        "me/ranked",
        summary="ranked",
        source_model="SmolLM2",
        labeler="SentimentLabeler",
        dataset_is_standin=True,
        stats={"prompts": 256},
    )
    assert "offline-stand-in" in card.data.tags
    assert "not the paper's data" in card.text and "| prompts | 256 |" in card.text


def test_plots_from_log_history(tmp_path):
    history = [{"step": s, "objective/kl": 0.5 * s, "objective/scores": 0.1 * s, "loss": 1.0 / s} for s in range(1, 6)]
    assert plot_reward_vs_kl(history, tmp_path / "rk.png", "objective/scores", "objective/kl")
    assert plot_learning_curves(history, ["loss", "objective/kl"], tmp_path / "lc.png", "training")
    assert (tmp_path / "rk.png").read_bytes()[:4] == b"\x89PNG"
    assert not plot_learning_curves(history, ["missing"], tmp_path / "none.png", "x")
    assert not (tmp_path / "none.png").exists()


def test_set_card_section_inserts_before_citations_then_replaces(tmp_path):
    from rlhf_ext.cards import set_card_section

    card = tmp_path / "README.md"
    card.write_text("# m\n\n## Evaluation\n\nold\n\n## Citations\n\n- x\n")
    set_card_section(card, "Summarization comparison", "| a | b |\n|---|---|\n| 1 | 2 |")
    first = card.read_text()
    assert first.index("## Summarization comparison") < first.index("## Citations")
    set_card_section(card, "Summarization comparison", "new table")
    text = card.read_text()
    assert text.count("## Summarization comparison") == 1 and "new table" in text and "| 1 | 2 |" not in text
    assert text.endswith("## Citations\n\n- x\n") and "## Evaluation\n\nold" in text
    plain = tmp_path / "plain.md"
    plain.write_text("# m\n")
    set_card_section(plain, "Results", "r")
    assert plain.read_text() == "# m\n\n## Results\n\nr\n\n"


def test_update_model_card_adds_evaluation_plots_and_summary_once(tmp_path):
    from rlhf_ext.cards import update_model_card

    readme = tmp_path / "README.md"
    plots = [{"title": "learning curves", "path": "plots/learning_curves.png"}]
    render_model_card(_info(eval_results=[]), model_name="p", plots=plots).save(readme)
    rows = [
        {"metric": "win rate vs initial policy", "value": 0.75, "dataset": "review-openings"},
        {"metric": "KL to initial policy (nats)", "value": 3.25, "dataset": "review-openings"},
        {"metric": "reward-model score", "value": None},  # not measured: left out
    ]
    histogram = [{"title": "labeler scores", "path": "plots/labeler_scores.png"}]
    update_model_card(readme, summary="A tuned policy.", eval_results=rows, plots=histogram)
    once = readme.read_text()
    update_model_card(readme, summary="A tuned policy.", eval_results=rows, plots=histogram)
    assert readme.read_text() == once  # running the evaluation again changes nothing

    loaded = ModelCard.load(readme)
    assert {r.metric_name: r.metric_value for r in loaded.data.eval_results} == {
        "win rate vs initial policy": 0.75,
        "KL to initial policy (nats)": 3.25,
    }
    text = loaded.text
    assert text.index("# p\n\nA tuned policy.\n\n## Model details") >= 0
    evaluation = text.index("## Evaluation")
    assert text.index("## Hyperparameters") < evaluation < text.index("## Training curves")
    assert "| win rate vs initial policy | 0.75 | review-openings |" in text
    assert text.index("![labeler scores](plots/labeler_scores.png)") < text.index("## Training curves")
    assert "![learning curves](plots/learning_curves.png)" in text and "\n\n\n" not in text
    # A new value of the same metric replaces the old one.
    update_model_card(readme, eval_results=[{"metric": "win rate vs initial policy", "value": 0.5, "dataset": "d"}])
    results = {r.metric_name: r.metric_value for r in ModelCard.load(readme).data.eval_results}
    assert results == {"KL to initial policy (nats)": 3.25, "win rate vs initial policy": 0.5}


def test_copy_card_copies_the_card_and_its_plots_only(tmp_path):
    from rlhf_ext.cards import copy_card

    model = tmp_path / "ppo"
    (model / "plots").mkdir(parents=True)
    (model / "README.md").write_text("# card\n")
    (model / "plots" / "a.png").write_bytes(b"png")
    (model / "model.safetensors").write_bytes(b"weights")
    dest = tmp_path / "model_cards" / "policy"
    (dest / "plots").mkdir(parents=True)
    (dest / "plots" / "stale.png").write_bytes(b"old")
    assert copy_card(model, dest) == dest / "README.md"
    assert sorted(p.relative_to(dest).as_posix() for p in dest.rglob("*")) == ["README.md", "plots", "plots/a.png"]
