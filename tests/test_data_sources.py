"""rlhf_ext.data.sources: converters of public preference datasets, on hand-written rows in each public schema."""

from __future__ import annotations

import logging

import pytest

from rlhf_ext.data.ranking import ranked_pairs
from rlhf_ext.data.sources import (
    from_lm_human_preferences,
    from_nectar,
    from_oasst,
    from_ultrafeedback,
    from_ultrafeedback_binarized,
)


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


def test_converters_skip_rows_the_trainers_would_reject_and_say_so(caplog):
    from rlhf_ext.data.validation import validate_ranked_dataset

    user = {"role": "user", "content": "Hi"}
    good = {
        "chosen": [user, {"role": "assistant", "content": "Hello!"}],
        "rejected": [user, {"role": "assistant", "content": "Go away."}],
        "score_chosen": 8.0,
        "score_rejected": 3.0,
    }
    same = {**good, "rejected": good["chosen"]}  # an identical answer scored lower: no comparison
    empty = {**good, "rejected": [user, {"role": "assistant", "content": "  "}]}
    with caplog.at_level(logging.WARNING):
        out = from_ultrafeedback_binarized([good, same, empty, good])
    assert out.num_rows == 2
    assert validate_ranked_dataset(out) == 2  # every emitted row is one the trainers accept
    assert "from_ultrafeedback_binarized: skipped 2 row(s) the trainers would reject" in caplog.text
    assert "source row 1: completions 0 and 1 are identical" in caplog.text

    caplog.clear()
    twice = {
        "source": "x",
        "instruction": "Name a color.",
        "models": [],
        "completions": [_uf_completion("Red.", 5.0), _uf_completion("Red.", 7.0), _uf_completion("Blue.", 6.0)],
    }
    with caplog.at_level(logging.WARNING):
        assert from_ultrafeedback([twice]).num_rows == 0
    assert "from_ultrafeedback: skipped 1 row(s) the trainers would reject" in caplog.text
