"""rlhf_ext.data.validation: every malformed ranked, pairwise or prompt row is a ValueError naming the row and the problem."""

from __future__ import annotations

import re

import numpy as np
import pytest
from datasets import Dataset, IterableDataset
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from row_strategies import (
    CORRUPTIONS,
    corrupted,
    pairwise_rows,
    preference_rows,
    prompt_rows,
    ranked_rows,
)

from rlhf_ext.data.formats import pairwise_row_to_ranked
from rlhf_ext.data.ranking import ranked_pairs, to_ranked
from rlhf_ext.data.validation import (
    validate_prompt_dataset,
    validate_ranked_dataset,
    validate_ranked_row,
    validate_trainer_prompts,
)

GOOD = {"prompt": "Q", "completions": ["a", "b", "c"], "ranks": [0, 1, 1]}


@pytest.mark.parametrize(
    "row, message",
    [
        ({"completions": ["a", "b"], "ranks": [0, 1]}, r"row 3: missing column\(s\) \['prompt'\]"),
        ({"prompt": "Q", "ranks": [0, 1]}, r"row 3: missing column\(s\) \['completions'\]"),
        ({"prompt": "Q", "completions": ["a", "b"]}, r"row 3: missing column\(s\) \['ranks'\]"),
        ({"prompt": "Q", "chosen": "a"}, r"row 3: missing column\(s\) \['rejected'\]"),
        ({"prompt": "Q", "completions": ["a"], "ranks": [0]}, "row 3: .*at least 2 completions"),
        ({"prompt": "Q", "completions": ["a", "b", "c"], "ranks": [0, 1]}, "row 3: 'ranks' has 2 entries but"),
        ({"prompt": "Q", "completions": ["a", "b"], "ranks": [1, 1]}, "row 3: all 2 completions are tied"),
        ({"prompt": "Q", "completions": ["a", "b"], "ranks": [0, 1.5]}, "row 3: rank 1 is 1.5 .*integers"),
        ({"prompt": "Q", "completions": ["a", "b"], "ranks": [0.0, 1.0]}, "row 3: rank 0 is 0.0 .*integers"),
        ({"prompt": "Q", "completions": ["a", "b"], "ranks": [True, False]}, r"row 3: rank 0 is True \(bool\)"),
        ({"prompt": "Q", "completions": ["a", "b"], "ranks": [np.bool_(True), 0]}, "row 3: rank 0 .*integers"),
        ({"prompt": "Q", "completions": ["a", "b"], "ranks": ["0", "1"]}, "row 3: rank 0 is '0'"),
        ({"prompt": "Q", "completions": ["a", "  "], "ranks": [0, 1]}, "row 3: completion 1 is empty"),
        ({"prompt": "Q", "completions": ["a", None], "ranks": [0, 1]}, "row 3: completion 1 must be a string"),
        ({"prompt": "Q", "completions": "ab", "ranks": [0, 1]}, "row 3: 'completions' must be a list"),
        ({"prompt": 5, "completions": ["a", "b"], "ranks": [0, 1]}, "row 3: 'prompt' must be a string"),
        ({"prompt": "Q", "chosen": "a", "rejected": ""}, "row 3: 'rejected' is empty"),
        (
            {"prompt": [{"role": "user", "content": "Q"}], "completions": ["a", "b"], "ranks": [0, 1]},
            "row 3: completion 0 must be a list of messages",
        ),
        (
            {
                "prompt": [{"role": "user", "content": "Q"}],
                "completions": [[{"role": "assistant", "content": "a"}], []],
                "ranks": [0, 1],
            },
            "row 3: completion 1 is empty",
        ),
    ],
)
def test_validate_ranked_row_names_row_and_problem(row, message):
    with pytest.raises(ValueError, match=message):
        validate_ranked_row(row, 3, "train_dataset")


def test_validate_accepts_good_rows_numpy_ints_and_pairwise():
    validate_ranked_row(GOOD, 0)
    validate_ranked_row({"prompt": "Q", "completions": ["a", "b"], "ranks": [np.int64(1), np.int32(0)]}, 0)
    validate_ranked_row({"chosen": "Q a", "rejected": "Q b"}, 0)
    messages = [{"role": "user", "content": "Q"}]
    validate_ranked_row(
        {"prompt": messages, "completions": [[{"role": "assistant", "content": x}] for x in "ab"], "ranks": [1, 0]}, 0
    )


def test_tool_call_turns_need_no_content_other_turns_do():
    """TRL's tool-calling data: an assistant turn that calls a tool carries no `content` key (or None)."""
    call = {"type": "function", "function": {"name": "start_timer", "arguments": {"duration": 600}}}
    user = [{"role": "user", "content": "Set a timer."}]
    calls = [{"role": "assistant", "tool_calls": [call]}, {"role": "tool", "name": "start_timer", "content": "600"}]
    validate_ranked_row({"prompt": user, "chosen": calls, "rejected": [{"role": "assistant", "content": "No."}]}, 0)
    only_call = [{"role": "assistant", "content": None, "tool_calls": [call]}]  # Arrow's form: a None content
    validate_ranked_row({"prompt": user, "completions": [only_call, calls], "ranks": [1, 0]}, 0)
    for turn in ({"role": "assistant"}, {"role": "assistant", "tool_calls": []}, {"role": "tool", "name": "x"}):
        with pytest.raises(ValueError, match=r"train_dataset row 4: 'rejected' message 0 has no 'content'"):
            validate_ranked_row({"prompt": user, "chosen": calls, "rejected": [turn]}, 4, "train_dataset")


def test_validate_dataset_names_dataset_and_row():
    bad = {"prompt": "Q", "completions": ["a", "b"], "ranks": [0, 0]}
    ds = Dataset.from_list([GOOD, GOOD, bad])
    with pytest.raises(ValueError, match=r"eval_dataset row 2: all 2 completions are tied"):
        validate_ranked_dataset(ds, name="eval_dataset")
    with pytest.raises(ValueError, match=r"train_dataset: missing columns"):
        validate_ranked_dataset(Dataset.from_list([{"text": "x"}]))
    with pytest.raises(ValueError, match="train_dataset is empty"):
        validate_ranked_dataset([])
    assert validate_ranked_dataset(ds, limit=2) == 2


# ------------------------------------------------------------------------------------------------------------------
# Property tests (issue 8): every malformed row is a ValueError naming the row and the problem; no well-formed row is
# ever rejected. Malformed rows are well-formed ones with one corruption from tests/row_strategies.py applied.
# ------------------------------------------------------------------------------------------------------------------

NAMES = st.sampled_from(["train_dataset", "eval_dataset", "eval_dataset['held_out']"])
FAST = settings(max_examples=25, deadline=None)


def _assert_names_row(error, name, index, problem, corruption=""):
    message = str(error)
    assert re.match(rf"{re.escape(name)} row {index}: {problem}", message), (corruption, message)


@settings(max_examples=150, deadline=None)
@given(row=ranked_rows(), index=st.integers(0, 10**6), name=NAMES)
def test_well_formed_ranked_rows_pass_and_keep_their_pairs(row, index, name):
    validate_ranked_row(row, index, name)
    assert to_ranked([row]) == [row]
    ranks, completions = [int(r) for r in row["ranks"]], row["completions"]
    k = len(completions)
    ties = sum(ranks[i] == ranks[j] for i in range(k) for j in range(i + 1, k))
    pairs = ranked_pairs(ranks)
    assert 0 < len(pairs) == k * (k - 1) // 2 - ties
    assert all(ranks[w] < ranks[lo] and completions[w] != completions[lo] for w, lo in pairs)


@settings(max_examples=150, deadline=None)
@given(row=pairwise_rows(), index=st.integers(0, 10**6), name=NAMES)
def test_well_formed_pairwise_rows_pass_and_become_one_pair(row, index, name):
    validate_ranked_row(row, index, name)
    ranked = pairwise_row_to_ranked(row)
    validate_ranked_row(ranked, index, name)
    assert to_ranked([row]) == [ranked]
    assert ranked["ranks"] == [0, 1] and ranked_pairs(ranked["ranks"]) == [(0, 1)]
    assert ranked.get("margin") == row.get("margin")
    chosen, rejected = ranked["completions"]
    if "prompt" in row:
        assert (ranked["prompt"], chosen, rejected) == (row["prompt"], row["chosen"], row["rejected"])
    else:  # the implicit prompt is split off without losing anything
        assert ranked["prompt"] + chosen == row["chosen"] and ranked["prompt"] + rejected == row["rejected"]


def _corruption_params(kind):
    return [pytest.param(fn, id=name) for name, fn, _ in CORRUPTIONS[kind]]


@pytest.mark.parametrize("corrupt", _corruption_params("ranked"))
@FAST
@given(data=st.data(), index=st.integers(0, 10**6), name=NAMES)
def test_malformed_ranked_row_raises_value_error_naming_row_and_problem(corrupt, data, index, name):
    result = corrupt(data.draw, data.draw(ranked_rows()))
    assume(result is not None)  # e.g. a message corruption of a text row
    row, problem = result
    with pytest.raises(ValueError) as info:  # any other exception type fails the test
        validate_ranked_row(row, index, name)
    _assert_names_row(info.value, name, index, problem)


@pytest.mark.parametrize("corrupt", _corruption_params("pairwise"))
@FAST
@given(data=st.data(), index=st.integers(0, 10**6), name=NAMES)
def test_malformed_pairwise_row_raises_value_error_naming_row_and_problem(corrupt, data, index, name):
    result = corrupt(data.draw, data.draw(pairwise_rows()))
    assume(result is not None)
    row, problem = result
    with pytest.raises(ValueError) as info:
        validate_ranked_row(row, index, name)
    _assert_names_row(info.value, name, index, problem)


@FAST
@given(data=st.data(), index=st.integers(0, 10**6), name=NAMES)
def test_prompt_without_a_turn_to_answer_is_rejected_only_for_generation(data, index, name):
    """ORPO renders prompts with TRL's apply_chat_template, which refuses a prompt ending in e.g. a system turn."""
    row = data.draw(preference_rows(conversational=True))
    row, problem = CORRUPTIONS["chat_prompt"][0][1](data.draw, row)
    validate_ranked_row(row, index, name)  # a reward model reads the whole conversation: fine
    with pytest.raises(ValueError) as info:
        validate_ranked_row(row, index, name, generation_prompt=True)
    _assert_names_row(info.value, name, index, problem)


@settings(max_examples=60, deadline=None)
@given(data=st.data(), name=NAMES, arrow=st.booleans())
def test_dataset_validation_names_the_bad_row_among_good_ones(data, name, arrow):
    """One bad row at a random place among well-formed rows, in a list or (same-shape rows) a ``datasets.Dataset``."""
    kind = data.draw(st.sampled_from(["ranked", "pairwise"]))
    if arrow:  # Arrow types each column once: rows of one shape, corruptions that keep the column types
        conv = data.draw(st.booleans())
        good = (
            ranked_rows(conversational=conv, margin=False)
            if kind == "ranked"
            else pairwise_rows(conversational=conv, explicit_prompt=data.draw(st.booleans()), margin=False)
        )
    else:
        good = ranked_rows() if kind == "ranked" else pairwise_rows()
    goods = data.draw(st.lists(preference_rows() if not arrow else good, max_size=6))
    corruption, bad, problem = data.draw(corrupted(kind, good, arrow_only=arrow))
    index = data.draw(st.integers(0, len(goods)))
    rows = goods[:index] + [bad] + goods[index:]
    with pytest.raises(ValueError) as info:
        validate_ranked_dataset(Dataset.from_list(rows) if arrow else rows, name=name)
    _assert_names_row(info.value, name, index, problem, corruption)
    if index:  # the rows before it pass
        assert validate_ranked_dataset(rows[:index], name=name) == index


@settings(max_examples=60, deadline=None)
@given(rows=st.lists(preference_rows(), min_size=1, max_size=8))
def test_well_formed_datasets_pass(rows):
    assert validate_ranked_dataset(rows) == len(rows)


# -- prompt rows (PPOTrainer, RLOOTrainer) -------------------------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(conv=st.booleans(), data=st.data())
def test_well_formed_prompts_pass(conv, data):
    rows = data.draw(st.lists(prompt_rows(conversational=conv), min_size=1, max_size=8))
    assert validate_prompt_dataset(rows) == len(rows)
    assert validate_prompt_dataset(Dataset.from_list(rows)) == len(rows)


@pytest.mark.parametrize("corrupt", _corruption_params("prompt"))
@FAST
@given(data=st.data(), name=NAMES)
def test_malformed_prompt_raises_value_error_naming_row_and_problem(corrupt, data, name):
    result = corrupt(data.draw, data.draw(prompt_rows()))
    assume(result is not None)
    bad, problem = result
    goods = data.draw(st.lists(prompt_rows(), max_size=5))
    index = data.draw(st.integers(0, len(goods)))
    with pytest.raises(ValueError) as info:
        validate_prompt_dataset(goods[:index] + [bad] + goods[index:], name)
    _assert_names_row(info.value, name, index, problem)


@settings(max_examples=40, deadline=None)
@given(data=st.data(), conv=st.booleans())
def test_prompt_dataset_names_the_bad_row_in_an_arrow_dataset(data, conv):
    good = prompt_rows(conversational=conv)
    goods = data.draw(st.lists(good, max_size=6))
    corruption, bad, problem = data.draw(corrupted("prompt", good, arrow_only=True))
    index = data.draw(st.integers(0, len(goods)))
    dataset = Dataset.from_list(goods[:index] + [bad] + goods[index:])
    with pytest.raises(ValueError) as info:
        validate_prompt_dataset(dataset, "train_dataset")
    _assert_names_row(info.value, "train_dataset", index, problem, corruption)


def test_prompt_validation_reads_columns_follows_selections_and_bounds_streams(monkeypatch):
    rows = [{"prompt": f"prompt {i}", "id": i} for i in range(3000)]
    rows[2500]["prompt"] = "   "
    dataset = Dataset.from_list(rows)
    # Column batches, never one decoded row at a time (that is what makes 100k rows cheap).
    monkeypatch.setattr(Dataset, "__iter__", lambda self: pytest.fail("validation decoded rows one by one"))
    with pytest.raises(ValueError, match=r"^train_dataset row 2500: 'prompt' is empty"):
        validate_prompt_dataset(dataset)
    # Row numbers are the dataset's own after select/shuffle (an indices mapping over the Arrow table).
    with pytest.raises(ValueError, match=r"^train_dataset row 1: 'prompt' is empty"):
        validate_prompt_dataset(dataset.select([7, 2500, 9]))
    assert validate_prompt_dataset(dataset.select(range(2000))) == 2000
    monkeypatch.undo()
    with pytest.raises(ValueError, match=r"^eval_dataset\['b'\] row 2500: 'prompt' is empty"):
        validate_trainer_prompts(dataset.select(range(10)), {"a": dataset.select(range(5)), "b": dataset})
    with pytest.raises(ValueError, match=r"^eval_dataset row 2500"):
        validate_trainer_prompts(dataset.select(range(10)), dataset)
    # A stream is checked on its first rows only: a bad row past them is left to the trainer's own checks.
    stream = IterableDataset.from_generator(lambda: iter(rows))
    validate_trainer_prompts(stream, stream_rows=100)
    with pytest.raises(ValueError, match=r"^train_dataset row 2500"):
        validate_trainer_prompts(stream, stream_rows=3000)
    with pytest.raises(ValueError, match=r"^train_dataset must have a 'prompt' column"):
        validate_prompt_dataset(Dataset.from_list([{"query": "x"}]))
    with pytest.raises(ValueError, match=r"^train_dataset is empty"):
        validate_prompt_dataset([])
