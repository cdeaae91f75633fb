"""rlhf_ext.data.ranking: comparison pairs, ranks from scores, and conversions between pairwise and ranked rows."""

from __future__ import annotations

import logging

import pytest
from datasets import Dataset
from hypothesis import given, settings
from hypothesis import strategies as st

from rlhf_ext.data.ranking import pairs_to_ranked, ranked_pairs, ranks_from_scores, scores_shared_by_copies, to_ranked
from rlhf_ext.data.validation import validate_ranked_row

GOOD = {"prompt": "Q", "completions": ["a", "b", "c"], "ranks": [0, 1, 1]}


def test_ranked_pairs_orders_winner_first_and_skips_ties():
    assert ranked_pairs([2, 0, 1]) == [(1, 0), (2, 0), (1, 2)]
    assert ranked_pairs([0, 1, 1]) == [(0, 1), (0, 2)]
    assert ranked_pairs([3, 3]) == []
    assert len(ranked_pairs(list(range(9)))) == 36  # C(9, 2)


def test_ranks_from_scores_dense_and_ties():
    assert ranks_from_scores([7, 9, 7, 1]) == [1, 0, 1, 2]
    assert ranks_from_scores([1.0, 2.0], higher_is_better=False) == [0, 1]


def test_copies_of_a_completion_share_its_first_score_and_rank():
    # A batched judge scored the same text 0.45122 and 0.45123 at two places in its batch (the MiniLM embedding
    # moves in the last bits with padding): ranked as they are, the copies would be compared with each other.
    completions = [" a bar sued", " man sues", " a bar sued", " other"]
    scores = [0.45122, 0.6, 0.45123, 0.1]
    assert ranks_from_scores(scores) == [2, 0, 1, 3]
    with pytest.raises(ValueError, match="completions 0 and 2 are identical but ranked 2 and 1"):
        validate_ranked_row({"prompt": "p", "completions": completions, "ranks": ranks_from_scores(scores)}, 0, "row")
    shared = scores_shared_by_copies(completions, scores)
    assert shared == [0.45122, 0.6, 0.45122, 0.1]
    ranks = ranks_from_scores(shared)
    assert ranks == [1, 0, 1, 2]
    validate_ranked_row({"prompt": "p", "completions": completions, "ranks": ranks}, 0, "row")
    with pytest.raises(ValueError, match="3 completions but 2 scores"):
        scores_shared_by_copies(completions[:3], scores[:2])


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


def test_pairs_to_ranked_names_a_self_comparison_instead_of_calling_it_a_cycle():
    rows = [
        {"prompt": "P", "chosen": "a", "rejected": "b"},
        {"prompt": "P", "chosen": "c", "rejected": "c"},
    ]
    for on_cycle in ("raise", "drop"):
        with pytest.raises(ValueError, match=r"^pairs_to_ranked row 1: 'chosen' and 'rejected' are identical") as err:
            pairs_to_ranked(rows, on_cycle=on_cycle)
        assert "cycle" not in str(err.value)
    user = {"role": "user", "content": "Hi"}
    same = [{"chosen": [user, {"role": "assistant", "content": "Yo"}]} for _ in range(2)]
    with pytest.raises(ValueError, match="row 0: 'chosen' and 'rejected' are identical"):
        pairs_to_ranked([{"chosen": same[0]["chosen"], "rejected": same[1]["chosen"]}])
