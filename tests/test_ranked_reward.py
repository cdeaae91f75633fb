"""RankedRewardTrainer: loss against a hand computation, K = 2 parity with trl.RewardTrainer, one forward per
completion, bad-input errors, conversational rows, LoRA, eval metrics and an end-to-end ranking task."""

from __future__ import annotations

import logging
import math
import random

import pytest
import torch
from datasets import Dataset

from rlhf_ext import RankedRewardConfig, RankedRewardTrainer
from rlhf_ext.testing import synthetic

METRICS = {
    "accuracy",
    "margin",
    "num_pairs",
    "num_completions",
    "min_reward",
    "mean_reward",
    "max_reward",
    "kendall_tau",
    "top1_accuracy",
}

# Mixed K (2, 3, 4, 5) and ties.
RANKED = [
    {"prompt": "The movie", "completions": [" was great", " was bad"], "ranks": [1, 0]},
    {"prompt": "The team", "completions": [" won", " lost", " drew"], "ranks": [0, 2, 1]},
    {"prompt": "A story", "completions": [" good", " bad", " ugly", " kind"], "ranks": [0, 1, 1, 0]},
    {"prompt": "The city", "completions": [" voted", " won", " rain", " dark", " sad"], "ranks": [3, 0, 1, 1, 2]},
]


def config(tmp_path, **kwargs):
    defaults = dict(
        output_dir=str(tmp_path / "out"),
        use_cpu=True,
        bf16=False,
        report_to="none",
        save_strategy="no",
        logging_steps=1,
        gradient_checkpointing=False,
        disable_tqdm=True,
        seed=0,
    )
    return defaults | kwargs


def make_trainer(tiny_models, tiny_tokenizer, tmp_path, train, eval_dataset=None, **kwargs):
    args = RankedRewardConfig(**config(tmp_path, **kwargs))
    return RankedRewardTrainer(
        model=str(tiny_models.reward_model),
        args=args,
        train_dataset=train,
        eval_dataset=eval_dataset,
        processing_class=tiny_tokenizer,
    )


def score_one_by_one(model, tokenizer, prompt, completion):
    ids = tokenizer(prompt + completion + tokenizer.eos_token)["input_ids"]
    with torch.no_grad():
        return model(input_ids=torch.tensor([ids])).logits[0, 0].item()


@pytest.mark.parametrize("pair_weighting", ["prompt", "pair"])
def test_loss_matches_hand_computation_with_ties_mixed_k_margin_and_centering(
    tiny_models, tiny_tokenizer, tmp_path, pair_weighting
):
    rows = [dict(row, margin=0.1 * i) for i, row in enumerate(RANKED)]
    coef = 0.05
    trainer = make_trainer(
        tiny_models,
        tiny_tokenizer,
        tmp_path,
        Dataset.from_list(rows),
        pair_weighting=pair_weighting,
        center_rewards_coefficient=coef,
    )
    model = trainer.model.eval()
    batch = trainer.data_collator([trainer.train_dataset[i] for i in range(len(rows))])
    with torch.no_grad():
        loss = trainer.compute_loss(model, dict(batch)).item()

    per_prompt, all_pairs = [], []
    for row in rows:
        r = [score_one_by_one(model, tiny_tokenizer, row["prompt"], c) for c in row["completions"]]
        k = len(r)
        terms = [
            -math.log(1 / (1 + math.exp(-(r[w] - r[l_] - row["margin"])))) + coef * (r[w] + r[l_]) ** 2
            for w in range(k)
            for l_ in range(k)
            if row["ranks"][w] < row["ranks"][l_]
        ]
        per_prompt.append(sum(terms) / len(terms))
        all_pairs.extend(terms)
    expected = sum(per_prompt) / len(per_prompt) if pair_weighting == "prompt" else sum(all_pairs) / len(all_pairs)
    assert len(all_pairs) == 1 + 3 + 4 + 9
    assert loss == pytest.approx(expected, abs=1e-5)
    metrics = trainer._metrics["eval"]
    assert metrics["num_pairs"] == [17.0] and metrics["num_completions"] == [14.0]
    assert METRICS <= set(metrics)


def pairwise_rows(kind):
    words = ["good", "bad", "great", "awful", "kind", "cruel", "bright", "dark", "happy", "sad"]
    rng = random.Random(0)
    rows = []
    for i in range(12):
        a, b = rng.sample(words, 2)
        if kind == "text":
            rows.append({"prompt": f"Story {i}:", "chosen": f" a {a} end", "rejected": f" the {b}", "margin": i / 10})
        else:
            user = {"role": "user", "content": f"Story {i}?"}
            rows.append(
                {
                    "chosen": [user, {"role": "assistant", "content": f"A {a} end."}],
                    "rejected": [user, {"role": "assistant", "content": f"The {b}."}],
                }
            )
    return Dataset.from_list(rows)


@pytest.mark.parametrize("kind", ["text", "conversational"])
def test_k2_parity_with_trl_reward_trainer(tiny_models, tiny_tokenizer, tmp_path, kind):
    from trl import RewardConfig, RewardTrainer

    data = pairwise_rows(kind)
    common = config(
        tmp_path, per_device_train_batch_size=4, max_steps=4, center_rewards_coefficient=0.01, learning_rate=1e-3
    )
    ref = RewardTrainer(
        model=str(tiny_models.reward_model),
        args=RewardConfig(**common),
        train_dataset=data,
        eval_dataset=data,
        processing_class=tiny_tokenizer,
    )
    ours = RankedRewardTrainer(
        model=str(tiny_models.reward_model),
        args=RankedRewardConfig(**common),
        train_dataset=data,
        eval_dataset=data,
        processing_class=tiny_tokenizer,
    )
    for trainer in (ref, ours):
        trainer.train()
    ref_logs = [h for h in ref.state.log_history if "loss" in h]
    our_logs = [h for h in ours.state.log_history if "loss" in h]
    assert len(ref_logs) == len(our_logs) == 4
    for a, b in zip(ref_logs, our_logs):
        for key in ("loss", "accuracy", "margin", "mean_reward", "min_reward", "max_reward"):
            assert b[key] == pytest.approx(a[key], abs=1e-5), key
    ref_eval, our_eval = ref.evaluate(), ours.evaluate()
    for key in ("eval_loss", "eval_accuracy", "eval_margin"):
        assert our_eval[key] == pytest.approx(ref_eval[key], abs=1e-5), key
    assert our_eval["eval_num_pairs"] == pytest.approx(our_eval["eval_num_completions"] / 2)


def test_one_forward_per_batch_and_one_row_per_completion(tiny_models, tiny_tokenizer, tmp_path):
    trainer = make_trainer(
        tiny_models, tiny_tokenizer, tmp_path, Dataset.from_list(RANKED), per_device_train_batch_size=4, max_steps=1
    )
    calls = []
    handle = trainer.model.register_forward_pre_hook(
        lambda module, args, kwargs: calls.append(kwargs["input_ids"].shape[0]), with_kwargs=True
    )
    trainer.train()
    handle.remove()
    assert calls == [sum(len(r["completions"]) for r in RANKED)]  # one call, 14 rows for 17 pairs


BAD_ROWS = [
    ({"prompt": "Q", "completions": ["a"], "ranks": [0]}, "at least 2 completions", 2),
    (
        {"prompt": "Q", "completions": ["a", "b", "c"], "ranks": [0, 1]},
        "'ranks' has 2 entries but 'completions' has 3",
        2,
    ),
    ({"prompt": "Q", "completions": ["a", "b"], "ranks": [2, 2]}, "all 2 completions are tied", 2),
    ({"prompt": "Q", "completions": ["a", ""], "ranks": [0, 1]}, "completion 1 is empty", 2),
    # Arrow types a column once: one float rank makes every row's ranks floats, so row 0 is the first bad row.
    (
        {"prompt": "Q", "completions": ["a", "b"], "ranks": [0, 0.5]},
        r"rank 0 is 0.0 \(float\); ranks must be integers",
        0,
    ),
    ({"prompt": "Q", "completions": ["a", "b"], "ranks": [False, True]}, r"rank 0 is False \(bool\)", 0),
]


@pytest.mark.parametrize("bad, message, row", BAD_ROWS)
def test_bad_rows_raise_in_init_naming_the_row(tiny_models, tiny_tokenizer, tmp_path, bad, message, row):
    good = {"prompt": "P", "completions": ["x", "y", "z"], "ranks": [0, 1, 2]}
    rows = [good, good, {**good, **bad}] if row == 2 else [{**good, **bad}]
    with pytest.raises(ValueError, match=f"train_dataset row {row}: .*{message}"):
        make_trainer(tiny_models, tiny_tokenizer, tmp_path, Dataset.from_list(rows))
    with pytest.raises(ValueError, match=f"eval_dataset row {row}: .*{message}"):
        make_trainer(
            tiny_models, tiny_tokenizer, tmp_path, Dataset.from_list([good]), eval_dataset=Dataset.from_list(rows)
        )


def test_other_bad_inputs_raise_in_init(tiny_models, tiny_tokenizer, tmp_path):
    # The data is checked before the model is loaded: a missing model path would otherwise fail first.
    with pytest.raises(ValueError, match="train_dataset row 0: all 2 completions are tied"):
        RankedRewardTrainer(
            model=str(tmp_path / "no-such-model"),
            args=RankedRewardConfig(**config(tmp_path)),
            train_dataset=Dataset.from_list([{"prompt": "Q", "completions": ["a", "b"], "ranks": [1, 1]}]),
        )
    with pytest.raises(ValueError, match=r"train_dataset: missing columns"):
        make_trainer(tiny_models, tiny_tokenizer, tmp_path, Dataset.from_list([{"text": "hello"}]))
    with pytest.raises(ValueError, match=r"train_dataset row 0: missing column\(s\) \['rejected'\]"):
        make_trainer(tiny_models, tiny_tokenizer, tmp_path, Dataset.from_list([{"prompt": "Q", "chosen": "a"}]))
    with pytest.raises(ValueError, match="row 3: 5 completions, more than max_completions=4"):
        make_trainer(tiny_models, tiny_tokenizer, tmp_path, Dataset.from_list(RANKED), max_completions=4)
    with pytest.raises(ValueError, match="pair_weighting must be one of"):
        RankedRewardConfig(**config(tmp_path, pair_weighting="list"))
    with pytest.raises(ValueError, match="every row is longer than max_length=2"):
        make_trainer(tiny_models, tiny_tokenizer, tmp_path, Dataset.from_list(RANKED), max_length=2)


def test_long_rows_dropped_with_count_logged(tiny_models, tiny_tokenizer, tmp_path, caplog):
    long = {"prompt": "The movie", "completions": [" good" * 40, " bad"], "ranks": [0, 1]}
    with caplog.at_level(logging.WARNING, logger="rlhf_ext.ranked_reward"):
        trainer = make_trainer(
            tiny_models, tiny_tokenizer, tmp_path, Dataset.from_list(RANKED + [long]), max_length=20
        )
    assert len(trainer.train_dataset) == len(RANKED)
    assert "train: dropped 1 of 5 rows" in caplog.text


def test_conversational_ranked_rows_train_and_parse_cli(tiny_models, tiny_tokenizer, tmp_path):
    from transformers import HfArgumentParser

    rows = [
        {
            "prompt": [{"role": "user", "content": row["prompt"]}],
            "completions": [[{"role": "assistant", "content": c}] for c in row["completions"]],
            "ranks": row["ranks"],
        }
        for row in RANKED
    ]
    trainer = make_trainer(
        tiny_models, tiny_tokenizer, tmp_path, Dataset.from_list(rows), per_device_train_batch_size=2, max_steps=2
    )
    first = trainer.train_dataset[0]["completions_ids"][0]
    assert tiny_tokenizer.decode(first).startswith("<|im_start|>user\nThe movie<|im_end|>")
    trainer.train()
    logs = [h for h in trainer.state.log_history if "loss" in h]
    assert len(logs) == 2 and all(math.isfinite(h["loss"]) for h in logs)
    assert METRICS <= set(logs[0])

    (parsed,) = HfArgumentParser(RankedRewardConfig).parse_args_into_dataclasses(
        [
            "--output_dir",
            str(tmp_path),
            "--use_cpu",
            "--bf16",
            "false",
            "--pair_weighting",
            "pair",
            "--max_completions",
            "9",
        ]
    )
    assert parsed.pair_weighting == "pair" and parsed.max_completions == 9


def test_iterable_dataset_trains(tiny_models, tiny_tokenizer, tmp_path):
    data = Dataset.from_list(RANKED).to_iterable_dataset()
    trainer = make_trainer(tiny_models, tiny_tokenizer, tmp_path, data, per_device_train_batch_size=2, max_steps=2)
    trainer.train()
    assert trainer.state.global_step == 2
    # Rows past the first 100 are checked as they stream.
    good = {"prompt": "P", "completions": ["x", "y"], "ranks": [0, 1]}
    late = Dataset.from_list([good] * 100 + [{**good, "ranks": [1, 1]}]).to_iterable_dataset()
    trainer = make_trainer(tiny_models, tiny_tokenizer, tmp_path, late, per_device_train_batch_size=101, max_steps=1)
    with pytest.raises(ValueError, match="train row 100: all 2 completions are tied"):
        trainer.train()


def test_lora_trains_adapter_and_head_only(tiny_models, tiny_tokenizer, tmp_path):
    from peft import LoraConfig, PeftModel

    peft_config = LoraConfig(
        task_type="SEQ_CLS", r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], modules_to_save=["score"]
    )
    args = RankedRewardConfig(**config(tmp_path, per_device_train_batch_size=2, max_steps=2, learning_rate=1e-2))
    trainer = RankedRewardTrainer(
        model=str(tiny_models.reward_model),
        args=args,
        train_dataset=Dataset.from_list(RANKED),
        processing_class=tiny_tokenizer,
        peft_config=peft_config,
    )
    assert isinstance(trainer.model, PeftModel)
    frozen = {n: p.detach().clone() for n, p in trainer.model.named_parameters() if not p.requires_grad}
    lora = {n: p.detach().clone() for n, p in trainer.model.named_parameters() if "lora_" in n}
    trainer.train()
    params = dict(trainer.model.named_parameters())
    assert all(torch.equal(params[n], p) for n, p in frozen.items())
    assert any(not torch.equal(params[n], p) for n, p in lora.items())


def count_ranked(n, seed, k=4):
    """Six-word completions; the more 'good', the better (ties when counts are equal)."""
    return Dataset.from_list(synthetic.count_ranked(n, seed, k=k, length=6))


def test_end_to_end_learns_a_ranking_and_reports_eval_metrics(tiny_models, tiny_tokenizer, tmp_path):
    trainer = make_trainer(
        tiny_models,
        tiny_tokenizer,
        tmp_path,
        count_ranked(160, seed=0),
        eval_dataset=count_ranked(40, seed=1),
        per_device_train_batch_size=8,
        num_train_epochs=2,
        learning_rate=3e-3,
        logging_steps=10,
    )
    before = trainer.evaluate()
    trainer.train()
    after = trainer.evaluate()
    assert {f"eval_{m}" for m in METRICS} <= set(after)
    assert after["eval_accuracy"] > 0.8 > before["eval_accuracy"] - 0.1
    assert after["eval_kendall_tau"] > 0.5
    assert after["eval_top1_accuracy"] > 0.5
    assert after["eval_loss"] < before["eval_loss"]


def test_push_to_hub_publishes_card_and_model(local_hub, tiny_models, tiny_tokenizer, tmp_path):
    from huggingface_hub import HfApi, ModelCard
    from transformers import AutoModelForSequenceClassification

    args = RankedRewardConfig(
        **config(
            tmp_path,
            max_steps=2,
            per_device_train_batch_size=2,
            push_to_hub=True,
            hub_model_id="local-user/tiny-ranked-rm",
            hub_token=local_hub.token,
        )
    )
    trainer = RankedRewardTrainer(
        model=str(tiny_models.reward_model),
        args=args,
        train_dataset=Dataset.from_list(RANKED),
        processing_class=tiny_tokenizer,
    )
    trainer.train()
    trainer.push_to_hub()
    files = set(HfApi(token=local_hub.token).list_repo_files("local-user/tiny-ranked-rm"))
    assert {"README.md", "model.safetensors", "config.json"} <= files
    card = ModelCard.load("local-user/tiny-ranked-rm", token=local_hub.token)
    assert "ranked lists" in card.text
    reloaded = AutoModelForSequenceClassification.from_pretrained("local-user/tiny-ranked-rm", token=local_hub.token)
    assert reloaded.config.num_labels == 1


def test_docs_example_runs(tmp_path):
    import re
    from pathlib import Path

    doc = Path(__file__).resolve().parents[1] / "docs" / "ranked_reward.md"
    code = re.findall(r"```python\n(.*?)```", doc.read_text(), re.S)[0]
    code = code.replace('"/tmp/tiny"', repr(str(tmp_path / "tiny"))).replace('"/tmp/rm"', repr(str(tmp_path / "rm")))
    namespace = {}
    exec(compile(code, str(doc), "exec"), namespace)  # noqa: S102 - our own documentation
    assert namespace["trainer"].state.global_step == 4


def test_pretokenized_rows_ranked_and_trl_columns(tiny_models, tiny_tokenizer, tmp_path):
    ranked = Dataset.from_list([{"completions_ids": [[5, 6, 2], [7, 2], [8, 9, 10, 2]], "ranks": [1, 0, 2]}] * 4)
    trainer = make_trainer(tiny_models, tiny_tokenizer, tmp_path, ranked, per_device_train_batch_size=2, max_steps=1)
    trainer.train()
    assert trainer.state.log_history[0]["num_pairs"] == 6
    pairs = Dataset.from_list([{"chosen_ids": [5, 6, 2], "rejected_ids": [7, 2]}] * 4)
    trainer = make_trainer(tiny_models, tiny_tokenizer, tmp_path, pairs, per_device_train_batch_size=2, max_steps=1)
    assert trainer.train_dataset[0]["ranks"] == [0, 1]
    bad = Dataset.from_list([{"completions_ids": [[5, 2], [6, 2]], "ranks": [0, 0]}])
    with pytest.raises(ValueError, match="train_dataset row 0: all 2 completions are tied"):
        make_trainer(tiny_models, tiny_tokenizer, tmp_path, bad)


def test_resume_from_checkpoint_matches_uninterrupted_run(tiny_models, tiny_tokenizer, tmp_path):
    """Run A trains 4 optimizer steps uninterrupted; run B (same config, same max_steps, so the same linear LR
    schedule) is stopped after the step-2 checkpoint, and a new trainer with a freshly loaded model resumes from it.
    The data (12 rows, 2 x 2 accumulated rows per step: 3 steps per epoch) is shuffled, so resuming must skip the
    trained batches of epoch 0 in the same order and then reshuffle epoch 1 as run A did. Weights are compared with
    atol 1e-6, rtol 0: on the same CPU in fp32 the resumed run replays the same operations on weights and optimizer
    state that the checkpoint stores exactly, so it should agree to the last bit; a real divergence (a skipped or
    repeated batch, a lost optimizer or scheduler state) moves weights by orders of magnitude more (steps 3-4 alone
    move them by > 1e-4, asserted below)."""
    from rlhf_ext.testing import resume

    data = count_ranked(12, seed=3)
    common = dict(
        per_device_train_batch_size=2,
        gradient_accumulation_steps=2,
        max_steps=4,
        learning_rate=3e-3,
        pair_weighting="pair",
        save_strategy="steps",
        save_steps=2,
    )
    runs = resume.interrupt_and_resume(
        lambda folder: make_trainer(tiny_models, tiny_tokenizer, folder, data, **common), tmp_path, stop_after=2
    )
    assert runs.steps_run == [3, 4]  # only the remaining steps ran
    weight_diff = resume.assert_same_weights(runs.full.model, runs.resumed.model, atol=1e-6)
    moved = resume.max_weight_diff(resume.named_tensors(runs.full.model), resume.named_tensors(runs.interrupted.model))
    assert moved > 1e-4  # steps 3-4 changed the weights far beyond the tolerance
    diffs = resume.assert_same_step_metrics(
        runs.full,
        runs.resumed,
        [3, 4],
        required=lambda step: {"loss", "accuracy", "learning_rate", "grad_norm", "num_tokens"},
        atol=1e-6,
    )
    print(f"max |weight diff| {weight_diff:.3g} (steps 3-4 moved {moved:.3g}), metric diffs {diffs}")
