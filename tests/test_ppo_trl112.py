"""TRL <= 1.12 users switch by changing the import: every PPOConfig field and PPOTrainer argument of TRL 1.12 maps or
raises as docs/ppo.md's migration table says, the call shapes of TRL 1.12's examples/scripts/ppo/ppo.py and
ppo_tldr.py train on tiny local stand-ins, and dropout is off by default (a deviation from TRL 1.12 and Huang et al.;
the position ids of the scoring forwards are tested in test_value_head.py)."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
import torch
from datasets import Dataset, DatasetDict
from ppo_helpers import make_args

from rlhf_ext import PPOConfig, PPOTrainer

DOCS = Path(__file__).resolve().parents[1] / "docs" / "ppo.md"
TEXTS = ["The movie was", "A story about", "The team won", "Scientists said", "Once upon a time", "The council voted"]
# TRL 1.12's PPOConfig fields beyond TrainingArguments (trl/experimental/ppo/ppo_config.py of the 1.12.0 wheel), plus
# exp_name (TRL <= 0.2x), and PPOTrainer's constructor arguments.
TRL112_FIELDS = (
    "learning_rate dataset_num_proc num_mini_batches total_episodes local_rollout_forward_batch_size "
    "num_sample_generations response_length stop_token stop_token_id temperature missing_eos_penalty sft_model_path "
    "world_size num_total_batches micro_batch_size local_batch_size batch_size local_mini_batch_size mini_batch_size "
    "push_to_hub reward_model_path model_adapter_name ref_adapter_name num_ppo_epochs whiten_rewards kl_coef "
    "kl_estimator cliprange vf_coef cliprange_value gamma lam ds3_gather_for_generation exp_name"
).split()
TRL112_ARGUMENTS = (
    "args processing_class model ref_model reward_model train_dataset value_model data_collator eval_dataset "
    "optimizers callbacks peft_config"
).split()


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def args_for(tmp_path, **overrides):
    """The shared tiny PPO config, without sample tables; ``response_length`` replaces ``max_completion_length``."""
    kwargs = {"num_sample_generations": 0, **overrides}
    if "response_length" in overrides and "max_completion_length" not in overrides:
        kwargs["max_completion_length"] = PPOConfig.__dataclass_fields__["max_completion_length"].default
    return make_args(tmp_path, **kwargs)


def reward_len(completion_ids, **kwargs):
    return [float(len(ids)) for ids in completion_ids]


def weights(model) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def moved(before: dict, model) -> float:
    after = model.state_dict()
    return max((after[k] - v).abs().max().item() for k, v in before.items())


# ------------------------------------------------------------------------------------------------------------------
# Config field names
# ------------------------------------------------------------------------------------------------------------------


def test_every_trl112_name_is_a_field_or_documented():
    import dataclasses

    fields = {f.name for f in dataclasses.fields(PPOConfig)}
    computed = {"world_size", "num_total_batches", "micro_batch_size", "local_batch_size", "batch_size"}
    computed |= {"local_mini_batch_size", "mini_batch_size"}
    assert set(TRL112_FIELDS) - computed <= fields
    table = DOCS.read_text().split("## Migrating from TRL 1.12")[1].split("\n## ")[0]
    for name in TRL112_FIELDS + TRL112_ARGUMENTS:
        assert re.search(rf"^\| `{name}`", table, re.M), f"{name} missing from the migration table"


def test_docs_attribute_the_trunk_head_to_ziegler_et_al():
    """lm-human-preferences' policy.py builds the policy with scalar_heads=['value']: Ziegler et al.'s released code
    has the value head on the policy trunk. The docs once said it trained a separate critic."""
    text = " ".join(DOCS.read_text().split())
    trunk = text.split("**a head on the policy trunk**")[1].split("**a separate critic**")[0]
    assert "Ziegler et al.'s released code does (lm-human-preferences' `policy.py`" in trunk
    critic = text.split("**a separate critic**")[1].split("What a critic copied")[0]
    assert "Ziegler" not in critic


def test_batch_names_translate_into_grpo_minibatching(tmp_path):
    # TRL 1.12: a batch is 4 x 2 = 8 episodes per device, split into 2 minibatches; 20 episodes -> 3 batches, each
    # trained for 2 epochs x 2 minibatches = 4 optimizer steps.
    args = args_for(
        tmp_path, max_steps=-1, gradient_accumulation_steps=2, num_mini_batches=2, num_ppo_epochs=2, total_episodes=20
    )
    assert (args.steps_per_generation, args.gradient_accumulation_steps, args.generation_batch_size) == (2, 1, 8)
    assert args.max_steps == 3 * 4
    assert (args.batch_size, args.local_batch_size, args.mini_batch_size, args.micro_batch_size) == (8, 8, 4, 4)
    assert args.num_total_batches == 3 and args.world_size == 1
    one = args_for(tmp_path, max_steps=-1, gradient_accumulation_steps=2, total_episodes=16, num_ppo_epochs=4)
    assert (one.steps_per_generation, one.gradient_accumulation_steps, one.max_steps) == (2, 2, 2 * 4)


@pytest.mark.parametrize(
    "overrides,expected",
    [
        ({"response_length": 7}, {"max_completion_length": 7}),
        ({"stop_token": "eos"}, {"stop_token": "eos"}),
        ({"exp_name": "my-run"}, {"run_name": "my-run"}),
        ({"sft_model_path": "some/sft", "reward_model_path": "some/rm"}, {"sft_model_path": "some/sft"}),
        ({"dataset_num_proc": 2, "local_rollout_forward_batch_size": 2}, {"local_rollout_forward_batch_size": 2}),
        ({"missing_eos_penalty": 1.0, "kl_estimator": "k3", "whiten_rewards": True}, {"kl_estimator": "k3"}),
        ({"kl_coef": 0.02, "cliprange": 0.1, "vf_coef": 0.5, "cliprange_value": 0.3}, {"beta": 0.02, "epsilon": 0.1}),
        ({"gamma": 0.9, "lam": 0.9, "num_ppo_epochs": 3, "temperature": 0.7}, {"num_iterations": 3}),
        ({"ds3_gather_for_generation": False, "push_to_hub": False}, {"ds3_gather_for_generation": False}),
    ],
)
def test_trl112_names_keep_their_meaning(tmp_path, overrides, expected):
    args = args_for(tmp_path, **overrides)
    for name, value in expected.items():
        assert getattr(args, name) == value


@pytest.mark.parametrize(
    "overrides,match",
    [
        ({"response_length": 7, "max_completion_length": 9}, "response_length"),
        ({"gradient_accumulation_steps": 2, "num_mini_batches": 3}, "must divide"),
        ({"num_mini_batches": 1, "steps_per_generation": 2}, "steps_per_generation"),
        ({"total_episodes": 16, "max_steps": 4}, "total_episodes"),
        ({"stop_token": "bos"}, "allowed values"),
        ({"stop_token": "eos", "stop_token_id": 5}, "both"),
        ({"model_adapter_name": "train"}, "ref_model"),
        ({"ref_adapter_name": "sft"}, "'ref'"),
    ],
)
def test_trl112_names_that_raise(tmp_path, overrides, match):
    with pytest.raises(ValueError, match=match):
        args_for(tmp_path, **overrides)


@pytest.mark.parametrize("name", ["world_size", "batch_size", "local_mini_batch_size", "num_total_batches"])
def test_computed_batch_sizes_are_refused_as_arguments(tmp_path, name):
    with pytest.raises(TypeError, match="per_device_train_batch_size, gradient_accumulation_steps, num_mini_batches"):
        args_for(tmp_path, **{name: 8})


# ------------------------------------------------------------------------------------------------------------------
# Constructor arguments
# ------------------------------------------------------------------------------------------------------------------


def _from_config(tiny_models, seed=0):
    from transformers import AutoConfig, AutoModelForCausalLM

    config = AutoConfig.from_pretrained(tiny_models.causal_lm)
    config._name_or_path = ""  # a config built in memory, as for a model made from scratch
    torch.manual_seed(seed)
    return AutoModelForCausalLM.from_config(config)


@pytest.mark.parametrize("with_ref", [False, True])
def test_in_memory_policy_trains_with_kl_with_or_without_ref_model(tiny_models, tok, tmp_path, with_ref):
    """A policy built with from_config has no path; GRPO would reload its reference from '' and fail."""
    policy = _from_config(tiny_models)
    assert policy.config._name_or_path == ""
    ref = _from_config(tiny_models, seed=1) if with_ref else None
    expected_ref = weights(ref if with_ref else policy)
    trainer = PPOTrainer(
        model=policy,
        ref_model=ref,
        reward_funcs=reward_len,
        args=args_for(tmp_path, kl_coef=0.1, max_steps=2),
        train_dataset=Dataset.from_dict({"prompt": TEXTS}),
        processing_class=tok,
    )
    assert trainer.ref_model is not None and trainer.ref_model is not policy
    assert trainer.ref_model is ref if with_ref else True
    before = weights(policy)
    trainer.train()
    assert moved(before, policy) > 0
    ref_now = trainer.accelerator.unwrap_model(trainer.ref_model).state_dict()
    assert all(torch.equal(ref_now[k], v) for k, v in expected_ref.items())
    kls = [row["objective/kl"] for row in trainer.state.log_history if "objective/kl" in row]
    # A copy of the policy starts at KL 0 (to float32 rounding: the sampler's log-probs come from generate()'s
    # cached forward, the reference's from a full one), another model does not.
    assert kls and (abs(kls[0]) > 1e-4) == with_ref


def test_reference_of_a_policy_trained_in_memory_is_its_current_weights(tiny_models, tok, tmp_path):
    from transformers import AutoModelForCausalLM

    policy = AutoModelForCausalLM.from_pretrained(tiny_models.causal_lm)
    with torch.no_grad():  # "trained" since it was loaded: its path no longer holds these weights
        policy.lm_head.weight.add_(0.5)
    trainer = PPOTrainer(
        model=policy,
        reward_funcs=reward_len,
        args=args_for(tmp_path, kl_coef=0.1),
        train_dataset=Dataset.from_dict({"prompt": TEXTS}),
        processing_class=tok,
    )
    ref = trainer.accelerator.unwrap_model(trainer.ref_model)
    assert torch.equal(ref.lm_head.weight, policy.lm_head.weight)


def test_ref_model_as_a_path_and_errors(tiny_models, tok, tmp_path):
    from transformers import DataCollatorForLanguageModeling, DataCollatorWithPadding

    common = dict(reward_funcs=reward_len, train_dataset=Dataset.from_dict({"prompt": TEXTS}), processing_class=tok)
    policy = _from_config(tiny_models)
    trainer = PPOTrainer(
        model=policy,
        ref_model=str(tiny_models.causal_lm),
        args=args_for(tmp_path, kl_coef=0.1),
        data_collator=DataCollatorWithPadding(tok),  # TRL 1.12's default collator: accepted (padding is ours)
        **common,
    )
    assert trainer.accelerator.unwrap_model(trainer.ref_model).config._name_or_path == str(tiny_models.causal_lm)
    with pytest.raises(ValueError, match="cannot be the same object"):
        PPOTrainer(model=policy, ref_model=policy, args=args_for(tmp_path, kl_coef=0.1), **common)
    with pytest.raises(ValueError, match="DataCollatorWithPadding"):
        PPOTrainer(
            model=policy,
            args=args_for(tmp_path),
            data_collator=DataCollatorForLanguageModeling(tok, mlm=False),
            **common,
        )
    with pytest.raises(TypeError, match="by keyword"):
        PPOTrainer(args_for(tmp_path), tok, policy)  # TRL 1.12's positional order


def test_sft_and_reward_model_paths_and_reward_model_argument(tiny_models, tok, tmp_path):
    """model=None loads args.sft_model_path, no reward loads args.reward_model_path; reward_model is one more reward
    function, summed with reward_funcs."""
    from transformers import AutoModelForSequenceClassification

    args = args_for(
        tmp_path, sft_model_path=str(tiny_models.causal_lm), reward_model_path=str(tiny_models.reward_model)
    )
    trainer = PPOTrainer(args=args, train_dataset=Dataset.from_dict({"prompt": TEXTS}), processing_class=tok)
    assert trainer.model.config._name_or_path == str(tiny_models.causal_lm)
    assert [type(f).__name__ for f in trainer.reward_funcs] == ["LlamaForSequenceClassification"]

    rm = AutoModelForSequenceClassification.from_pretrained(tiny_models.reward_model)
    trainer = PPOTrainer(
        model=str(tiny_models.causal_lm),
        reward_funcs=reward_len,
        reward_model=rm,
        args=args_for(tmp_path),
        train_dataset=Dataset.from_dict({"prompt": TEXTS}),
        processing_class=tok,
    )
    assert trainer.reward_funcs[0] is reward_len and len(trainer.reward_funcs) == 2
    rows = [{"prompt": p} for p in TEXTS[:2]]
    completions = [" great", " bad"]
    ids = [tok(c, add_special_tokens=False)["input_ids"] for c in completions]
    rewards = trainer._calculate_rewards(rows, TEXTS[:2], completions, ids)
    assert rewards[:, 0].tolist() == [float(len(i)) for i in ids]
    from rlhf_ext.reward_scoring import score_texts

    assert rewards[:, 1].tolist() == pytest.approx(score_texts(rm, tok, TEXTS[:2], completions).tolist(), abs=1e-6)


@pytest.mark.parametrize("kind", ["text", "conversational", "input_ids"])
def test_prompt_datasets(tiny_models, tok, tmp_path, kind):
    if kind == "text":
        data = Dataset.from_dict({"prompt": TEXTS})
    elif kind == "conversational":
        data = Dataset.from_dict({"prompt": [[{"role": "user", "content": t}] for t in TEXTS]})
    else:  # TRL 1.12's examples: pre-tokenized, no prompt column
        data = Dataset.from_dict({"input_ids": [tok(t)["input_ids"] for t in TEXTS]})
    trainer = PPOTrainer(
        model=str(tiny_models.causal_lm),
        reward_funcs=reward_len,
        args=args_for(tmp_path),
        train_dataset=data,
        processing_class=tok,
    )
    seen = []
    generate = trainer._generate_single_turn

    def spy(prompt_ids, *args, **kwargs):
        seen.extend(list(p) for p in prompt_ids)
        return generate(prompt_ids, *args, **kwargs)

    trainer._generate_single_turn = spy
    trainer.train()
    assert len(seen) == 4
    if kind == "input_ids":  # the policy is prompted with exactly the given token ids
        assert all(ids in [tok(t)["input_ids"] for t in TEXTS] for ids in seen)
        assert trainer.train_dataset[0]["prompt"] == tok.decode(tok(TEXTS[0])["input_ids"], skip_special_tokens=True)
    if kind == "conversational":
        assert all(tok.decode(ids).startswith("<|im_start|>user\n") for ids in seen)


def test_prompt_dataset_errors(tiny_models, tok, tmp_path):
    common = dict(model=str(tiny_models.causal_lm), reward_funcs=reward_len, args=args_for(tmp_path))
    with pytest.raises(ValueError, match="row 1: `input_ids` must be a non-empty list"):
        PPOTrainer(**common, train_dataset=Dataset.from_dict({"input_ids": [[5, 6], []]}), processing_class=tok)
    with pytest.raises(ValueError, match="train_dataset must have a 'prompt' column"):  # nor input_ids
        PPOTrainer(**common, train_dataset=Dataset.from_dict({"query": TEXTS}), processing_class=tok)


@pytest.mark.parametrize("from_sampler", [False, True])
def test_local_rollout_forward_batch_size_sets_the_no_grad_forwards(tiny_models, tok, tmp_path, from_sampler):
    args = args_for(
        tmp_path,
        per_device_train_batch_size=4,
        local_rollout_forward_batch_size=2,
        kl_coef=0.1,
        logprobs_from_sampler=from_sampler,
    )
    trainer = PPOTrainer(
        model=str(tiny_models.causal_lm),
        reward_funcs=str(tiny_models.reward_model),
        args=args,
        train_dataset=Dataset.from_dict({"prompt": TEXTS}),
        processing_class=tok,
    )
    rows, reward_model = [], trainer.reward_funcs[0]

    def record(module, args, kwargs):  # scoring forwards only (generate() calls the policy without a fused head)
        if kwargs.get("fused_lm_head") or module is reward_model:
            rows.append((torch.is_grad_enabled(), kwargs["input_ids"].size(0)))

    for model in (trainer.model, trainer.ref_model, reward_model):
        model.register_forward_pre_hook(record, with_kwargs=True)
    trainer.train()
    # reference, old log-probs/values (unless the sampler's are used), reward model: 2 x 2 rows each
    assert [n for grad, n in rows if not grad] == [2] * (4 if from_sampler else 6)
    assert [n for grad, n in rows if grad] == [4]  # the optimisation pass keeps per_device_train_batch_size


def test_generate_completions_and_num_sample_generations(tiny_models, tok, tmp_path):
    args = args_for(tmp_path, max_steps=4, num_sample_generations=2, per_device_eval_batch_size=2)
    trainer = PPOTrainer(
        model=str(tiny_models.causal_lm),
        reward_funcs=reward_len,
        args=args,
        train_dataset=Dataset.from_dict({"prompt": TEXTS}),
        eval_dataset=Dataset.from_dict({"prompt": TEXTS[:4]}),
        processing_class=tok,
    )
    calls = []
    generate = trainer.generate_completions
    trainer.generate_completions = lambda sampling=False: calls.append((trainer.state.global_step, sampling))
    trainer.train()
    assert calls == [(1, True), (3, True)]  # twice, evenly over the 4 steps
    rows = generate()
    assert [r["query"] for r in rows] == TEXTS[:4]
    assert all(1 <= r["score"] <= args.max_completion_length for r in rows)  # reward_len: tokens per completion
    assert len(generate(sampling=True)) == 2  # the first eval batch only


# ------------------------------------------------------------------------------------------------------------------
# The call shapes of TRL 1.12's examples/scripts/ppo/ppo.py and ppo_tldr.py, with only the import changed
# ------------------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def standins(tmp_path_factory):
    from rlhf_ext.testing.tiny_models import build_pythia_like_standins

    return build_pythia_like_standins(tmp_path_factory.mktemp("pythia-like"))


def _run_trl112_example(script: str, cli: list[str]):
    """The steps of TRL 1.12's example script ``script`` (read from the TRL repository at 1.12), on local data: parse
    (ScriptArguments, PPOConfig, ModelConfig), left-padding tokenizer with an added [PAD], value and reward models
    loaded from reward_model_path, policy (and reference without PEFT) from sft_model_path, prompts pre-tokenized to
    input_ids, PPOTrainer with TRL 1.12's keyword arguments, train, save_model, generate_completions."""
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, AutoTokenizer, HfArgumentParser
    from trl import ModelConfig, ScriptArguments, get_peft_config

    parser = HfArgumentParser((ScriptArguments, PPOConfig, ModelConfig))
    script_args, training_args, model_args = parser.parse_args_into_dataclasses(args=cli)
    shutil.rmtree(training_args.output_dir, ignore_errors=True)
    dtype = model_args.dtype if model_args.dtype in ["auto", None] else getattr(torch, model_args.dtype)
    model_kwargs = dict(revision=model_args.model_revision, attn_implementation=model_args.attn_implementation)
    model_kwargs["dtype"] = dtype
    tokenizer = AutoTokenizer.from_pretrained(model_args.model_name_or_path, padding_side="left")
    tokenizer.add_special_tokens({"pad_token": "[PAD]"})
    value_model = AutoModelForSequenceClassification.from_pretrained(
        training_args.reward_model_path, num_labels=1, **model_kwargs
    )
    reward_model = AutoModelForSequenceClassification.from_pretrained(
        training_args.reward_model_path, num_labels=1, **model_kwargs
    )
    policy = AutoModelForCausalLM.from_pretrained(training_args.sft_model_path, **model_kwargs)
    peft_config = get_peft_config(model_args)
    ref_policy = None if peft_config else AutoModelForCausalLM.from_pretrained(training_args.sft_model_path)

    # stand-ins for the Hub datasets (trl-internal-testing/descriptiveness-sentiment-trl-style, trl-lib/tldr): prompts
    data = DatasetDict({"train": Dataset.from_dict({"prompt": TEXTS * 4}), "validation": Dataset.from_dict({"prompt": TEXTS[:4]})})  # fmt: skip
    if script == "ppo.py":
        dataset = data["train"]
        train_dataset = dataset.select(range(len(dataset) - 4))
        eval_dataset = dataset.select(range(len(dataset) - 4, len(dataset)))

        def prepare(ds):
            tokenize = lambda e: {"input_ids": tokenizer(e["prompt"], padding=False)["input_ids"]}  # noqa: E731
            return ds.map(tokenize, batched=True, remove_columns=ds.column_names)

        train_dataset, eval_dataset = prepare(train_dataset), prepare(eval_dataset)
    else:  # ppo_tldr.py
        train_dataset = data[script_args.dataset_train_split]
        eval_dataset = data[script_args.dataset_test_split] if training_args.eval_strategy != "no" else None

        def prepare(ds):
            def tokenize(e):
                ids = tokenizer(e["prompt"], padding=False)["input_ids"]
                return {"input_ids": ids, "lengths": len(ids)}

            return ds.map(tokenize, remove_columns=ds.column_names).filter(lambda x: x["lengths"] <= 512)

        train_dataset = prepare(train_dataset)
        eval_dataset = prepare(eval_dataset) if eval_dataset is not None else None
        assert train_dataset[0]["input_ids"][-1] != tokenizer.eos_token_id

    policy_before, value_before = weights(policy), weights(value_model)
    trainer = PPOTrainer(
        args=training_args,
        processing_class=tokenizer,
        model=policy,
        ref_model=ref_policy,
        reward_model=reward_model,
        value_model=value_model,
        train_dataset=train_dataset,
        eval_dataset=eval_dataset,
        peft_config=peft_config,
    )
    trainer.train()
    trainer.save_model(training_args.output_dir)
    rows = trainer.generate_completions()
    return trainer, rows, moved(policy_before, policy), moved(value_before, value_model)


def _common_cli(standins, out):
    return [
        "--dataset_name", "local", "--output_dir", str(out), "--model_name_or_path", str(standins.causal_lm),
        "--sft_model_path", str(standins.causal_lm), "--reward_model_path", str(standins.reward_model),
        "--missing_eos_penalty", "1.0", "--use_cpu", "--bf16", "false", "--report_to", "none",
        "--learning_rate", "1e-3", "--logging_steps", "1", "--save_strategy", "no", "--disable_tqdm", "true",
    ]  # fmt: skip


def test_trl112_ppo_py_call_shape(standins, tmp_path):
    # ppo.py's ZeRO-3 command, scaled down: --num_ppo_epochs 1 --num_mini_batches 1 --per_device_train_batch_size 1
    # --gradient_accumulation_steps 16 --local_rollout_forward_batch_size 1 (here 2 x 2, 8 episodes)
    cli = _common_cli(standins, tmp_path / "ppo") + [
        "--dataset_train_split", "descriptiveness", "--num_ppo_epochs", "1", "--num_mini_batches", "1",
        "--per_device_train_batch_size", "2", "--gradient_accumulation_steps", "2", "--total_episodes", "8",
        "--local_rollout_forward_batch_size", "1", "--response_length", "6",
    ]  # fmt: skip
    trainer, rows, policy_moved, critic_moved = _run_trl112_example("ppo.py", cli)
    assert trainer.state.global_step == 2  # 8 episodes / 4 per batch x 1 epoch x 1 minibatch
    assert policy_moved > 0 and critic_moved > 0
    assert trainer.critic is not None  # value_model became the separate critic
    out = tmp_path / "ppo"
    assert (out / "model.safetensors").is_file() and (out / "value_model" / "model.safetensors").is_file()
    assert len(rows) == 4 and {"query", "model response", "score"} <= set(rows[0])


def test_trl112_ppo_tldr_py_call_shape(standins, tmp_path):
    cli = _common_cli(standins, tmp_path / "tldr") + [
        "--dataset_test_split", "validation", "--per_device_train_batch_size", "4", "--gradient_accumulation_steps",
        "2", "--total_episodes", "16", "--stop_token", "eos", "--response_length", "8", "--eval_strategy", "steps",
        "--eval_steps", "100", "--num_ppo_epochs", "2", "--num_mini_batches", "2",
    ]  # fmt: skip
    trainer, rows, policy_moved, critic_moved = _run_trl112_example("ppo_tldr.py", cli)
    assert trainer.state.global_step == 8  # 16 episodes / 8 per batch x 2 epochs x 2 minibatches
    assert policy_moved > 0 and critic_moved > 0
    assert any("eval_objective/scores" in row for row in trainer.state.log_history)  # eval_strategy steps: evaluated
    assert len(rows) == 4


# ------------------------------------------------------------------------------------------------------------------
# Deviations from TRL 1.12 and Huang et al.: dropout (position ids: test_value_head.py)
# ------------------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_gpt2(tmp_path_factory):
    from rlhf_ext.testing.tiny_models import build_tiny_gpt2

    return build_tiny_gpt2(tmp_path_factory.mktemp("gpt2"))


def test_dropout_is_off_in_policy_reference_reward_and_value_models(tiny_gpt2, tok, tmp_path):
    """A GPT-2 with dropout 0.1 everywhere (as ppo_sentiment_paper.yaml's GPT-2): PPOConfig's default turns it off in
    all four models, so the ratio of identical weights is exactly 1."""
    from transformers import AutoModelForCausalLM

    assert PPOConfig(output_dir=str(tmp_path), use_cpu=True, bf16=False).disable_dropout
    trainer = PPOTrainer(
        model=AutoModelForCausalLM.from_pretrained(tiny_gpt2.causal_lm),  # an object: rlhf_ext copies the reference
        reward_funcs=str(tiny_gpt2.reward_model),
        args=args_for(tmp_path, kl_coef=0.1, value_model_path=str(tiny_gpt2.reward_model)),
        train_dataset=Dataset.from_dict({"prompt": TEXTS}),
        processing_class=tok,
    )
    models = {"policy": trainer.model, "reference": trainer.ref_model, "reward": trainer.reward_funcs[0]}
    models["value"] = trainer.critic
    for name, model in models.items():
        dropouts = [m for m in model.modules() if isinstance(m, torch.nn.Dropout)]
        assert dropouts and all(m.p == 0 for m in dropouts), name
    trainer.model.train()
    ids = torch.tensor([tok("The movie was great")["input_ids"]])
    with torch.no_grad():
        assert torch.equal(trainer.model(input_ids=ids).logits, trainer.model(input_ids=ids).logits)
