"""rlhf_ext.data.rows.take_rows: the first N rows (seeded shuffle optional), all of them, or an error naming the option."""

from __future__ import annotations

import pytest
from datasets import Dataset

from rlhf_ext.data.rows import take_rows

DATA = Dataset.from_dict({"i": list(range(10))})


def test_first_rows_all_rows_and_a_seeded_shuffle():
    assert take_rows(DATA, None) is DATA
    assert take_rows(DATA, 3)["i"] == [0, 1, 2]
    assert take_rows(DATA, 10)["i"] == list(range(10))
    shuffled = take_rows(DATA, 4, seed=0)["i"]
    assert shuffled == DATA.shuffle(seed=0)["i"][:4] and shuffled != [0, 1, 2, 3]
    assert take_rows(DATA, 0)["i"] == []


def test_asking_for_more_rows_than_exist_is_an_error_naming_the_option():
    with pytest.raises(ValueError, match=r"^num_prompts=11 but the held-out split has only 10 rows$"):
        take_rows(DATA, 11, seed=0, option="num_prompts", what="the held-out split")
    with pytest.raises(ValueError, match=r"^num_train_rows=-1 must be >= 0"):
        take_rows(DATA, -1, option="num_train_rows")
