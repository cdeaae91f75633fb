"""RankedRewardTrainer: loss against a hand computation, K = 2 parity with trl.RewardTrainer, one forward per
completion, bad-input errors, conversational rows, LoRA, eval metrics and an end-to-end ranking task."""

from __future__ import annotations

import json
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
    # The unshared path (tests/test_shared_prompt.py: with shared prompts, one packed row per prompt).
    trainer = make_trainer(
        tiny_models,
        tiny_tokenizer,
        tmp_path,
        Dataset.from_list(RANKED),
        per_device_train_batch_size=4,
        max_steps=1,
        shared_prompt=False,
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


# ---------------------------------------------------------------------------------------------------------------
# The parent's contract: what code written for trl.RewardTrainer reads and passes (TRL's own test file checks the same
# things against Hub models; these run on the local tiny models in CI).
# ---------------------------------------------------------------------------------------------------------------

# A small template that renders tools and tool calls (the tiny tokenizer's own template shows `content` only).
TOOL_TEMPLATE = (
    "{% if tools %}<|im_start|>system\nTools:{% for tool in tools %} {{ tool['function']['name'] }}{% endfor %}"
    "<|im_end|>\n{% endif %}"
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
    "{% if message['tool_calls'] %}{% for call in message['tool_calls'] %}call {{ call['function']['name'] }}"
    "{% endfor %}{% else %}{{ message['content'] }}{% endif %}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
TOOLS = [{"type": "function", "function": {"name": "start_timer", "parameters": {"type": "object"}}}]


def toolcall_pairs(n=4):
    """TRL's tool-calling preference rows: an assistant turn with `tool_calls` and no `content` key at all (as TRL's
    `toolcall` dataset stores its messages in a Json column), a tool turn, and `tools` as a JSON string."""
    from datasets import Features, Json, List, Value

    call = {"type": "function", "function": {"name": "start_timer", "arguments": {"duration": 600}}}
    rows = [
        {
            "prompt": [{"role": "user", "content": f"Set a timer for {i + 10} minutes."}],
            "chosen": [
                {"role": "assistant", "tool_calls": [call]},
                {"role": "tool", "name": "start_timer", "content": "600"},
                {"role": "assistant", "content": "The timer is set."},
            ],
            "rejected": [{"role": "assistant", "content": "I cannot."}],
            "tools": json.dumps(TOOLS),
        }
        for i in range(n)
    ]
    message = {"role": Value("string"), "content": Value("string")}
    features = Features(
        {"prompt": List(message), "chosen": List(Json()), "rejected": List(Json()), "tools": Value("string")}
    )
    return Dataset.from_list(rows, features=features)


def test_tool_call_conversations_tokenize_like_trl_and_train(tiny_models, tmp_path):
    from transformers import AutoTokenizer
    from trl import RewardConfig, RewardTrainer

    tokenizer = AutoTokenizer.from_pretrained(tiny_models.tokenizer)
    tokenizer.chat_template = TOOL_TEMPLATE
    data = toolcall_pairs()
    assert "content" not in data[0]["chosen"][0]
    common = config(tmp_path, per_device_train_batch_size=2, max_steps=2)
    ref = RewardTrainer(
        model=str(tiny_models.reward_model),
        args=RewardConfig(**common),
        train_dataset=data,
        processing_class=tokenizer,
    )
    ours = RankedRewardTrainer(
        model=str(tiny_models.reward_model),
        args=RankedRewardConfig(**common),
        train_dataset=data,
        processing_class=tokenizer,
    )
    for column in ("chosen_ids", "rejected_ids"):
        assert ours.train_dataset[column] == ref.train_dataset[column], column
    text = tokenizer.decode(ours.train_dataset[0]["chosen_ids"])
    assert "Tools: start_timer" in text and "<|im_start|>assistant\ncall start_timer<|im_end|>" in text
    # `tools` stored as a list of dicts (Arrow fills missing keys with None) tokenizes the same.
    as_list = data.map(lambda row: {"tools": json.loads(row["tools"])})
    again = RankedRewardTrainer(
        model=str(tiny_models.reward_model),
        args=RankedRewardConfig(**common),
        train_dataset=as_list,
        processing_class=tokenizer,
    )
    assert again.train_dataset["chosen_ids"] == ours.train_dataset["chosen_ids"]
    ours.train()
    logs = [h for h in ours.state.log_history if "loss" in h]
    assert len(logs) == 2 and all(math.isfinite(h["loss"]) for h in logs)

    # A turn without content is valid only when it calls a tool.
    rows = data.to_list()
    rows[1]["chosen"] = [{"role": "assistant", "tool_calls": []}]
    with pytest.raises(ValueError, match=r"train_dataset row 1: 'chosen' message 0 has no 'content'"):
        RankedRewardTrainer(
            model=str(tiny_models.reward_model),
            args=RankedRewardConfig(**common),
            train_dataset=Dataset.from_list(rows, features=data.features),
            processing_class=tokenizer,
        )


def test_processed_pairs_keep_trl_columns_ranked_rows_keep_ours(tiny_models, tiny_tokenizer, tmp_path):
    from datasets import DatasetDict
    from trl import RewardConfig, RewardTrainer

    pairs = pairwise_rows("text")
    common = config(tmp_path)
    ref = RewardTrainer(
        model=str(tiny_models.reward_model),
        args=RewardConfig(**common),
        train_dataset=pairs,
        processing_class=tiny_tokenizer,
    )
    evals = {
        "dataset": pairs,
        "iterable": pairs.to_iterable_dataset(),
        "dict": {"a": pairs, "b": pairs.to_iterable_dataset()},
        "dataset_dict": DatasetDict({"a": pairs, "b": pairs}),
    }
    for kind, eval_dataset in evals.items():
        ours = make_trainer(tiny_models, tiny_tokenizer, tmp_path, pairs, eval_dataset=eval_dataset)
        # TRL's columns (text, margin, chosen_ids, rejected_ids) are all there, with TRL's token ids.
        assert set(ref.train_dataset.column_names) <= set(ours.train_dataset.column_names)
        for column in ("chosen_ids", "rejected_ids"):
            assert ours.train_dataset[column] == ref.train_dataset[column], column
        assert ours.train_dataset["ranks"] == [[0, 1]] * len(pairs)
        splits = ours.eval_dataset if isinstance(ours.eval_dataset, dict) else {None: ours.eval_dataset}
        assert set(splits) == ({"a", "b"} if "dict" in kind else {None}), kind
        for split in splits.values():
            first = next(iter(split))
            assert first["chosen_ids"] == ref.train_dataset[0]["chosen_ids"], kind
            assert "completions_ids" not in first, kind

    ranked = make_trainer(tiny_models, tiny_tokenizer, tmp_path, Dataset.from_list(RANKED))
    assert {"completions_ids", "ranks"} <= set(ranked.train_dataset.column_names)
    assert "chosen_ids" not in ranked.train_dataset.column_names
    assert [len(ids) for ids in ranked.train_dataset["completions_ids"]] == [2, 3, 4, 5]


def test_legacy_pretokenized_columns_warn_like_trl_and_are_renamed(tiny_models, tiny_tokenizer, tmp_path, recwarn):
    legacy = Dataset.from_list([{"chosen_input_ids": [5, 6, 2], "rejected_input_ids": [7, 2]}] * 4)
    with pytest.warns(FutureWarning, match=r"will not be supported in v1.*rename them to `chosen_ids`/`rejected_ids`"):
        trainer = make_trainer(
            tiny_models, tiny_tokenizer, tmp_path, legacy, per_device_train_batch_size=2, max_steps=1
        )
    columns = trainer.train_dataset.column_names
    assert {"chosen_ids", "rejected_ids"} <= set(columns)
    assert not {"chosen_input_ids", "rejected_input_ids"} & set(columns)
    trainer.train()
    assert trainer.state.log_history[0]["num_pairs"] == 2
    # TRL's current names: no deprecation warning.
    recwarn.clear()
    current = Dataset.from_list([{"chosen_ids": [5, 6, 2], "rejected_ids": [7, 2]}] * 4)
    make_trainer(tiny_models, tiny_tokenizer, tmp_path, current)
    assert not [w for w in recwarn if "chosen_input_ids" in str(w.message)]
    empty = Dataset.from_list([{"chosen_input_ids": [5, 2], "rejected_input_ids": []}])
    with pytest.raises(ValueError, match=r"train_dataset row 0: empty 'rejected_input_ids'"):
        make_trainer(tiny_models, tiny_tokenizer, tmp_path, empty)


def test_collator_reads_trl_pairs_and_ranked_rows():
    from rlhf_ext.ranked_reward import DataCollatorForRanking

    batch = DataCollatorForRanking(pad_token_id=0)(
        [
            {"chosen_ids": [1, 2, 3], "rejected_ids": [4, 5]},
            {"completions_ids": [[6], [7, 8], [9]], "ranks": [1, 0, 2]},
        ]
    )
    assert batch["input_ids"].tolist() == [[1, 2, 3], [4, 5, 0], [6, 0, 0], [7, 8, 0], [9, 0, 0]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1], [1, 1, 0], [1, 0, 0], [1, 1, 0], [1, 0, 0]]
    assert batch["ranks"].tolist() == [0, 1, 1, 0, 2]
    assert batch["pair_winner"].tolist() == [0, 3, 2, 3]
    assert batch["pair_loser"].tolist() == [1, 2, 4, 4]
    assert batch["pair_prompt"].tolist() == [0, 1, 1, 1]


def test_fp16_divergence_stops_where_trl_trains_on_nan(tiny_models, tiny_tokenizer, tmp_path):
    """TRL's test_train_model_dtype setting (fp16 weights, learning_rate=0.1) on the tiny model: trl.RewardTrainer's
    own loss turns NaN too, and its Trainer trains on (logging a finite `train_loss`, as `logging_nan_inf_filter`
    hides the NaN steps) into NaN weights; ours stops at that same step with NonFiniteLossError. So our stop is not an
    artefact of our loss's precision (ours upcasts the rewards to float32; TRL's loss stays in fp16)."""
    from trl import RewardConfig, RewardTrainer

    from rlhf_ext.nonfinite import NonFiniteLossError

    common = config(
        tmp_path,
        model_init_kwargs={"dtype": torch.float16},
        learning_rate=0.1,
        per_device_train_batch_size=4,
        max_steps=8,
    )
    losses = []

    class Recording(RewardTrainer):
        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            loss = super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
            losses.append(loss.detach().float().item())
            return loss

    data = pairwise_rows("text")
    ref = Recording(
        model=str(tiny_models.reward_model),
        args=RewardConfig(**common),
        train_dataset=data,
        processing_class=tiny_tokenizer,
    )
    assert ref.model.dtype == torch.float16
    ref.train()
    assert len(losses) == 8 and ref.state.global_step == 8
    first_bad = next(step for step, loss in enumerate(losses, start=1) if not math.isfinite(loss))
    assert first_bad > 1 and not any(math.isfinite(loss) for loss in losses[first_bad - 1 :])
    assert math.isfinite(ref.state.log_history[-1]["train_loss"])  # what a user of TRL's trainer sees
    assert not all(torch.isfinite(p).all() for p in ref.model.parameters())  # what the model holds

    ours = RankedRewardTrainer(
        model=str(tiny_models.reward_model),
        args=RankedRewardConfig(**common),
        train_dataset=data,
        processing_class=tiny_tokenizer,
    )
    with pytest.raises(NonFiniteLossError, match=rf"'pairwise' loss at optimizer step {first_bad} "):
        ours.train()
    # fp16 activations overflowed in that step's forward; the weights our stop leaves in memory are finite.
    assert all(torch.isfinite(p).all() for p in ours.model.parameters())
