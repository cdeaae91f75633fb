"""rlhf_ext.results: the README's and docs' result blocks are what the published runs' JSON generates, a number changed
by hand is caught, and publishing a run rewrites them from that run's JSON."""

from __future__ import annotations

import copy
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from recipe_loader import load_recipe

from rlhf_ext.results import BLOCKS, check_blocks, render_demo, write_blocks

ROOT = Path(__file__).resolve().parents[1]


def repo_copy(tmp_path: Path) -> Path:
    """README.md and the docs the blocks live in and come from, in a folder of their own."""
    for file in {f for f, _, _, _ in BLOCKS} | {source for _, _, source, _ in BLOCKS}:
        (tmp_path / file).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / file, tmp_path / file)
    (tmp_path / "docs" / "images").mkdir(exist_ok=True)
    return tmp_path


def test_the_readme_and_docs_show_what_the_published_json_generates():
    assert check_blocks(ROOT) == [], "run: python -m rlhf_ext.results"


def test_a_number_edited_by_hand_is_caught_and_regenerated(tmp_path):
    repo = repo_copy(tmp_path)
    readme = repo / "README.md"
    text = readme.read_text()
    start = text.index("<!-- results:demo -->")
    block_end = text.index("<!-- /results:demo -->")
    win = json.loads((repo / "docs" / "demo_summary.json").read_text())["eval"]["win_rate"]
    shown = f"**{win:.3f}**"
    assert shown in text[start:block_end]
    readme.write_text(text[:start] + text[start:block_end].replace(shown, "**0.999**") + text[block_end:])
    assert check_blocks(repo) == ["README.md: demo"]
    cli = [sys.executable, "-m", "rlhf_ext.results", "--root", str(repo)]
    proc = subprocess.run([*cli, "--check"], capture_output=True, text=True)
    assert proc.returncode == 1 and "README.md: demo differs from its JSON" in proc.stderr
    assert subprocess.run(cli, capture_output=True, text=True).returncode == 0
    assert readme.read_text() == text and check_blocks(repo) == []


def test_the_demo_block_shows_the_runs_numbers():
    data = json.loads((ROOT / "docs" / "demo_summary.json").read_text())
    data = copy.deepcopy(data)
    data["eval"].update(win_rate=0.8125, win_rate_ci90=[0.75, 0.875], wins_ties_losses=[100, 8, 20], kl_to_initial=2.5)
    data["labels"].update(prompts=256, all_tied_dropped=6, comparisons=1400)
    data["timings_s"].update({"total": 840.0, "PPO": 420.0})
    data["ppo"].update(kl_target=3.0, batches=12, episodes_per_batch=64, epochs=2)
    text = render_demo(data)
    assert "| **0.812** (90% CI 0.750-0.875; 100 wins, 8 ties, 20 losses) |" in text
    assert "| 0 | 2.50 (target 3.0; band 1.5-4.5) |" in text
    assert "1,400 comparisons from 250 ranked prompts (6 of 256 all tied and were dropped)" in text
    assert "Wall time 14.0 min" in text and "PPO (12 batches of 64 episodes, 2 epochs) 7.0 min" in text


def test_publishing_a_demo_run_rewrites_the_json_the_plots_and_the_readme(tmp_path):
    repo = repo_copy(tmp_path / "repo")
    run = tmp_path / "run"
    dirs = {name: run / name for name in ("labels", "reward", "ppo", "eval")}
    for folder in ("ppo", "eval"):
        (dirs[folder] / "plots").mkdir(parents=True)
    (dirs["ppo"] / "plots" / "reward_vs_kl.png").write_bytes(b"png: reward vs KL")
    (dirs["eval"] / "plots" / "labeler_scores.png").write_bytes(b"png: scores")
    summary = json.loads((ROOT / "docs" / "demo_summary.json").read_text())
    summary["eval"]["win_rate"] = 0.875
    (run / "summary.json").write_text(json.dumps(summary))

    load_recipe("run_demo").publish(run, dirs, repo=repo)
    assert json.loads((repo / "docs" / "demo_summary.json").read_text()) == summary
    assert (repo / "docs" / "images" / "demo_reward_vs_kl.png").read_bytes() == b"png: reward vs KL"
    assert (repo / "docs" / "images" / "demo_labeler_scores.png").read_bytes() == b"png: scores"
    assert "**0.875**" in (repo / "README.md").read_text() and check_blocks(repo) == []


def test_publishing_a_summarization_run_rewrites_both_tables(tmp_path):
    repo = repo_copy(tmp_path / "repo")
    run = tmp_path / "run"
    dirs = {"eval": run / "eval"}
    (dirs["eval"] / "plots").mkdir(parents=True)
    (dirs["eval"] / "plots" / "results.png").write_bytes(b"png: results")
    summary = json.loads((ROOT / "docs" / "summarize_results.json").read_text())
    summary["evaluation"]["systems"]["ppo"]["win_rate_vs_sft"] = 0.6171875
    (run / "summary.json").write_text(json.dumps(summary))

    load_recipe("run_summarize").publish(run, dirs, repo=repo)
    for file in ("README.md", "docs/summarization.md"):
        assert "| 0.617 (0.39–0.54) |" in (repo / file).read_text(), file
    assert (repo / "docs" / "images" / "summarize_results.png").read_bytes() == b"png: results"
    assert check_blocks(repo) == []


def test_a_missing_block_is_named(tmp_path):
    repo = repo_copy(tmp_path)
    readme = repo / "README.md"
    readme.write_text(readme.read_text().replace("<!-- /results:demo -->", ""))
    with pytest.raises(ValueError, match="README.md has no <!-- results:demo -->"):
        write_blocks(repo)
