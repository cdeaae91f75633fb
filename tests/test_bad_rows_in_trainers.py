"""Issue 8, property-based: a trainer given one malformed row, anywhere in its train or eval data, raises a
``ValueError`` naming the dataset, the row and the problem from ``__init__``, before any model forward and before
anything is written to ``output_dir``. The rows come from tests/row_strategies.py; the models are the session's tiny
ones, and each trainer is fed the same data format as its users would (``datasets.Dataset``; ORPO also takes lists).
"""

from __future__ import annotations

import contextlib
import re
import tempfile
from pathlib import Path

import pytest
import torch
from datasets import Dataset
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from row_strategies import corrupted, pairwise_rows, preference_rows, prompt_rows, ranked_rows

# Few examples: each one builds a trainer config. Fixtures (tiny models, tmp_path) are shared by the examples.
TRAINER_PROPERTY = settings(
    max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
COMMON = dict(use_cpu=True, bf16=False, report_to="none", save_strategy="steps", save_steps=1, disable_tqdm=True)


@contextlib.contextmanager
def no_model_forward():
    """Any ``nn.Module`` call inside the block fails the test: validation must come before the first forward."""
    original = torch.nn.Module.__call__

    def forbidden(module, *args, **kwargs):
        raise AssertionError(f"{type(module).__name__} ran a forward before the data was validated")

    torch.nn.Module.__call__ = forbidden
    try:
        yield
    finally:
        torch.nn.Module.__call__ = original


def fresh_output_dir(tmp_path) -> Path:
    return Path(tempfile.mkdtemp(dir=tmp_path)) / "out"


def assert_nothing_written(output_dir: Path):
    assert not output_dir.exists() or not any(output_dir.iterdir()), sorted(output_dir.iterdir())


@st.composite
def datasets_with_one_bad_row(draw, kind_good, arrow):
    """``(split, index, problem, train_rows, eval_rows)``: one corrupted row at ``index`` of ``split``."""
    kind, good = draw(st.sampled_from(kind_good))
    goods = draw(st.lists(good, min_size=1, max_size=4))
    corruption, bad, problem = draw(corrupted(kind, good, arrow_only=arrow))
    index = draw(st.integers(0, len(goods)))
    with_bad = goods[:index] + [bad] + goods[index:]
    split = draw(st.sampled_from(["train_dataset", "eval_dataset"]))
    train, evaluation = (with_bad, None) if split == "train_dataset" else (goods, with_bad)
    return split, index, problem, corruption, train, evaluation


def _arrow_preference_shapes(draw):
    """Rows of one shape (Arrow types each column once): ranked or pairwise, text or messages."""
    conv = draw(st.booleans())
    explicit = draw(st.booleans())
    return [
        ("ranked", ranked_rows(conversational=conv, margin=False)),
        ("pairwise", pairwise_rows(conversational=conv, explicit_prompt=explicit, margin=False)),
    ]


def _check(info, split, index, problem, corruption):
    message = str(info.value)
    assert re.match(rf"{split} row {index}: {problem}", message), (corruption, message)


@TRAINER_PROPERTY
@given(data=st.data())
def test_ranked_reward_trainer_rejects_a_bad_row_in_init(tiny_models, tiny_tokenizer, tmp_path, data):
    from rlhf_ext import RankedRewardConfig, RankedRewardTrainer

    shapes = _arrow_preference_shapes(data.draw)
    split, index, problem, corruption, train, evaluation = data.draw(datasets_with_one_bad_row(shapes, arrow=True))
    output_dir = fresh_output_dir(tmp_path)
    with no_model_forward(), pytest.raises(ValueError) as info:
        RankedRewardTrainer(
            model=str(tiny_models.reward_model),
            args=RankedRewardConfig(output_dir=str(output_dir), **COMMON),
            train_dataset=Dataset.from_list(train),
            eval_dataset=None if evaluation is None else Dataset.from_list(evaluation),
            processing_class=tiny_tokenizer,
        )
    _check(info, split, index, problem, corruption)
    assert_nothing_written(output_dir)


@TRAINER_PROPERTY
@given(data=st.data(), as_list=st.booleans())
def test_orpo_trainer_rejects_a_bad_row_in_init(tiny_models, tiny_tokenizer, tmp_path, data, as_list):
    from rlhf_ext import ORPOConfig, ORPOTrainer

    if as_list:  # lists of dicts hold any corruption, and rows of every shape side by side
        shapes = [("ranked", ranked_rows()), ("pairwise", pairwise_rows())]
        goods_of_any_shape = data.draw(st.lists(preference_rows(), max_size=3))
    else:
        shapes, goods_of_any_shape = _arrow_preference_shapes(data.draw), []
    # ORPO also needs a conversational prompt to end with a turn to answer (TRL's apply_chat_template).
    shapes += [("chat_prompt", good) for _, good in shapes]
    split, index, problem, corruption, train, evaluation = data.draw(
        datasets_with_one_bad_row(shapes, arrow=not as_list)
    )
    if as_list:  # more rows after the bad one do not change which row is named
        train = train + (goods_of_any_shape if split == "train_dataset" else [])
    make = (lambda rows: rows) if as_list else Dataset.from_list
    output_dir = fresh_output_dir(tmp_path)
    with no_model_forward(), pytest.raises(ValueError) as info:
        ORPOTrainer(
            model=str(tiny_models.causal_lm),
            args=ORPOConfig(output_dir=str(output_dir), max_length=64, **COMMON),
            train_dataset=make(train),
            eval_dataset=None if evaluation is None else make(evaluation),
            processing_class=tiny_tokenizer,
        )
    _check(info, split, index, problem, corruption)
    assert_nothing_written(output_dir)


def constant_reward(completions, **kwargs):
    return [1.0] * len(completions)


@pytest.mark.parametrize("trainer", ["ppo", "rloo"])
@TRAINER_PROPERTY
@given(data=st.data(), conv=st.booleans())
def test_policy_trainers_reject_a_bad_prompt_in_init(tiny_models, tiny_tokenizer, tmp_path, trainer, data, conv):
    from rlhf_ext import PPOConfig, PPOTrainer, RLOOConfig, RLOOTrainer

    shapes = [("prompt", prompt_rows(conversational=conv))]
    split, index, problem, corruption, train, evaluation = data.draw(datasets_with_one_bad_row(shapes, arrow=True))
    output_dir = fresh_output_dir(tmp_path)
    batch = dict(per_device_train_batch_size=4, per_device_eval_batch_size=4, max_completion_length=6)
    if trainer == "ppo":  # as tests/test_ppo.py builds it
        cls, args = PPOTrainer, PPOConfig(output_dir=str(output_dir), num_ppo_epochs=1, **batch, **COMMON)
    else:
        cls, args = RLOOTrainer, RLOOConfig(output_dir=str(output_dir), num_generations=2, **batch, **COMMON)
    with no_model_forward(), pytest.raises(ValueError) as info:
        cls(
            model=str(tiny_models.causal_lm),
            reward_funcs=constant_reward,
            args=args,
            train_dataset=Dataset.from_list(train),
            eval_dataset=None if evaluation is None else Dataset.from_list(evaluation),
            processing_class=tiny_tokenizer,
        )
    _check(info, split, index, problem, corruption)
    assert_nothing_written(output_dir)


@pytest.mark.parametrize("trainer", ["ranked_reward", "orpo"])
@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_well_formed_rows_build_a_trainer(tiny_models, tiny_tokenizer, tmp_path, trainer, data):
    """The other half of the property, end to end: rows the validator accepts are tokenized and kept by the trainer."""
    from rlhf_ext import ORPOConfig, ORPOTrainer, RankedRewardConfig, RankedRewardTrainer

    _, good = data.draw(st.sampled_from(_arrow_preference_shapes(data.draw)))
    rows = data.draw(st.lists(good, min_size=1, max_size=4))
    output_dir = fresh_output_dir(tmp_path)
    if trainer == "ranked_reward":
        cls, args, model = RankedRewardTrainer, RankedRewardConfig, tiny_models.reward_model
    else:
        cls, args, model = ORPOTrainer, ORPOConfig, tiny_models.causal_lm
    built = cls(
        model=str(model),
        args=args(output_dir=str(output_dir), max_length=None, **COMMON),
        train_dataset=Dataset.from_list(rows),
        processing_class=tiny_tokenizer,
    )
    assert len(built.train_dataset) == len(rows)
    assert_nothing_written(output_dir)


def test_ranked_reward_trainer_names_a_list_given_for_a_dataset(tiny_models, tiny_tokenizer, tmp_path):
    from rlhf_ext import RankedRewardConfig, RankedRewardTrainer

    rows = [{"prompt": "Q", "completions": ["a", "b"], "ranks": [0, 1]}]
    with pytest.raises(ValueError, match=r"^eval_dataset must be a datasets.Dataset or IterableDataset, got list"):
        RankedRewardTrainer(  # a ValueError naming the argument, not an AttributeError on list.column_names
            model=str(tiny_models.reward_model),
            args=RankedRewardConfig(output_dir=str(tmp_path / "out"), **COMMON),
            train_dataset=Dataset.from_list(rows),
            eval_dataset=rows,
            processing_class=tiny_tokenizer,
        )
