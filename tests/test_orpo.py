"""rlhf_ext.ORPOTrainer: parity with TRL's experimental ORPO on pairs, ranked lists by hand, masked rows, errors."""

from __future__ import annotations

import math

import pytest
import torch
from datasets import Dataset

from rlhf_ext.ranked_data import to_ranked

PAIRS = [
    {"prompt": "The movie was", "chosen": " wonderful and great.", "rejected": " dull."},
    {"prompt": "The team", "chosen": " won the final match.", "rejected": " lost, a boring waste of time."},
    {"prompt": "Scientists said", "chosen": " the storm would reach the coast.", "rejected": " bad."},
    {"prompt": "Once upon a time", "chosen": " there was a village.", "rejected": " the plot was dull."},
]
CHAT_PAIRS = [  # implicit prompt: the shared user turn
    {
        "chosen": [{"role": "user", "content": r["prompt"]}, {"role": "assistant", "content": r["chosen"]}],
        "rejected": [{"role": "user", "content": r["prompt"]}, {"role": "assistant", "content": r["rejected"]}],
    }
    for r in PAIRS
]
RANKED = [
    {"prompt": "The movie was", "completions": [" great.", " dull.", " wonderful and warm."], "ranks": [1, 2, 0]},
    {"prompt": "The team", "completions": [" won.", " lost."], "ranks": [0, 1]},
    {  # two completions tie for best, one tie further down
        "prompt": "Scientists said",
        "completions": [" the storm.", " heavy rain.", " bad.", " awful."],
        "ranks": [0, 0, 1, 1],
    },
]

TRL_KEYS = (
    "loss",
    "rewards/chosen",
    "rewards/rejected",
    "rewards/accuracies",
    "rewards/margins",
    "logps/chosen",
    "logps/rejected",
    "logits/chosen",
    "logits/rejected",
    "nll_loss",
    "log_odds_ratio",
    "log_odds_chosen",
    "grad_norm",
)


def _config(config_cls, tmp_path, **overrides):
    kwargs = dict(
        output_dir=str(tmp_path / "out"),
        use_cpu=True,
        bf16=False,
        report_to="none",
        per_device_train_batch_size=2,
        per_device_eval_batch_size=2,
        max_steps=3,
        logging_steps=1,
        learning_rate=1e-3,
        gradient_checkpointing=False,
        max_length=64,
        save_strategy="no",
        seed=0,
        disable_tqdm=True,
    )
    kwargs.update(overrides)
    return config_cls(**kwargs)


def _trainer(tiny_models, tiny_tokenizer, tmp_path, rows, eval_rows=None, **overrides):
    from transformers import AutoModelForCausalLM

    from rlhf_ext import ORPOConfig, ORPOTrainer

    return ORPOTrainer(
        model=AutoModelForCausalLM.from_pretrained(tiny_models.causal_lm),
        args=_config(ORPOConfig, tmp_path, **overrides),
        train_dataset=Dataset.from_list(rows),
        eval_dataset=Dataset.from_list(eval_rows) if eval_rows else None,
        processing_class=tiny_tokenizer,
    )


def _batch(trainer, indices):
    rows = [trainer.train_dataset[i] for i in indices]
    return trainer.data_collator(rows)


@pytest.mark.parametrize("shared_prompt", [False, True], ids=["unshared", "shared-prompt"])
@pytest.mark.parametrize("rows", [PAIRS, CHAT_PAIRS], ids=["text-explicit-prompt", "chat-implicit-prompt"])
def test_parity_with_trl_orpo_on_pairs(tiny_models, tiny_tokenizer, tmp_path, rows, shared_prompt):
    """Every logged value equals TRL's; with shared_prompt (the default) logits/chosen and logits/rejected average
    each sequence's own tokens where TRL averages over the batch's padded width, so they differ when rows are padded."""
    from transformers import AutoModelForCausalLM
    from trl.experimental.orpo import ORPOConfig as TRLConfig
    from trl.experimental.orpo import ORPOTrainer as TRLTrainer

    reference = TRLTrainer(
        model=AutoModelForCausalLM.from_pretrained(tiny_models.causal_lm),
        args=_config(TRLConfig, tmp_path / "trl"),
        train_dataset=Dataset.from_list(rows),
        eval_dataset=Dataset.from_list(rows),
        processing_class=tiny_tokenizer,
    )
    reference.train()
    reference_eval = reference.evaluate()
    ours = _trainer(tiny_models, tiny_tokenizer, tmp_path / "ours", rows, eval_rows=rows, shared_prompt=shared_prompt)
    ours.train()
    ours_eval = ours.evaluate()
    padded_width_metric = ("logits/chosen", "logits/rejected") if shared_prompt else ()

    steps_ref = [h for h in reference.state.log_history if "loss" in h]
    steps_ours = [h for h in ours.state.log_history if "loss" in h]
    assert len(steps_ref) == len(steps_ours) == 3
    for ref, got in zip(steps_ref, steps_ours):
        for key in TRL_KEYS:
            if key not in padded_width_metric:
                assert got[key] == pytest.approx(ref[key], rel=1e-5, abs=1e-5), key
        assert got["num_masked_rows"] == 0
    for key, value in reference_eval.items():
        if key.startswith("eval_") and not key.endswith(("runtime", "per_second", *padded_width_metric)):
            assert ours_eval[key] == pytest.approx(value, rel=1e-5, abs=1e-5), key
    # The text both trainers tokenize is the same (same token ids), under TRL's column names.
    ref_ids = reference.train_dataset[0]["chosen_input_ids"]
    assert ours.train_dataset[0]["chosen_input_ids"] == ref_ids
    for column in ("prompt_input_ids", "chosen_input_ids", "chosen_labels", "rejected_input_ids", "rejected_labels"):
        assert ours.train_dataset[column] == reference.train_dataset[column], column


def test_ranked_chat_rows_tokenize_like_pairs(tiny_models, tiny_tokenizer, tmp_path):
    prompt = [{"role": "user", "content": "The team"}]
    chosen = [{"role": "assistant", "content": "won the final."}]
    rejected = [{"role": "assistant", "content": "lost."}]
    pair = _trainer(
        tiny_models, tiny_tokenizer, tmp_path, [{"prompt": prompt, "chosen": chosen, "rejected": rejected}]
    )
    ranked = _trainer(
        tiny_models, tiny_tokenizer, tmp_path, [{"prompt": prompt, "completions": [rejected, chosen], "ranks": [1, 0]}]
    )
    a, b = pair.train_dataset[0], ranked.train_dataset[0]
    assert [a["chosen_input_ids"], a["rejected_input_ids"]] == b["completions_input_ids"][::-1]
    assert [a["chosen_labels"], a["rejected_labels"]] == b["completions_labels"][::-1]


def _hand_sequence_stats(model, input_ids, labels):
    """Mean completion-token log-prob, and per-token log-probs of the whole sequence, by one unbatched forward."""
    with torch.no_grad():
        logits = model(torch.tensor([input_ids])).logits[0, :-1].double()
    logps = torch.log_softmax(logits, -1).gather(-1, torch.tensor(input_ids[1:])[:, None])[:, 0]
    completion = torch.tensor(labels[1:]) != -100
    return logps[completion].mean().item(), logps, completion


def _hand_log_odds(logp: float) -> float:
    return logp - math.log(-math.expm1(logp))


@pytest.mark.parametrize("sft_target", ["prompt_and_completion", "completion"])
def test_ranked_loss_by_hand_mixed_k_one_forward(tiny_models, tiny_tokenizer, tmp_path, sft_target):
    # The unshared path, one row per completion (tests/test_shared_prompt.py: the packed path gives its numbers).
    trainer = _trainer(
        tiny_models, tiny_tokenizer, tmp_path, RANKED, sft_target=sft_target, beta=0.5, shared_prompt=False
    )
    model = trainer.model.eval()
    batch = _batch(trainer, range(len(RANKED)))

    calls = []
    handle = model.register_forward_hook(lambda m, args, kwargs_out: calls.append(args[0].shape[0]))
    with torch.no_grad():
        loss, metrics = trainer.get_batch_loss_metrics(model, batch)
    handle.remove()
    assert calls == [2 + 3 + 4]  # one forward over every completion of the batch

    or_terms, nll_num, nll_den, pair_stats = [], 0.0, 0.0, []
    for i, raw in enumerate(RANKED):
        row = trainer.train_dataset[i]
        stats = [
            _hand_sequence_stats(model, ids, lab)
            for ids, lab in zip(row["completions_input_ids"], row["completions_labels"])
        ]
        ranks = raw["ranks"]
        pairs = [(w, r) for w in range(len(ranks)) for r in range(len(ranks)) if ranks[w] < ranks[r]]
        terms = []
        for w, r in pairs:
            margin = _hand_log_odds(stats[w][0]) - _hand_log_odds(stats[r][0])
            terms.append(math.log1p(math.exp(-margin)))
            pair_stats.append((1 / (len(pairs) * len(RANKED)), stats[w][0], stats[r][0], margin))
        or_terms.append(sum(terms) / len(terms))
        best = [k for k in range(len(ranks)) if ranks[k] == min(ranks)]
        for k in best:  # tied winners share the prompt's SFT weight
            _, token_logps, completion = stats[k]
            mask = completion if sft_target == "completion" else torch.ones_like(completion)
            nll_num += -token_logps[mask].sum().item() / len(best)
            nll_den += mask.sum().item() / len(best)
    nll = nll_num / nll_den
    expected = nll + 0.5 * sum(or_terms) / len(or_terms)
    assert loss.item() == pytest.approx(expected, rel=1e-5)
    assert metrics["nll_loss"] == pytest.approx(nll, rel=1e-5)
    assert metrics["num_pairs"] == 3 + 1 + 4  # C(3,2), C(2,2), 2x2 across the tie
    assert metrics["logps/chosen"] == pytest.approx(sum(w * c for w, c, _, _ in pair_stats), rel=1e-5)
    assert metrics["logps/rejected"] == pytest.approx(sum(w * r for w, _, r, _ in pair_stats), rel=1e-5)
    assert metrics["rewards/margins"] == pytest.approx(0.5 * sum(w * (c - r) for w, c, r, _ in pair_stats), abs=2e-6)
    assert metrics["log_odds_chosen"] == pytest.approx(sum(w * m for w, _, _, m in pair_stats), abs=2e-6)
    assert metrics["rewards/accuracies"] == pytest.approx(sum(w * (c > r) for w, c, r, _ in pair_stats), abs=1e-6)


def test_paper_and_trl_sft_targets_differ_only_in_nll(tiny_models, tiny_tokenizer, tmp_path):
    trl_variant = _trainer(tiny_models, tiny_tokenizer, tmp_path / "a", PAIRS)
    paper = _trainer(tiny_models, tiny_tokenizer, tmp_path / "b", PAIRS, sft_target="completion")
    batch = _batch(trl_variant, range(4))
    with torch.no_grad():
        loss_a, m_a = trl_variant.get_batch_loss_metrics(trl_variant.model.eval(), batch)
        loss_b, m_b = paper.get_batch_loss_metrics(paper.model.eval(), batch)
    assert m_a["nll_loss"] != pytest.approx(m_b["nll_loss"], rel=1e-3)
    assert (loss_a - loss_b).item() == pytest.approx(m_a["nll_loss"] - m_b["nll_loss"], abs=1e-5)
    for key in ("log_odds_ratio", "logps/chosen", "rewards/margins"):
        assert m_a[key] == pytest.approx(m_b[key], rel=1e-6)


def test_default_sft_target_is_trls(tmp_path):
    from rlhf_ext import ORPOConfig

    assert _config(ORPOConfig, tmp_path).sft_target == "prompt_and_completion"
    with pytest.raises(ValueError, match="sft_target"):
        _config(ORPOConfig, tmp_path, sft_target="response")
    with pytest.raises(ValueError, match="odds_ratio_eps"):
        _config(ORPOConfig, tmp_path, odds_ratio_eps=0.0)


def test_all_masked_rows_are_excluded_and_counted(tiny_models, tiny_tokenizer, tmp_path):
    long_prompt = " ".join(["The council voted on Tuesday to approve the new budget."] * 6)
    rows = [
        {"prompt": "The movie was", "completions": [" great.", " dull.", " fine."], "ranks": [0, 2, 1]},
        {"prompt": long_prompt, "completions": [" yes.", " no."], "ranks": [0, 1]},  # prompt alone fills max_length
    ]
    trainer = _trainer(tiny_models, tiny_tokenizer, tmp_path, rows, max_length=24, per_device_train_batch_size=2)
    model = trainer.model.eval()
    assert all(not any(x != -100 for x in lab) for lab in trainer.train_dataset[1]["completions_labels"])
    with torch.no_grad():
        loss, metrics = trainer.get_batch_loss_metrics(model, _batch(trainer, [0, 1]))
        alone, alone_metrics = trainer.get_batch_loss_metrics(model, _batch(trainer, [0]))
        only_masked, masked_metrics = trainer.get_batch_loss_metrics(model, _batch(trainer, [1]))
    assert torch.isfinite(loss) and loss.item() == pytest.approx(alone.item(), rel=1e-5)
    assert trainer._num_masked_rows["train"] == 4  # 2 completions, counted twice (batches [0, 1] and [1])
    assert metrics["num_pairs"] == 3 and masked_metrics["num_pairs"] == 0
    assert only_masked.item() == 0.0 and all(math.isfinite(v) for v in masked_metrics.values())

    # Through training, with gradients: finite losses and the count in the logs.
    trainer._num_masked_rows["train"] = 0
    trainer.train()
    logged = [h for h in trainer.state.log_history if "loss" in h]
    assert all(math.isfinite(h["loss"]) and math.isfinite(h["grad_norm"]) for h in logged)
    assert sum(h["num_masked_rows"] for h in logged) > 0


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ({"prompt": "p", "completions": [" a"], "ranks": [0]}, "at least 2 completions"),
        ({"prompt": "p", "completions": [" a", " b"], "ranks": [0]}, "same length"),
        ({"prompt": "p", "completions": [" a", " b"], "ranks": [1, 1]}, "tied"),
        ({"prompt": "p", "completions": [" a", "  "], "ranks": [0, 1]}, "empty"),
        ({"prompt": "p", "completions": [" a", " b"], "ranks": [0.0, 1.0]}, "integers"),
        ({"prompt": "p", "chosen": " a"}, "rejected"),
    ],
)
def test_bad_rows_fail_before_loading_the_model(tmp_path, row, message):
    from rlhf_ext import ORPOConfig, ORPOTrainer

    good = {"prompt": "q", "completions": [" x", " y"], "ranks": [0, 1]}
    rows = [good, row] if "completions" in row else [{"prompt": "q", "chosen": " x", "rejected": " y"}, row]
    with pytest.raises(ValueError, match=message) as info:
        # The model path does not exist: the error must come from validation, before anything is loaded.
        ORPOTrainer(model=str(tmp_path / "missing-model"), args=_config(ORPOConfig, tmp_path), train_dataset=rows)
    assert "train_dataset row 1" in str(info.value)


def test_bad_eval_rows_name_the_eval_dataset(tiny_models, tiny_tokenizer, tmp_path):
    bad = [{"prompt": "p", "completions": [" a", " b"], "ranks": [2, 2]}]
    with pytest.raises(ValueError, match="eval_dataset row 0"):
        _trainer(tiny_models, tiny_tokenizer, tmp_path, RANKED, eval_rows=bad)


def test_training_raises_chosen_logps_and_log_odds(tiny_models, tiny_tokenizer, tmp_path):
    trainer = _trainer(
        tiny_models,
        tiny_tokenizer,
        tmp_path,
        RANKED * 2 + to_ranked(PAIRS),
        max_steps=30,
        learning_rate=5e-3,
        per_device_train_batch_size=10,
        logging_steps=5,
        beta=1.0,
        lr_scheduler_type="constant",
    )
    trainer.train()
    logged = [h for h in trainer.state.log_history if "loss" in h]
    first, last = logged[0], logged[-1]
    assert last["logps/chosen"] > first["logps/chosen"] + 0.5
    assert last["log_odds_chosen"] > first["log_odds_chosen"]
    assert last["log_odds_ratio"] > first["log_odds_ratio"]
    assert last["loss"] < first["loss"]


def test_logp_exactly_zero_gives_finite_loss_and_gradients(tiny_models, tiny_tokenizer, tmp_path):
    """A model certain of the chosen completions: fp32 log-softmax returns logp = 0 exactly (TRL: -inf odds)."""
    trainer = _trainer(tiny_models, tiny_tokenizer, tmp_path, PAIRS, shared_prompt=False)  # the hook edits rows
    model = trainer.model.train()
    batch = _batch(trainer, range(4))
    winners = batch["pair_winner"]

    def certain_of_winners(module, args, output):
        next_tokens = torch.nn.functional.one_hot(args[0][:, 1:], output.logits.shape[-1]).to(output.logits.dtype)
        boost = torch.zeros_like(output.logits)
        boost[winners, :-1] = 1e4 * next_tokens[winners]
        output.logits = output.logits + boost
        return output

    handle = model.register_forward_hook(certain_of_winners)
    try:
        loss, metrics = trainer.get_batch_loss_metrics(model, batch)
        loss.backward()
    finally:
        handle.remove()
    assert metrics["logps/chosen"] == 0.0  # the edge really is hit
    assert torch.isfinite(loss) and all(math.isfinite(v) for v in metrics.values())
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)
    assert any(g.abs().sum() > 0 for g in grads)  # the rejected side still learns


def test_docs_examples_run(tmp_path):
    import re
    from pathlib import Path

    doc = Path(__file__).resolve().parents[1] / "docs" / "orpo.md"
    blocks = re.findall(r"```python\n(.*?)```", doc.read_text(), re.S)
    code = (
        blocks[0]
        .replace('"/tmp/tiny"', repr(str(tmp_path / "tiny")))
        .replace('"/tmp/orpo"', repr(str(tmp_path / "o")))
    )
    namespace = {}
    exec(compile(code, str(doc), "exec"), namespace)  # noqa: S102 - our own documentation
    assert namespace["trainer"].state.global_step == 4
    namespace = {}
    exec(compile(blocks[1], str(doc), "exec"), namespace)  # noqa: S102
    assert torch.isfinite(namespace["per_example"]).all()


def test_lora_and_gradient_accumulation(tiny_models, tiny_tokenizer, tmp_path):
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM

    from rlhf_ext import ORPOConfig, ORPOTrainer

    trainer = ORPOTrainer(
        model=AutoModelForCausalLM.from_pretrained(tiny_models.causal_lm),
        args=_config(ORPOConfig, tmp_path, max_steps=2, gradient_accumulation_steps=2, per_device_train_batch_size=1),
        train_dataset=Dataset.from_list(RANKED),
        processing_class=tiny_tokenizer,
        peft_config=LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM"),
    )
    before = {n: p.detach().clone() for n, p in trainer.model.named_parameters() if "lora_B" in n}
    trainer.train()
    after = dict(trainer.model.named_parameters())
    assert any(not torch.equal(before[n], after[n]) for n in before)  # the adapters learned
    logged = [h for h in trainer.state.log_history if "loss" in h]
    assert len(logged) == 2 and all(math.isfinite(h["loss"]) for h in logged)


def test_import_guard_names_the_tested_trl(monkeypatch):
    import importlib
    import sys

    import rlhf_ext.orpo  # noqa: F401 - so that monkeypatch restores the working module afterwards

    monkeypatch.setitem(sys.modules, "trl.experimental.orpo", None)  # as if TRL dropped it
    monkeypatch.delitem(sys.modules, "rlhf_ext.orpo")
    with pytest.raises(ImportError, match=r"trl\.experimental\.orpo.*tested with trl 1\.16"):
        importlib.import_module("rlhf_ext.orpo")


def test_saved_model_has_rlhf_ext_card_with_curves(tiny_models, tiny_tokenizer, tmp_path):
    from huggingface_hub import ModelCard

    trainer = _trainer(tiny_models, tiny_tokenizer, tmp_path, PAIRS, max_steps=2)
    trainer.train()
    trainer.save_model()
    trainer.create_model_card()
    card = ModelCard.load(tmp_path / "out" / "README.md")
    assert "ORPO (odds-ratio preference optimisation" in card.text
    assert "Hong et al. 2024" in card.text and "| `beta` | 0.1 |" in card.text
    assert (tmp_path / "out" / "plots" / "learning_curves.png").exists()


def test_resume_from_checkpoint_matches_uninterrupted_run(tiny_models, tiny_tokenizer, tmp_path):
    """Run A trains 6 optimizer steps uninterrupted; run B (same config and max_steps, so the same linear LR schedule)
    is stopped after the step-2 checkpoint, and a new trainer with a freshly loaded model resumes from it. 7 shuffled
    ranked rows at 2 per step make 4 steps per epoch (the last one a single row), so the resumed run must skip the
    trained batches of epoch 0 and then reshuffle epoch 1 as run A did. Tolerance atol 1e-6, rtol 0: in fp32 on the
    same CPU the resumed run replays the same operations from the exactly stored weights and optimizer state; a real
    divergence moves the weights far more (steps 3-6 alone move them by > 1e-4, asserted)."""
    from rlhf_ext.testing import resume

    rows = RANKED + [
        {"prompt": r["prompt"], "completions": [r["chosen"], r["rejected"]], "ranks": [0, 1]} for r in PAIRS
    ]
    common = dict(max_steps=6, save_strategy="steps", save_steps=2)
    runs = resume.interrupt_and_resume(
        lambda folder: _trainer(tiny_models, tiny_tokenizer, folder, rows, **common), tmp_path, stop_after=2
    )
    assert runs.steps_run == [3, 4, 5, 6]  # only the remaining steps ran
    weight_diff = resume.assert_same_weights(runs.full.model, runs.resumed.model, atol=1e-6)
    moved = resume.max_weight_diff(resume.named_tensors(runs.full.model), resume.named_tensors(runs.interrupted.model))
    assert moved > 1e-4
    required = {"loss", "nll_loss", "log_odds_ratio", "rewards/accuracies", "learning_rate", "grad_norm"}
    diffs = resume.assert_same_step_metrics(runs.full, runs.resumed, range(3, 7), lambda step: required, atol=1e-6)
    print(f"max |weight diff| {weight_diff:.3g} (steps 3-6 moved {moved:.3g}), metric diffs {diffs}")


# ---------------------------------------------------------------------------------------------------------------
# The parent's contract: what code written for trl.experimental.orpo.ORPOTrainer passes and reads (TRL's own test
# file checks the same things against Hub models; these run on local tiny models in CI).
# ---------------------------------------------------------------------------------------------------------------


def test_dict_eval_datasets_keep_trl_columns_and_report_per_name(tiny_models, tiny_tokenizer, tmp_path):
    from datasets import DatasetDict
    from transformers import AutoModelForCausalLM

    from rlhf_ext import ORPOConfig, ORPOTrainer

    pairs, ranked = Dataset.from_list(PAIRS), Dataset.from_list(RANKED)
    for eval_dataset in ({"pairs": pairs, "ranked": ranked}, DatasetDict({"pairs": pairs, "ranked": ranked})):
        trainer = ORPOTrainer(
            model=AutoModelForCausalLM.from_pretrained(tiny_models.causal_lm),
            args=_config(ORPOConfig, tmp_path, max_steps=2, eval_strategy="steps", eval_steps=2),
            train_dataset=pairs,
            eval_dataset=eval_dataset,
            processing_class=tiny_tokenizer,
        )
        assert set(trainer.eval_dataset) == {"pairs", "ranked"}
        assert "chosen_input_ids" in trainer.eval_dataset["pairs"].column_names  # TRL's columns for pairs
        assert "completions_input_ids" in trainer.eval_dataset["ranked"].column_names  # ours for ranked rows
        assert trainer.eval_dataset["pairs"]["chosen_input_ids"] == trainer.train_dataset["chosen_input_ids"]
        trainer.train()
        evals = [h for h in trainer.state.log_history if any(k.startswith("eval_") for k in h)]
        assert [[k for k in ("eval_pairs_loss", "eval_ranked_loss") if k in h] for h in evals] == [
            ["eval_pairs_loss"],
            ["eval_ranked_loss"],
        ]
        assert all(math.isfinite(h["eval_log_odds_ratio"]) for h in evals)  # the parent's metric names
    metrics = trainer.evaluate({"again": PAIRS})  # raw rows passed to evaluate() are validated and tokenized
    assert math.isfinite(metrics["eval_again_loss"])
    with pytest.raises(ValueError, match=r"eval_dataset\['bad'\] row 0: .*tied"):
        trainer.evaluate({"bad": [{"prompt": "p", "completions": [" a", " b"], "ranks": [1, 1]}]})


def test_streaming_datasets_refused_with_a_clear_error(tmp_path):
    from rlhf_ext import ORPOConfig, ORPOTrainer

    stream = Dataset.from_list(PAIRS).to_iterable_dataset()
    with pytest.raises(ValueError, match="train_dataset is an IterableDataset; ORPOTrainer needs a map-style"):
        ORPOTrainer(model=str(tmp_path / "missing-model"), args=_config(ORPOConfig, tmp_path), train_dataset=stream)
    with pytest.raises(ValueError, match=r"eval_dataset\['b'\] is an IterableDataset"):
        ORPOTrainer(
            model=str(tmp_path / "missing-model"),
            args=_config(ORPOConfig, tmp_path),
            train_dataset=PAIRS,
            eval_dataset={"a": PAIRS, "b": stream},
        )


def _tiny_t5(tokenizer):
    from transformers import T5Config, T5ForConditionalGeneration

    torch.manual_seed(0)
    config = T5Config(
        vocab_size=len(tokenizer),
        d_model=32,
        d_kv=8,
        d_ff=64,
        num_layers=2,
        num_heads=4,
        dropout_rate=0.0,  # T5's attention applies it functionally, where TRL's disable_dropout does not reach
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        decoder_start_token_id=tokenizer.pad_token_id,
    )
    return T5ForConditionalGeneration(config)


def test_encoder_decoder_pairs_match_trl_and_ranked_rows_are_refused(tiny_tokenizer, tmp_path):
    import copy

    from trl.experimental.orpo import ORPOConfig as TRLConfig
    from trl.experimental.orpo import ORPOTrainer as TRLTrainer

    from rlhf_ext import ORPOConfig, ORPOTrainer

    model = _tiny_t5(tiny_tokenizer)
    overrides = dict(max_completion_length=32, learning_rate=1e-2)
    reference = TRLTrainer(
        model=copy.deepcopy(model),
        args=_config(TRLConfig, tmp_path / "trl", **overrides),
        train_dataset=Dataset.from_list(PAIRS),
        eval_dataset=Dataset.from_list(PAIRS),
        processing_class=tiny_tokenizer,
    )
    ours = ORPOTrainer(
        model=copy.deepcopy(model),
        args=_config(ORPOConfig, tmp_path / "ours", **overrides),
        train_dataset=Dataset.from_list(PAIRS),
        eval_dataset=Dataset.from_list(PAIRS),
        processing_class=tiny_tokenizer,
    )
    for column in ("prompt_input_ids", "chosen_labels", "rejected_labels"):
        assert ours.train_dataset[column] == reference.train_dataset[column], column
    before = {n: p.detach().clone() for n, p in ours.model.named_parameters()}
    reference.train()
    ours.train()
    steps_ref = [h for h in reference.state.log_history if "loss" in h]
    steps_ours = [h for h in ours.state.log_history if "loss" in h]
    assert len(steps_ref) == len(steps_ours) == 3
    for ref, got in zip(steps_ref, steps_ours):
        for key in TRL_KEYS:
            assert got[key] == pytest.approx(ref[key], rel=1e-5, abs=1e-5), key
    reference_eval, ours_eval = reference.evaluate(), ours.evaluate()
    for key in ("eval_loss", "eval_nll_loss", "eval_log_odds_ratio", "eval_rewards/accuracies"):
        assert ours_eval[key] == pytest.approx(reference_eval[key], rel=1e-5, abs=1e-5), key
    assert all(not torch.equal(p, before[n]) for n, p in ours.model.named_parameters() if p.abs().sum() > 0)

    with pytest.raises(ValueError, match="encoder-decoder models on chosen/rejected pairs only"):
        ORPOTrainer(
            model=copy.deepcopy(model),
            args=_config(ORPOConfig, tmp_path / "ranked", **overrides),
            train_dataset=Dataset.from_list(RANKED),
            processing_class=tiny_tokenizer,
        )
