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

from rlhf_ext.results import (
    BLOCKS,
    check_blocks,
    render_demo,
    render_ppo_speed,
    render_summarize_ablation,
    write_blocks,
)

ROOT = Path(__file__).resolve().parents[1]


def repo_copy(tmp_path: Path) -> Path:
    """README.md and the docs the blocks live in and come from, in a folder of their own."""
    for file in {f for f, _, _, _ in BLOCKS} | {source for _, _, source, _ in BLOCKS}:
        if (ROOT / file).is_file():  # a JSON not published yet has no block either
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


def summarization_run(folder: Path, plot: bytes, ppo_win: float, ppo_ci: list[float], **labels) -> dict[str, Path]:
    """A finished run_summarize root in ``folder``: the published summary.json with PPO's win rate vs SFT (and the
    ``labels`` fields) replaced by a run's new numbers, and the evaluation's plot. Returns the run's folders."""
    dirs = {"eval": folder / "eval"}
    (dirs["eval"] / "plots").mkdir(parents=True)
    (dirs["eval"] / "plots" / "results.png").write_bytes(plot)
    summary = json.loads((ROOT / "docs" / "summarize_results.json").read_text())
    ppo = summary["evaluation"]["systems"]["ppo"]
    ppo["win_rate_vs_sft"], ppo["win_rate_vs_sft_ci"] = ppo_win, ppo_ci
    summary["labels"].update(labels)
    (folder / "summary.json").write_text(json.dumps(summary))
    return dirs


def test_publishing_a_summarization_run_rewrites_both_tables(tmp_path):
    repo = repo_copy(tmp_path / "repo")
    run = tmp_path / "run"
    dirs = summarization_run(run, b"png: results", 0.6171875, [0.3046875, 0.4453125])

    load_recipe("run_summarize").publish(run, dirs, repo=repo)
    for file in ("README.md", "docs/summarization.md"):
        assert "| 0.617 (0.30–0.45) |" in (repo / file).read_text(), file
    assert (repo / "docs" / "images" / "summarize_results.png").read_bytes() == b"png: results"
    assert check_blocks(repo) == []


def test_publishing_a_cnndm_run_rewrites_its_own_blocks_only(tmp_path):
    repo = repo_copy(tmp_path / "repo")
    readme = (repo / "README.md").read_text()
    run = tmp_path / "run"
    dirs = summarization_run(run, b"png: cnndm", 0.5390625, [0.4453125, 0.6328125],
                             comparisons=5123, train_prompts=168, test_prompts=24)  # fmt: skip

    load_recipe("run_summarize").publish(run, dirs, repo=repo, dataset="cnndm")
    assert (repo / "docs" / "cnndm_results.json").read_text() == (run / "summary.json").read_text()
    assert (repo / "docs" / "images" / "cnndm_results.png").read_bytes() == b"png: cnndm"
    text = (repo / "docs" / "summarization.md").read_text()
    table = text[text.index("<!-- results:cnndm-table -->") : text.index("<!-- /results:cnndm-table -->")]
    assert "| 0.539 (0.45–0.63) |" in table
    facts = text[text.index("<!-- results:cnndm-facts -->") : text.index("<!-- /results:cnndm-facts -->")]
    assert "5,123 comparisons from 168 ranked prompts (24 held out" in facts and "`docs/cnndm_results.json`" in facts
    assert (repo / "README.md").read_text() == readme, "the TL;DR run stays the README's"
    assert check_blocks(repo) == []


def test_a_missing_block_is_named(tmp_path):
    repo = repo_copy(tmp_path)
    readme = repo / "README.md"
    readme.write_text(readme.read_text().replace("<!-- /results:demo -->", ""))
    with pytest.raises(ValueError, match="README.md has no <!-- results:demo -->"):
        write_blocks(repo)


ABLATION = {
    "date": "2026-12-01",
    "machine": "2 CPU cores, no GPU",
    "ppo_config": "recipes/configs/ppo_tldr_offline.yaml",
    "evaluation": {"dataset": "offline-tldr", "split": "test", "num_prompts": 128, "seed": 1234},
    "sft": {"judge_score": 0.5762765, "length_words": 9.7734375},
    "variants": {
        "full": {
            "taken_away": "nothing: the config as it is",
            "win_rate_vs_sft": 0.546875,
            "win_rate_vs_sft_ci": [0.4765625, 0.6171875],
            "kl_to_sft": 0.6365,
            "judge_score": 0.5971,
            "length_words": 10.28125,
            "ppo_seconds": 607.7,
            "episodes": 128,
        },
        "k4_labels": {
            "taken_away": "all but 4 of each article's K ranked summaries",
            "win_rate_vs_sft": 0.5,
            "win_rate_vs_sft_ci": [0.4296875, 0.5703125],
            "kl_to_sft": 1.5325,
            "judge_score": 0.5762765,
            "length_words": 8.8203125,
            "ppo_seconds": 1234.0,
            "episodes": 1536,
            "reward_model": {
                "labels": {"comparisons": 665, "train_prompts": 112},
                "heldout_pairwise_accuracy": 0.4818,
                "full_labels_heldout_pairwise_accuracy": 0.5636,
            },
        },
    },
    "skipped": {"critic_from_reward_model": "no critic can be copied from outputs/tldr/reward: an encoder"},
}


def test_the_ablation_table_shows_each_variants_numbers():
    expected = """\
| variant | what was taken away | win rate vs SFT (90% CI) | KL to SFT | judge score | words | PPO min | episodes |
|---|---|---|---|---|---|---|---|
| sft | (the starting policy) | – | 0 | 0.576 | 9.8 | – | – |
| full | nothing: the config as it is | 0.547 (0.477-0.617) | 0.64 | 0.597 | 10.3 | 10.1 | 128 |
| k4_labels | all but 4 of each article's K ranked summaries | 0.500 (0.430-0.570) | 1.53 | 0.576 | 8.8 | 20.6 | 1,536 |

One run per row, from `recipes/configs/ppo_tldr_offline.yaml` with the options each variant changes; judged on 128 \
held-out articles (offline-tldr, test split, seed 1234), ties half. 2 CPU cores, no GPU, 2026-12-01, \
`docs/summarize_ablation.json`.
`k4_labels`: 665 comparisons from 112 articles; reward model held-out pairwise accuracy 0.482 (all K: 0.564, the \
same held-out pairs).
Not run: `critic_from_reward_model` (no critic can be copied from outputs/tldr/reward: an encoder)."""
    assert render_summarize_ablation(ABLATION) == expected
    # `full` taken from the run's own PPO stage (--full_from_run) says so under the table
    reused = json.loads(json.dumps(ABLATION))
    reused["variants"]["full"]["policy"] = "ppo"
    reused["variants"]["k4_labels"]["policy"] = "ablation/k4_labels"
    assert render_summarize_ablation(reused) == expected.replace(
        "`docs/summarize_ablation.json`.\n",
        "`docs/summarize_ablation.json`.\n`full` is the run's own PPO stage (`ppo`), evaluated again beside the others.\n",
    )


def test_the_ppo_speed_table_shows_each_round_the_medians_and_the_speed_up():
    def run(eps, rss):
        return {"episodes": 128, "episodes_per_s": eps, "seconds": 128 / eps, "peak_rss_mb": rss}

    bench = {
        "options": {"steps": 8, "repeats": 3, "threads": 2},
        "configs": ["ppo", "ppo@abc123"],
        "results": {
            "ppo": [run(2.0, 4700.2), run(2.2, 4750.0), run(2.1, 4720.0)],
            "ppo@abc123": [run(1.4, 5900.0), run(1.2, 5980.6), run(1.5, 5950.0)],
        },
        "machine": "2 CPU cores, no GPU, quiet machine",
        "date": "2026-12-01",
        "command": "python benchmarks/bench_ppo.py --configs ppo,ppo@abc123",
    }
    # medians 2.1 and 1.4 episodes/s: x1.50; peak RSS is each configuration's largest
    assert (
        render_ppo_speed(bench)
        == """\
| configuration | episodes/s per round | median | `ppo` is faster by | peak RSS, MB |
|---|---|---|---|---|
| `ppo` | 2.000, 2.200, 2.100 | 2.100 | – | 4750 |
| `ppo@abc123` | 1.400, 1.200, 1.500 | 1.400 | x1.50 | 5981 |

128 episodes per run (8 optimizer steps), 3 rounds with the configurations interleaved, 2 torch threads; \
`<config>@<rev>` is rlhf_ext at that git revision. 2 CPU cores, no GPU, quiet machine, 2026-12-01, \
`docs/bench_ppo_speed.json`; re-run with `python benchmarks/bench_ppo.py --configs ppo,ppo@abc123`."""
    )


def test_the_ablation_block_is_published_once_its_json_exists(tmp_path):
    repo = repo_copy(tmp_path)
    doc = repo / "docs" / "summarization.md"
    # start from a repository that has published no ablation yet: no JSON, no block
    (repo / "docs" / "summarize_ablation.json").unlink(missing_ok=True)
    text = doc.read_text()
    begin, end = "<!-- results:summarize-ablation -->", "<!-- /results:summarize-ablation -->"
    if begin in text:
        text = text[: text.index(begin)] + text[text.index(end) + len(end) :]
    doc.write_text(text)
    assert check_blocks(repo) == []
    (repo / "docs" / "summarize_ablation.json").write_text(json.dumps(ABLATION))
    with pytest.raises(ValueError, match="no <!-- results:summarize-ablation --> .* block for docs/"):
        check_blocks(repo)
    doc.write_text(doc.read_text() + "\n<!-- results:summarize-ablation -->\n<!-- /results:summarize-ablation -->\n")
    assert check_blocks(repo) == ["docs/summarization.md: summarize-ablation"]
    assert write_blocks(repo) == ["docs/summarization.md"] and check_blocks(repo) == []
    assert "| full | nothing: the config as it is | 0.547 (0.477-0.617) |" in doc.read_text()
    (repo / "docs" / "summarize_ablation.json").unlink()  # a block whose JSON is gone
    with pytest.raises(ValueError, match="generated from docs/summarize_ablation.json, which does not exist"):
        check_blocks(repo)


def test_ppo_runs_are_collected_from_their_configs_logs_and_one_evaluation(tmp_path):
    from rlhf_ext.results import render_ppo_runs

    collect = load_recipe("collect_ppo_runs", folder=ROOT / "benchmarks")
    config = {"max_steps": 128, "per_device_train_batch_size": 8, "num_ppo_epochs": 2, "output_dir": "x"}
    (tmp_path / "a.yaml").write_text(json.dumps(config))  # YAML is a superset of JSON
    (tmp_path / "b.yaml").write_text(
        json.dumps({**config, "critic_from_reward_model": True, "reward_model": "labeler"})
    )
    (tmp_path / "a.log").write_text("{'train_runtime': '987.2', 'train_loss': '0.1'}\n")
    (tmp_path / "b.log").write_text("step 1\n{'train_runtime': '1500'}\n")
    (tmp_path / "unfinished.log").write_text("  5%| 6/128\n")
    row = {"judge_score": 0.5, "kl_to_sft": 1.25, "win_rate_vs_sft": 0.625, "win_rate_vs_sft_ci": [0.5, 0.75]}
    (tmp_path / "eval").mkdir()
    (tmp_path / "eval" / "results.json").write_text(
        json.dumps({"systems": {"sft": {"judge_score": 0.45}, "a": row, "b": row}})
    )
    (tmp_path / "labels").mkdir()
    stats = {"comparisons": 14216, "train_prompts": 448, "test_prompts": 64}
    (tmp_path / "labels" / "labeling_stats.json").write_text(json.dumps(stats))
    (tmp_path / "rm").mkdir()
    (tmp_path / "rm" / "eval_results.json").write_text(json.dumps({"eval_accuracy": 0.6177}))
    out = tmp_path / "runs.json"
    common = ["--eval", str(tmp_path / "eval"), "--labels", str(tmp_path / "labels"), "--reward", str(tmp_path / "rm")]
    with pytest.raises(SystemExit, match="unfinished.log: no train_runtime"):
        collect.main([*common, "--run", f"a={tmp_path}/a.yaml:{tmp_path}/unfinished.log", "--output", str(out)])
    with pytest.raises(SystemExit, match=r"runs \['c'\] are not in"):
        collect.main([*common, "--run", f"c={tmp_path}/a.yaml:{tmp_path}/a.log", "--output", str(out)])
    runs = [f"--run=a={tmp_path}/a.yaml:{tmp_path}/a.log", f"--run=b={tmp_path}/b.yaml:{tmp_path}/b.log"]
    collect.main([*common, *runs, "--machine", "2 CPU cores", "--output", str(out)])
    data = json.loads(out.read_text())
    assert data["runs"]["a"]["episodes"] == 512 and data["runs"]["a"]["optimizer_steps"] == 128  # 128 x 8 / 2
    text = render_ppo_runs(data)
    assert "| a | reward model | 512 | 128 (8) | 2 | value head on the policy trunk | 16.5 |" in text
    assert "| b | the judge (SummaryLabeler) | 512 | 128 (8) | 2 | copy of the reward model | 25.0 |" in text
    assert "| a | " in text.split("| system |")[1] and "0.625 (0.50–0.75)" in text
    assert text.endswith(
        f"Labels: 14,216 comparisons from 448 articles; reward model held-out pairwise accuracy 0.618 (64 "
        f"held-out articles). 2 CPU cores, {data['date']}, `docs/summarize_ppo_runs.json`."
    )
