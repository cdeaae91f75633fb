import math

import pytest

from rlhf_ext.evaluation import win_rate


def test_win_rate_counts_ties_as_half():
    wr = win_rate([1.0, 0.5, 0.2, 0.0], [0.0, 0.5, 0.9, -1.0])
    assert (wr.wins, wr.ties, wr.losses) == (2, 1, 1)
    assert wr.rate == pytest.approx((2 + 0.5) / 4)


def test_win_rate_interval_brackets_the_rate_and_narrows_with_more_prompts():
    small = win_rate([1, 0, 1, 1, 0, 1, 1, 1], [0.5] * 8)
    large = win_rate([1, 0, 1, 1, 0, 1, 1, 1] * 32, [0.5] * 256)
    for wr in (small, large):
        assert wr.low <= wr.rate <= wr.high
    assert large.rate == small.rate == 0.75
    assert (large.high - large.low) < (small.high - small.low) / 3
    # Binomial standard error at p=0.75, n=256 is 0.027; a 90% interval is about +-1.645 of it.
    assert large.high - large.low == pytest.approx(2 * 1.645 * 0.0271, abs=0.012)


def test_win_rate_tolerance_and_errors():
    assert win_rate([1.0, 2.0], [1.05, 0.0], tie_tolerance=0.1).ties == 1
    with pytest.raises(ValueError, match="pair them by prompt"):
        win_rate([1.0], [1.0, 2.0])
    with pytest.raises(ValueError, match="at least one"):
        win_rate([], [])


# ----------------------------------------------------------------------------- several systems


def test_rouge_offline_against_hand_counts():
    from rlhf_ext.evaluation import rouge

    # "the cat sat" vs "the cat ran": unigrams 2 of 3 both ways -> F1 2/3; bigrams: "the cat" 1 of 2 -> 1/2;
    # LCS "the cat" = 2 -> 2/3. Second pair: "a b c d" vs "d c b a": unigram F1 1, no shared bigram, LCS 1 -> 1/4.
    got = rouge(["the cat sat", "a b c d"], ["the cat ran", "d c b a"])
    assert got["rouge1"] == pytest.approx((2 / 3 + 1) / 2)
    assert got["rouge2"] == pytest.approx((1 / 2 + 0) / 2)
    assert got["rougeL"] == pytest.approx((2 / 3 + 1 / 4) / 2)
    with pytest.raises(ValueError, match="2 predictions but 1 references"):
        rouge(["a", "b"], ["a"])


def test_distinct_n_and_repetition_rate_by_hand():
    from rlhf_ext.evaluation import distinct_n, repetition_rate

    texts = ["the cat sat on the cat", "The cat"]
    # bigrams: (the,cat) (cat,sat) (sat,on) (on,the) (the,cat) | (the,cat): 6 in all, 4 distinct
    assert distinct_n(texts, 2) == pytest.approx(4 / 6)
    # 1-grams per text: 6 with "the","cat" repeated -> 2/6; "The cat": 0 -> mean 1/6
    assert repetition_rate(texts, 1) == pytest.approx((2 / 6 + 0) / 2)
    assert repetition_rate(["go go go go go"], 3) == pytest.approx(2 / 3)  # 3 trigrams, 1 distinct
    assert distinct_n([""], 2) == 0.0 and repetition_rate(["short"], 3) == 0.0


def test_elo_by_hand_dominance_and_symmetry():
    from rlhf_ext.evaluation import elo_ratings

    # Two players, a wins 3 of 4, with prior 0.5 virtual ties: wins 3.5 vs 1.5 of 5 games ->
    # strength ratio 3.5/1.5 under Bradley-Terry -> a gap of 400*log10(7/3), centred on 1000.
    r = elo_ratings([("a", "b", 1)] * 3 + [("a", "b", 0)])
    gap = 400 * math.log10(3.5 / 1.5)
    assert r["a"] == pytest.approx(1000 + gap / 2, abs=1e-6) and r["b"] == pytest.approx(1000 - gap / 2, abs=1e-6)
    even = elo_ratings([("a", "b", 1), ("b", "a", 1), ("a", "c", 0.5), ("b", "c", 0.5)])
    assert even["a"] == pytest.approx(even["b"]) == pytest.approx(even["c"])
    ranked = elo_ratings([("x", "y", 1), ("y", "z", 1), ("x", "z", 1)] * 5)
    assert ranked["x"] > ranked["y"] > ranked["z"]
    with pytest.raises(ValueError, match="outcome must be 1, 0.5 or 0"):
        elo_ratings([("a", "b", 2)])


def test_judge_comparisons_and_results_files(tmp_path):
    import json

    from rlhf_ext.evaluation import judge_comparisons, write_results

    scores = {"sft": [0.1, 0.5, 0.3, 0.2], "ppo": [0.4, 0.5, 0.1, 0.9], "reference": [0.2, 0.6, 0.2, 0.1]}
    out = judge_comparisons(scores, baselines=("sft", "reference"))
    # ppo vs sft: win, tie, loss, win -> 2.5/4; sft vs reference: loss, loss, win, win -> 0.5
    assert out["win_rates"]["ppo"]["win_rate_vs_sft"] == pytest.approx(0.625)
    assert out["win_rates"]["sft"]["win_rate_vs_reference"] == pytest.approx(0.5)
    assert "win_rate_vs_sft" not in out["win_rates"]["sft"]
    assert len(out["comparisons"]) == 3 * 4 and sum(out["elo"].values()) / 3 == pytest.approx(1000)
    with pytest.raises(ValueError, match=r"baselines \['dpo'\]"):
        judge_comparisons(scores, baselines=("dpo",))
    with pytest.raises(ValueError, match="a score for every prompt"):
        judge_comparisons({"a": [1.0], "b": [1.0, 2.0]}, baselines=("a",))

    metrics = {
        name: {"judge_score": sum(v) / 4, **out["win_rates"][name], "elo": out["elo"][name]}
        for name, v in scores.items()
    }
    paths = write_results(metrics, str(tmp_path), title="toy")
    table = open(paths["markdown"]).read()
    assert "| ppo | 0.475 | 0.625 (" in table and "| sft | 0.275 | – |" in table
    assert json.load(open(paths["json"]))["systems"]["ppo"]["win_rate_vs_sft"] == pytest.approx(0.625)
    assert open(paths["plot"], "rb").read(4) == b"\x89PNG"
