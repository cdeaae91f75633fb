"""Ranked rows: pairs, validation errors, conversion of TRL preference rows and of public data sets."""

from __future__ import annotations

import logging
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

from rlhf_ext.ranked_data import (
    from_lm_human_preferences,
    from_nectar,
    from_oasst,
    from_ultrafeedback,
    from_ultrafeedback_binarized,
    pairs_to_ranked,
    pairwise_row_to_ranked,
    ranked_pairs,
    ranks_from_scores,
    to_ranked,
    validate_prompt_dataset,
    validate_ranked_dataset,
    validate_ranked_row,
    validate_trainer_prompts,
)

GOOD = {"prompt": "Q", "completions": ["a", "b", "c"], "ranks": [0, 1, 1]}


def test_ranked_pairs_orders_winner_first_and_skips_ties():
    assert ranked_pairs([2, 0, 1]) == [(1, 0), (2, 0), (1, 2)]
    assert ranked_pairs([0, 1, 1]) == [(0, 1), (0, 2)]
    assert ranked_pairs([3, 3]) == []
    assert len(ranked_pairs(list(range(9)))) == 36  # C(9, 2)


def test_ranks_from_scores_dense_and_ties():
    assert ranks_from_scores([7, 9, 7, 1]) == [1, 0, 1, 2]
    assert ranks_from_scores([1.0, 2.0], higher_is_better=False) == [0, 1]


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


def test_to_ranked_explicit_implicit_and_conversational():
    ds = Dataset.from_list([{"prompt": "The sky is", "chosen": " blue", "rejected": " green", "margin": 0.5}])
    assert to_ranked(ds).to_list() == [
        {"margin": 0.5, "prompt": "The sky is", "completions": [" blue", " green"], "ranks": [0, 1]}
    ]
    implicit = to_ranked([{"chosen": "The sky is blue", "rejected": "The sky is green"}])[0]
    assert implicit["prompt"] == "The sky is" and implicit["completions"] == [" blue", " green"]
    user = {"role": "user", "content": "Sky?"}
    chosen, rejected = {"role": "assistant", "content": "Blue"}, {"role": "assistant", "content": "Green"}
    conv = to_ranked(Dataset.from_list([{"chosen": [user, chosen], "rejected": [user, rejected]}]))[0]
    assert conv == {"prompt": [user], "completions": [[chosen], [rejected]], "ranks": [0, 1]}
    ranked = Dataset.from_list([GOOD])
    assert to_ranked(ranked) is ranked


def test_from_lm_human_preferences_best_of_4_text_and_token_ids():
    # Schema of openai/lm-human-preferences labels/<task>/offline_5k.json: GPT-2 token ids and `best` in 0..3.
    rows = [{"query": [10, 11], "sample0": [1], "sample1": [2], "sample2": [3], "sample3": [4], "best": 2}]

    class Decoder:
        def decode(self, ids):
            return " ".join(f"t{i}" for i in ids)

    out = from_lm_human_preferences(rows, tokenizer=Decoder())[0]
    assert out == {"prompt": "t10 t11", "completions": ["t1", "t2", "t3", "t4"], "ranks": [1, 1, 0, 1]}
    assert len(ranked_pairs(out["ranks"])) == 3
    text = from_lm_human_preferences([{"query": "Q", **{f"sample{i}": f"s{i}" for i in range(4)}, "best": 0}])
    assert text[0]["ranks"] == [0, 1, 1, 1]
    with pytest.raises(ValueError, match="token ids; pass `tokenizer=`"):
        from_lm_human_preferences(rows)
    with pytest.raises(ValueError, match="row 0: 'best' must be an integer"):
        from_lm_human_preferences([{**rows[0], "best": 4}], tokenizer=Decoder())


def _uf_completion(response, overall, helpfulness="4"):
    return {
        "annotations": {
            "helpfulness": {"Rating": helpfulness, "Rationale": "...", "Type": ["1"]},
            "honesty": {"Rating": "N/A", "Rationale": "..."},
        },
        "critique": "...",
        "custom_system_prompt": "...",
        "fine-grained_score": overall - 0.25,
        "model": "gpt-4",
        "overall_score": overall,
        "principle": "helpfulness",
        "response": response,
    }


def test_from_ultrafeedback_scores_ties_and_skips(caplog):
    rows = [
        {
            "source": "evol_instruct",
            "instruction": "Name a color.",
            "models": ["a", "b", "c", "d"],
            "completions": [
                _uf_completion("Red.", 7.0, "3"),
                _uf_completion("Blue.", 9.0, "5"),
                _uf_completion("Red!", 7.0, "3"),
                _uf_completion("", 10.0),
            ],
            "correct_answers": ["None"],
            "incorrect_answers": ["None"],
        },
        {"source": "x", "instruction": "Tie", "models": [], "completions": [_uf_completion("a", 5.0)] * 2},
    ]
    with caplog.at_level(logging.WARNING):
        out = from_ultrafeedback(rows)
    assert out.to_list() == [{"prompt": "Name a color.", "completions": ["Red.", "Blue.", "Red!"], "ranks": [1, 0, 1]}]
    assert "skipped 1 row" in caplog.text
    assert from_ultrafeedback(rows, score="helpfulness")[0]["ranks"] == [1, 0, 1]
    assert from_ultrafeedback(rows, score="honesty").num_rows == 0  # every rating is "N/A"
    conv = from_ultrafeedback(rows, conversational=True)[0]
    assert conv["prompt"] == [{"role": "user", "content": "Name a color."}]
    assert conv["completions"][1] == [{"role": "assistant", "content": "Blue."}]


def test_from_ultrafeedback_binarized():
    user = {"role": "user", "content": "Hi"}
    row = {
        "prompt": "Hi",
        "prompt_id": "abc",
        "chosen": [user, {"role": "assistant", "content": "Hello!"}],
        "rejected": [user, {"role": "assistant", "content": "Go away."}],
        "messages": [user, {"role": "assistant", "content": "Hello!"}],
        "score_chosen": 8.0,
        "score_rejected": 3.0,
    }
    out = from_ultrafeedback_binarized([row, {**row, "score_rejected": 8.0}])
    assert out.num_rows == 1
    assert out[0]["prompt"] == [user] and out[0]["ranks"] == [0, 1]
    assert out[0]["completions"][0] == [{"role": "assistant", "content": "Hello!"}]


def test_from_nectar_float_ranks():
    row = {
        "prompt": "\n\nHuman: Name a fruit.\n\nAssistant:",
        "answers": [
            {"answer": "Apple.", "model": "gpt-4", "rank": 2.0},
            {"answer": "A banana.", "model": "gpt-3.5-turbo", "rank": 1.0},
            {"answer": "Rock.", "model": "llama-2-7b-chat", "rank": 3.0},
        ],
        "turns": 1,
        "num_responses": 3,
        "source": ["sharegpt"],
        "good_natured": True,
    }
    out = from_nectar([row])[0]
    assert out == {"prompt": row["prompt"], "completions": ["Apple.", "A banana.", "Rock."], "ranks": [2, 1, 3]}
    with pytest.raises(ValueError, match="Nectar row 0: answer rank 1.5"):
        from_nectar([{**row, "answers": [{**row["answers"][0], "rank": 1.5}]}])


def _oasst(mid, parent, role, text, rank=None, **extra):
    return {
        "message_id": mid,
        "parent_id": parent,
        "user_id": "u",
        "created_date": "2023-01-01T00:00:00",
        "text": text,
        "role": role,
        "lang": "en",
        "review_count": 3,
        "review_result": True,
        "deleted": False,
        "rank": rank,
        "synthetic": False,
        "model_name": None,
        "detoxify": None,
        "message_tree_id": "t1",
        "tree_state": "ready_for_export",
        "emojis": None,
        "labels": None,
        **extra,
    }


def test_from_oasst_groups_ranked_siblings_under_their_prompt():
    messages = [
        _oasst("p1", None, "prompter", "What is 2+2?"),
        _oasst("a1", "p1", "assistant", "4", rank=0),
        _oasst("a2", "p1", "assistant", "5", rank=2),
        _oasst("a3", "p1", "assistant", "four", rank=1),
        _oasst("a4", "p1", "assistant", "unranked"),
        _oasst("p2", "a1", "prompter", "And 3+3?"),
        _oasst("b1", "p2", "assistant", "6", rank=1),
        _oasst("b2", "p2", "assistant", "six", rank=0),
        _oasst("b3", "p2", "assistant", "deleted", rank=2, deleted=True),
        _oasst("p3", None, "prompter", "Lonely"),
        _oasst("c1", "p3", "assistant", "only one", rank=0),
    ]
    out = from_oasst(messages).to_list()
    assert len(out) == 2
    first = next(r for r in out if len(r["prompt"]) == 1)
    assert first["prompt"] == [{"role": "user", "content": "What is 2+2?"}]
    assert [c[0]["content"] for c in first["completions"]] == ["4", "5", "four"]
    assert first["ranks"] == [0, 2, 1]
    second = next(r for r in out if len(r["prompt"]) == 3)
    assert [m["role"] for m in second["prompt"]] == ["user", "assistant", "user"]
    assert second["ranks"] == [1, 0]
    text = from_oasst(messages, conversational=False).to_list()
    assert {r["prompt"] for r in text} == {"What is 2+2?", "And 3+3?"}
    assert from_oasst(messages, lang="de").num_rows == 0


def test_pairs_to_ranked_consistent_ranking_and_cycles(caplog):
    rows = [
        {"prompt": "P", "chosen": "a", "rejected": "b"},
        {"prompt": "P", "chosen": "b", "rejected": "c"},
        {"prompt": "P", "chosen": "a", "rejected": "c"},
        {"prompt": "Q", "chosen": "x", "rejected": "y"},
    ]
    out = {r["prompt"]: r for r in pairs_to_ranked(rows).to_list()}
    assert out["P"]["completions"] == ["a", "b", "c"] and out["P"]["ranks"] == [0, 1, 2]
    assert out["Q"]["ranks"] == [0, 1]
    # Every labeled pair keeps its order.
    ranks = dict(zip(out["P"]["completions"], out["P"]["ranks"]))
    assert all(ranks[r["chosen"]] < ranks[r["rejected"]] for r in rows[:3])
    # A beats B and C, B and C never compared: they tie.
    tie = pairs_to_ranked(
        [{"prompt": "T", "chosen": "a", "rejected": "b"}, {"prompt": "T", "chosen": "a", "rejected": "c"}]
    )
    assert tie[0]["ranks"] == [0, 1, 1]
    cycle = rows + [{"prompt": "P", "chosen": "c", "rejected": "a"}]
    with pytest.raises(ValueError, match="prompt 'P' contain a cycle"):
        pairs_to_ranked(cycle)
    with caplog.at_level(logging.WARNING):
        kept = pairs_to_ranked(cycle, on_cycle="drop")
    assert kept.to_list() == [{"prompt": "Q", "completions": ["x", "y"], "ranks": [0, 1]}]
    assert "dropped 1 prompt(s)" in caplog.text
    with pytest.raises(ValueError, match="contain a cycle"):
        pairs_to_ranked(
            [{"prompt": "P", "chosen": "a", "rejected": "b"}, {"prompt": "P", "chosen": "b", "rejected": "a"}]
        )


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=4), min_size=2, max_size=9))
def test_pairs_roundtrip_keeps_every_labeled_order(ranks):
    pairs = ranked_pairs(ranks)
    ties = sum(ranks[i] == ranks[j] for i in range(len(ranks)) for j in range(i + 1, len(ranks)))
    assert len(pairs) == len(ranks) * (len(ranks) - 1) // 2 - ties
    assert all(ranks[w] < ranks[lo] for w, lo in pairs)
    if not pairs:
        return
    rows = [{"prompt": "P", "chosen": f"c{w}", "rejected": f"c{lo}"} for w, lo in pairs]
    (out,) = pairs_to_ranked(rows).to_list()
    derived = dict(zip(out["completions"], out["ranks"]))
    assert all(derived[f"c{w}"] < derived[f"c{lo}"] for w, lo in pairs)
    # From a complete ranking (all pairs present) the derived ranking induces exactly the same pairs.
    assert len(ranked_pairs(out["ranks"])) == len(pairs)


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
