"""benchmarks/bench_ppo.py: the names its configurations are written in."""

from __future__ import annotations

import pytest
from recipe_loader import load_benchmark


@pytest.fixture(scope="module")
def bench():
    return load_benchmark("bench_ppo")


@pytest.mark.parametrize(
    ("config", "named", "parsed"),
    [
        ("ppo", "ppo@abc123", ("ppo", "abc123", [])),
        ("ppo:-trim_prompt_padding", "ppo@abc123:-trim_prompt_padding", ("ppo", "abc123", ["trim_prompt_padding"])),
        ("ppo+critic:-compact_lm_head:-trim_prompt_padding", "ppo+critic@abc123:-compact_lm_head:-trim_prompt_padding",
         ("ppo+critic", "abc123", ["compact_lm_head", "trim_prompt_padding"])),
    ],
)  # fmt: skip
def test_a_configuration_at_a_revision_keeps_its_switches(bench, config, named, parsed):
    """--baseline-rev REV names each configuration at REV; one with a switch turned off stays parseable."""
    assert bench.at_rev(config, "abc123") == named
    assert bench.parse_config(named) == parsed


def test_an_unknown_switch_is_refused_by_name(bench):
    with pytest.raises(ValueError, match=r"ppo:-fast: a switch is written :-name, with name one of"):
        bench.parse_config("ppo:-fast")
    with pytest.raises(ValueError, match=r"ppo:-trim_prompt_padding@abc: a switch is written :-name"):
        bench.parse_config("ppo:-trim_prompt_padding@abc")
