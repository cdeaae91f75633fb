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
