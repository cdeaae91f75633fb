"""Importers of Argilla RankingQuestion and Label Studio Ranker exports (rlhf_ext.data.label_tools, re-exported by
rlhf_ext.ranked_data): ties, per-labeler rows, the export shapes, and the rows they give train-ready."""

from __future__ import annotations

import pytest

from rlhf_ext.ranked_data import from_argilla_ranking, from_label_studio_ranker, validate_ranked_dataset

ARGILLA_RANKING = [{"value": "reply-2", "rank": 1}, {"value": "reply-1", "rank": 2}, {"value": "reply-3", "rank": 2}]


def test_argilla_2_flat_records_with_ties_one_row_per_labeler():
    record = {
        "id": "r0",
        "prompt": "Write a haiku",
        "reply-1": "old pond",
        "reply-2": "frog jumps",
        "reply-3": "splash",
        "ranking.responses": [
            ARGILLA_RANKING,
            [{"value": "reply-1", "rank": 1}, {"value": "reply-2", "rank": 2}, {"value": "reply-3", "rank": 3}],
        ],
        "ranking.responses.users": ["u1", "u2"],
        "ranking.responses.status": ["submitted", "submitted"],
    }
    ds = from_argilla_ranking([record], options={"reply-1": "reply-1", "reply-2": "reply-2", "reply-3": "reply-3"})
    assert ds.to_list() == [
        {
            "prompt": "Write a haiku",
            "completions": ["old pond", "frog jumps", "splash"],
            "ranks": [1, 0, 1],
            "labeler": "u1",
        },
        {
            "prompt": "Write a haiku",
            "completions": ["old pond", "frog jumps", "splash"],
            "ranks": [0, 1, 2],
            "labeler": "u2",
        },
    ]
    assert validate_ranked_dataset(ds) == 2


def test_argilla_1_hub_export_drafts_dropped_and_values_as_text(caplog):
    records = [
        {
            "prompt": "Q",
            "ranking": [
                {
                    "user_id": "a",
                    "status": "submitted",
                    "value": [{"value": "yes", "rank": 2}, {"value": "no", "rank": 1}],
                },
                {
                    "user_id": "b",
                    "status": "draft",
                    "value": [{"value": "yes", "rank": 1}, {"value": "no", "rank": None}],
                },
            ],
        },
        {
            "fields": {"prompt": "R"},
            "responses": [{"user_id": "c", "status": "submitted", "values": {"ranking": {"value": ARGILLA_RANKING}}}],
        },
    ]
    rows = from_argilla_ranking(records).to_list()
    assert rows[0] == {"prompt": "Q", "completions": ["yes", "no"], "ranks": [1, 0], "labeler": "a"}
    assert rows[1]["prompt"] == "R" and rows[1]["completions"] == ["reply-2", "reply-1", "reply-3"]
    assert rows[1]["ranks"] == [0, 1, 1]
    assert "1 unsubmitted responses" in caplog.text


def test_argilla_errors_name_the_record():
    with pytest.raises(ValueError, match="Argilla record 0: no field 'prompt'"):
        from_argilla_ranking([{"ranking.responses": []}])
    with pytest.raises(ValueError, match="Argilla record 0: the 'ranking' response is not a list"):
        from_argilla_ranking([{"prompt": "p", "ranking.responses": ["reply-1"]}])


def label_studio_task(ranker_value, **annotation):
    items = [
        {"id": "a", "title": "A", "body": "alpha"},
        {"id": "b", "title": "B", "body": "beta"},
        {"id": "c", "title": "C"},
    ]
    result = [{"type": "ranker", "from_name": "rank", "to_name": "results", "value": {"ranker": ranker_value}}]
    return {
        "data": {"prompt": "P", "items": items},
        "annotations": [{"completed_by": {"id": 7, "email": "x@y.z"}, "result": result, **annotation}],
    }


def test_label_studio_plain_list_is_a_strict_order():
    rows = from_label_studio_ranker([label_studio_task({"results": ["b", "c", "a"]})]).to_list()
    assert rows == [{"prompt": "P", "completions": ["beta", "C", "alpha"], "ranks": [0, 1, 2], "labeler": "x@y.z"}]


def test_label_studio_buckets_are_ties_and_unplaced_items_dropped_or_last():
    task = label_studio_task({"best": ["a", "c"], "worst": ["b"]})
    assert from_label_studio_ranker([task]).to_list()[0]["ranks"] == [0, 0, 1]
    task = label_studio_task({"_": ["c"], "worst": ["b"], "best": ["a"]})
    assert from_label_studio_ranker([task], buckets=["best", "worst"]).to_list()[0]["completions"] == ["alpha", "beta"]
    last = from_label_studio_ranker([task], buckets=["best", "worst"], unplaced="last").to_list()[0]
    assert last["completions"] == ["alpha", "beta", "C"] and last["ranks"] == [0, 1, 2]


def test_label_studio_skips_cancelled_and_names_bad_tasks(caplog):
    with pytest.raises(ValueError, match="no ranking with a comparison"):
        from_label_studio_ranker([label_studio_task({"results": ["a", "b"]}, was_cancelled=True)])
    assert "1 cancelled annotations" in caplog.text
    with pytest.raises(ValueError, match="Label Studio task 0: ranked id 'z' is not in its items"):
        from_label_studio_ranker([label_studio_task({"results": ["a", "z"]})])
    with pytest.raises(ValueError, match="bucket\\(s\\) \\['meh'\\] not in buckets"):
        from_label_studio_ranker([label_studio_task({"meh": ["a"], "best": ["b"]})], buckets=["best"])
