"""The summarization data layer (rlhf_ext.summarization), ranked-to-pairs conversion, policy export, RM scoring."""

from __future__ import annotations

import pytest
from datasets import Dataset, DatasetDict

from rlhf_ext.ranked_data import ranked_to_pairs
from rlhf_ext.summarization import PROMPT_TEMPLATE, preference_dataset, summarization_dataset


def test_offline_tldr_and_cnndm_share_the_prompt_completion_format():
    tldr = summarization_dataset("offline-tldr", "test", max_article_words=20)
    cnndm = summarization_dataset("offline-cnndm", "test", max_article_words=20)
    assert tldr.column_names == cnndm.column_names == ["prompt", "completion"]
    for row in (tldr[0], cnndm[0]):
        assert row["prompt"].startswith("ARTICLE: ") and row["prompt"].endswith("\n\nTL;DR:")
        article = row["prompt"][len("ARTICLE: ") : -len("\n\nTL;DR:")]
        assert len(article.split()) == 20
        assert row["completion"].startswith(" ") and row["completion"].strip()
    # the same articles, the same split: the CNN/DM stand-in's highlight is the TL;DR stand-in's reference
    assert sorted(tldr["completion"]) == sorted(cnndm["completion"])


def test_article_highlights_folders_are_converted_and_bad_columns_named(tmp_path):
    DatasetDict(
        {"test": Dataset.from_dict({"article": ["Rain  fell.\nRoads closed."], "highlights": ["Rain."], "id": ["a"]})}
    ).save_to_disk(tmp_path / "cnndm")
    row = summarization_dataset(str(tmp_path / "cnndm"), "test")[0]
    assert row == {"prompt": PROMPT_TEMPLATE.format(article="Rain fell. Roads closed."), "completion": " Rain."}
    Dataset.from_dict({"text": ["x"]}).save_to_disk(tmp_path / "plain")
    with pytest.raises(ValueError, match=r"plain.*'prompt'/'completion'.*'article'/'highlights'.*\['text'\]"):
        summarization_dataset(str(tmp_path / "plain"), "train")


def test_preference_dataset_keeps_trainer_columns_and_names_problems(tmp_path):
    ranked = Dataset.from_dict(
        {"prompt": ["p"], "completions": [["a", "b"]], "ranks": [[1, 0]], "scores": [[0.1, 0.2]]}
    )
    DatasetDict({"train": ranked, "test": ranked}).save_to_disk(tmp_path / "labels")
    assert preference_dataset(str(tmp_path / "labels"), "test").column_names == ["prompt", "completions", "ranks"]
    with pytest.raises(ValueError, match=r"has splits \['test', 'train'\], not 'validation'"):
        preference_dataset(str(tmp_path / "labels"), "validation")
    Dataset.from_dict({"prompt": ["p"], "answer": ["a"]}).save_to_disk(tmp_path / "odd")
    with pytest.raises(ValueError, match=r"ranked columns .* or pairwise columns .*\['answer', 'prompt'\]"):
        preference_dataset(str(tmp_path / "odd"))


def test_ranked_to_pairs_all_and_best_vs_worst():
    rows = Dataset.from_list([{"prompt": "p1", "completions": ["a", "b", "c", "d"], "ranks": [2, 0, 1, 1]}])  # b>c=d>a
    pairs = [(r["prompt"], r["chosen"], r["rejected"]) for r in ranked_to_pairs(rows, "all")]
    assert sorted(pairs) == sorted(
        [("p1", "b", "a"), ("p1", "c", "a"), ("p1", "d", "a"), ("p1", "b", "c"), ("p1", "b", "d")]
    )
    assert [(r["chosen"], r["rejected"]) for r in ranked_to_pairs(rows, "best_vs_worst")] == [("b", "a")]
    with pytest.raises(ValueError, match="pairing must be one of"):
        ranked_to_pairs(rows, "random")
    tied = Dataset.from_list([{"prompt": "p", "completions": ["a", "b"], "ranks": [0, 0]}])
    with pytest.raises(ValueError, match="row 0: all 2 completions are tied"):
        ranked_to_pairs(tied)
    pairwise = Dataset.from_list([{"prompt": "p", "chosen": "a", "rejected": "b"}])
    assert list(ranked_to_pairs(pairwise)) == [{"prompt": "p", "chosen": "a", "rejected": "b"}]


def test_reward_model_scores_keep_the_completion_when_truncating(tiny_models):
    """Left truncation: a long prompt loses its start, never the completion being judged (scored in the reward
    model's training format: the completion ends with EOS)."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from rlhf_ext.sampling import reward_model_scores

    prompt, completion = "The movie was " * 60, " wonderful and great."
    got = reward_model_scores(str(tiny_models.reward_model), [prompt], [completion], max_length=16)
    tok = AutoTokenizer.from_pretrained(tiny_models.reward_model)
    ids = tok(prompt + completion + tok.eos_token).input_ids[-16:]
    rm = AutoModelForSequenceClassification.from_pretrained(tiny_models.reward_model).eval()
    with torch.no_grad():
        want = rm(input_ids=torch.tensor([ids])).logits[0, 0].item()
    assert got == pytest.approx([want], abs=1e-5)
    with pytest.raises(ValueError, match="2 prompts but 1 completions"):
        reward_model_scores(str(tiny_models.reward_model), ["a", "b"], ["c"])


def test_save_policy_merges_lora_into_a_plain_model(tiny_models, tiny_tokenizer, tmp_path):
    import torch
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM
    from trl import SFTConfig, SFTTrainer

    from rlhf_ext.export import save_policy

    data = Dataset.from_dict({"prompt": ["The movie was"] * 4, "completion": [" great."] * 4})
    args = SFTConfig(
        output_dir=str(tmp_path / "run"), use_cpu=True, bf16=False, report_to="none", max_steps=2,
        per_device_train_batch_size=2, learning_rate=1e-2, disable_tqdm=True, save_strategy="no",
    )  # fmt: skip
    lora = LoraConfig(r=4, lora_alpha=8, target_modules="all-linear", task_type="CAUSAL_LM")
    trainer = SFTTrainer(
        model=str(tiny_models.causal_lm), args=args, train_dataset=data, processing_class=tiny_tokenizer,
        peft_config=lora,
    )  # fmt: skip
    trainer.train()
    probe = torch.tensor([tiny_tokenizer("The movie was great.").input_ids])
    with torch.no_grad():
        expected = trainer.model(input_ids=probe).logits
    out = save_policy(trainer, tiny_tokenizer, str(tmp_path / "export"))
    files = {p.name for p in (tmp_path / "export").iterdir()}
    assert "model.safetensors" in files and "adapter_config.json" not in files and "tokenizer.json" in files
    plain = AutoModelForCausalLM.from_pretrained(out).eval()
    with torch.no_grad():
        assert torch.allclose(plain(input_ids=probe).logits, expected, atol=1e-4)
