"""The published runs' results in README.md and docs/, generated from the runs' JSON so they never drift from it.

- ``docs/demo_summary.json`` (``make demo``'s ``summary.json``) -> the demo's table and figures in README.md;
- ``docs/summarize_results.json`` (``make summarize``'s ``summary.json``) -> the summarization table and figures in
  README.md and docs/summarization.md (the table is :func:`rlhf_ext.evaluation.results_markdown`, as the run wrote it);
- ``docs/cnndm_results.json`` (``make summarize SUMMARIZE_ARGS="--dataset cnndm"``'s ``summary.json``) -> the
  CNN/DM table and its line of labels and stage times in docs/summarization.md;
- ``docs/summarize_ablation.json`` (``benchmarks/ablate_ppo_tldr.py``) -> the PPO ablation table of
  docs/summarization.md. Until that JSON exists, a block of it in no file is simply not published yet;
- ``docs/bench_ppo_speed.json`` (``benchmarks/bench_ppo.py --json``) -> the PPO speed table of docs/ppo.md.

Each generated block sits between ``<!-- results:NAME -->`` and ``<!-- /results:NAME -->``; text outside the markers
is prose and stays as written.

    python -m rlhf_ext.results           # rewrite the blocks from docs/*.json
    python -m rlhf_ext.results --check   # exit 1 naming each block that differs from its JSON (a test runs this)

``recipes/run_demo.py --publish`` and ``recipes/run_summarize.py [--dataset cnndm] --publish`` make their run the
published one with :func:`publish_run`: its JSON and plots copied into docs/, every block rewritten from the JSON.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import statistics
import sys
from collections.abc import Callable
from pathlib import Path

__all__ = [
    "BLOCKS",
    "check_blocks",
    "publish_run",
    "render_demo",
    "render_ppo_speed",
    "render_summarize_ablation",
    "render_cnndm_facts",
    "render_summarize_facts",
    "render_summarize_table",
    "write_blocks",
]

DEMO_JSON = "docs/demo_summary.json"
SUMMARIZE_JSON = "docs/summarize_results.json"
CNNDM_JSON = "docs/cnndm_results.json"
PPO_RUNS_JSON = "docs/summarize_ppo_runs.json"
ABLATION_JSON = "docs/summarize_ablation.json"
PPO_SPEED_JSON = "docs/bench_ppo_speed.json"
JUDGE_NAMES = {"SentimentLabeler": "VADER"}


def _minutes(seconds: float) -> str:
    return f"{seconds / 60:.1f} min"


def render_demo(data: dict) -> str:
    """The demo's results: the before/after table and the line of labels, reward model and wall times."""
    ev, labels, ppo, timings = data["eval"], data["labels"], data["ppo"], data["timings_s"]
    judge = JUDGE_NAMES.get(ev["labeler"], ev["labeler"])
    low, high = ev["win_rate_ci90"]
    wins, ties, losses = ev["wins_ties_losses"]
    target = ppo.get("kl_target")
    band = f" (target {target:.1f}; band {target / 2:.1f}-{target * 1.5:.1f})" if target else ""
    n = ev["num_prompts"]
    lines = [
        f"Measured on {data['machine']} ({data['date']}, one run, seed 0; `{DEMO_JSON}`):",
        "",
        "| | initial policy | after PPO |",
        "|---|---|---|",
        f"| {judge} score of continuations (mean, {n} held-out prompts) | {ev['labeler_score_before']:.3f} | "
        f"{ev['labeler_score_after']:.3f} |",
        f"| reward-model score (mean) | {ev['reward_model_score_before']:.3f} | {ev['reward_model_score_after']:.3f} |",
        f"| win rate vs initial policy ({judge} judge, ties half) | | **{ev['win_rate']:.3f}** (90% CI "
        f"{low:.3f}-{high:.3f}; {wins} wins, {ties} ties, {losses} losses) |",
        f"| KL(trained ‖ initial), nats per continuation | 0 | {ev['kl_to_initial']:.2f}{band} |",
        "",
        f"Labels: {labels['comparisons']:,} comparisons from {labels['prompts'] - labels['all_tied_dropped']} ranked "
        f"prompts ({labels['all_tied_dropped']} of {labels['prompts']} all tied and were dropped); reward model "
        f"held-out pairwise accuracy {data['reward_model']['heldout_pairwise_accuracy']:.3f} (InstructGPT: 69.6%). "
        f"Final KL coefficient {ppo['final_kl_coef']:.3f}. Wall time {_minutes(timings['total'])}: sampling and "
        f"labeling {_minutes(timings['sample and label'])}, reward model {_minutes(timings['reward model'])}, PPO "
        f"({ppo['batches']} batches of {ppo['episodes_per_batch']} episodes, {ppo['epochs']} epochs) "
        f"{_minutes(timings['PPO'])}, evaluation {_minutes(timings['evaluation'])}.",
    ]
    return "\n".join(lines)


def render_summarize_table(data: dict) -> str:
    from .evaluation import results_markdown

    return results_markdown(data["evaluation"]["systems"]).rstrip("\n")


def render_summarize_facts(data: dict, source: str = SUMMARIZE_JSON) -> str:
    """Labels, reward-model accuracy and stage times of the summarization run (published as ``source``)."""
    labels, stages = data["labels"], data["stage_seconds"]
    names = {"sft": "SFT", "label": "labels", "reward": "RM", "ppo": "PPO", "dpo": "DPO", "orpo": "ORPO",
             "evaluate": "evaluation"}  # fmt: skip
    times = ", ".join(f"{names.get(stage, stage)} {seconds / 60:.1f}" for stage, seconds in stages.items())
    return (
        f"Labels: {labels['comparisons']:,} comparisons from {labels['train_prompts']} ranked prompts ({labels['test_prompts']} "
        f"held out, {labels['all_tied_dropped']} all tied); reward model held-out pairwise accuracy "
        f"{data['reward_model_heldout_pairwise_accuracy']:.3f}. Wall time {_minutes(data['total_seconds'])} ({times} min; "
        f"{data['machine']}, {data['date']}, `{source}`)."
    )


def render_cnndm_facts(data: dict) -> str:
    """:func:`render_summarize_facts` of the CNN/DM run."""
    return render_summarize_facts(data, CNNDM_JSON)


def render_summarize_ablation(data: dict) -> str:
    """The PPO ablation table (``benchmarks/ablate_ppo_tldr.py``): each variant's win rate vs SFT, KL, judge score,
    length and cost, then the variants left out and why."""

    def value(x, spec: str) -> str:
        return "–" if x is None else format(x, spec)

    ev, sft = data["evaluation"], data["sft"]
    lines = [
        "| variant | what was taken away | win rate vs SFT (90% CI) | KL to SFT | judge score | words | PPO min | episodes |",
        "|---|---|---|---|---|---|---|---|",
        f"| sft | (the starting policy) | – | 0 | {value(sft['judge_score'], '.3f')} | "
        f"{value(sft['length_words'], '.1f')} | – | – |",
    ]
    for name, row in data["variants"].items():
        low, high = row["win_rate_vs_sft_ci"]
        minutes = None if row["ppo_seconds"] is None else row["ppo_seconds"] / 60
        lines.append(
            f"| {name} | {row['taken_away']} | {row['win_rate_vs_sft']:.3f} ({low:.3f}-{high:.3f}) | "
            f"{value(row['kl_to_sft'], '.2f')} | {value(row['judge_score'], '.3f')} | "
            f"{value(row['length_words'], '.1f')} | {value(minutes, '.1f')} | {row['episodes']:,} |"
        )
    notes = [
        f"One run per row, from `{data['ppo_config']}` with the options each variant changes; judged on "
        f"{ev['num_prompts']} held-out articles ({ev['dataset']}, {ev['split']} split, seed {ev['seed']}), ties half. "
        f"{data['machine']}, {data['date']}, `{ABLATION_JSON}`."
    ]
    for name, row in data["variants"].items():
        if row.get("policy") and not row["policy"].startswith("ablation/"):
            notes.append(
                f"`{name}` is the run's own PPO stage (`{row['policy']}`), evaluated again beside the others."
            )
        rm = row.get("reward_model")
        if rm:
            notes.append(
                f"`{name}`: {rm['labels']['comparisons']:,} comparisons from {rm['labels']['train_prompts']} articles; "
                f"reward model held-out pairwise accuracy {value(rm['heldout_pairwise_accuracy'], '.3f')} (all K: "
                f"{value(rm['full_labels_heldout_pairwise_accuracy'], '.3f')}, the same held-out pairs)."
            )
    for name, why in data.get("skipped", {}).items():
        notes.append(f"Not run: `{name}` ({why}).")
    return "\n".join([*lines, "", *notes])


def render_ppo_runs(data: dict) -> str:
    """PPO runs from one SFT policy and reward model (``benchmarks/collect_ppo_runs.py``): what each run did, then
    the joint evaluation's table and the line of labels and reward-model accuracy."""
    from .evaluation import results_markdown

    lines = [
        "| run | reward | episodes | optimizer steps (minibatch) | PPO epochs | critic | PPO min |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, run in data["runs"].items():
        critic = "copy of the reward model" if run["critic_from_reward_model"] else "value head on the policy trunk"
        lines.append(
            f"| {name} | {run['reward_model']} | {run['episodes']:,} | {run['optimizer_steps']} ({run['minibatch']}) "
            f"| {run['num_ppo_epochs']} | {critic} | {run['train_runtime_s'] / 60:.1f} |"
        )
    labels, rm, ev = data["labels"], data["reward_model"], data["evaluation"]
    facts = (
        f"Labels: {labels['comparisons']:,} comparisons from {labels['train_prompts']} articles; reward model "
        f"held-out pairwise accuracy {rm['eval_accuracy']:.3f} ({labels['test_prompts']} held-out articles). "
        f"{data['machine']}, {data['date']}, `{PPO_RUNS_JSON}`."
    )
    return "\n".join([*lines, "", results_markdown(ev["systems"]).rstrip("\n"), "", facts])


def render_ppo_speed(data: dict) -> str:
    """``benchmarks/bench_ppo.py``'s side-by-side runs: each configuration's episodes/s per round, their median, the
    first configuration's speed-up over it, peak RSS; then how it was run."""
    results, opts = data["results"], data["options"]
    first = data["configs"][0]
    median = {config: statistics.median(r["episodes_per_s"] for r in rows) for config, rows in results.items()}
    lines = [
        f"| configuration | episodes/s per round | median | `{first}` is faster by | peak RSS, MB |",
        "|---|---|---|---|---|",
    ]
    for config in data["configs"]:
        rounds = ", ".join(f"{r['episodes_per_s']:.3f}" for r in results[config])
        speedup = "–" if config == first else f"x{median[first] / median[config]:.2f}"
        rss = max(r["peak_rss_mb"] for r in results[config])
        lines.append(f"| `{config}` | {rounds} | {median[config]:.3f} | {speedup} | {rss:.0f} |")
    episodes = results[first][0]["episodes"]
    facts = (
        f"{episodes} episodes per run ({opts['steps']} optimizer steps), {opts['repeats']} rounds with the "
        f"configurations interleaved, {opts['threads']} torch threads; `<config>@<rev>` is rlhf_ext at that git "
        f"revision. {data['machine']}, {data['date']}, `{PPO_SPEED_JSON}`; re-run with `{data['command']}`."
    )
    return "\n".join([*lines, "", facts])


# (file, block name, JSON it is generated from, renderer)
BLOCKS: list[tuple[str, str, str, Callable[[dict], str]]] = [
    ("README.md", "demo", DEMO_JSON, render_demo),
    ("README.md", "summarize-table", SUMMARIZE_JSON, render_summarize_table),
    ("README.md", "summarize-facts", SUMMARIZE_JSON, render_summarize_facts),
    ("docs/summarization.md", "summarize-table", SUMMARIZE_JSON, render_summarize_table),
    ("docs/summarization.md", "summarize-facts", SUMMARIZE_JSON, render_summarize_facts),
    ("docs/summarization.md", "cnndm-table", CNNDM_JSON, render_summarize_table),
    ("docs/summarization.md", "cnndm-facts", CNNDM_JSON, render_cnndm_facts),
    ("docs/summarization.md", "summarize-ablation", ABLATION_JSON, render_summarize_ablation),
    ("docs/summarization.md", "ppo-runs", PPO_RUNS_JSON, render_ppo_runs),
    ("docs/ppo.md", "ppo-speed", PPO_SPEED_JSON, render_ppo_speed),
]


def _pattern(name: str) -> re.Pattern:
    """The block ``name``: its opening line, its text (group 2; None when the markers enclose nothing yet), its end."""
    return re.compile(
        rf"(<!-- results:{re.escape(name)} -->\n)(?:(.*?)\n)?(<!-- /results:{re.escape(name)} -->)", re.S
    )


def _blocks(root: Path) -> list[tuple[str, str, str, Callable[[dict], str]]]:
    """The entries of :data:`BLOCKS` that are published: all but those whose JSON does not exist yet and whose file
    has no block for it (a block with no JSON, or a JSON with no block, is an error: ``_generated`` names it)."""
    return [
        (file, name, source, render)
        for file, name, source, render in BLOCKS
        if (root / source).is_file() or _pattern(name).search((root / file).read_text())
    ]


def _generated(root: Path) -> dict[str, str]:
    """Each file's text with its blocks regenerated."""
    texts: dict[str, str] = {}
    cache: dict[str, dict] = {}
    for file, name, source, render in _blocks(root):
        text = texts.get(file) or (root / file).read_text()
        pattern = _pattern(name)
        if not pattern.search(text):
            raise ValueError(f"{file} has no <!-- results:{name} --> ... <!-- /results:{name} --> block for {source}")
        if not (root / source).is_file():
            raise ValueError(f"{file}'s block {name} is generated from {source}, which does not exist")
        if source not in cache:
            cache[source] = json.loads((root / source).read_text())
        block = render(cache[source])
        texts[file] = pattern.sub(lambda m, block=block: m.group(1) + block + "\n" + m.group(3), text, count=1)
    return texts


def check_blocks(root: str | Path = ".") -> list[str]:
    """The ``file: block`` names whose text differs from what their JSON generates (empty when all agree)."""
    root = Path(root)
    stale = []
    for file, text in _generated(root).items():
        current = (root / file).read_text()
        for f, name, _, _ in _blocks(root):
            if f == file and _pattern(name).search(current).group(2) != _pattern(name).search(text).group(2):
                stale.append(f"{file}: {name}")
    return stale


def write_blocks(root: str | Path = ".") -> list[str]:
    """Rewrite every block from its JSON; returns the files changed."""
    root = Path(root)
    changed = []
    for file, text in _generated(root).items():
        if (root / file).read_text() != text:
            (root / file).write_text(text)
            changed.append(file)
    return changed


def publish_run(summary: Path, json_name: str, plots: dict[Path, str], repo: str | Path = ".") -> list[str]:
    """Make a run the published one: its ``summary`` JSON copied to ``repo/json_name`` (one of the JSON files the
    blocks come from), each plot in ``plots`` that exists copied to ``repo/docs/images/<name>``, every block rewritten
    from the JSON. Returns the files rewritten."""
    repo = Path(repo)
    if json_name not in {source for _, _, source, _ in BLOCKS}:
        raise ValueError(f"{json_name} is not a JSON file the results blocks come from")
    shutil.copy(summary, repo / json_name)
    for source, name in plots.items():
        if Path(source).is_file():
            shutil.copy(source, repo / "docs" / "images" / name)
    changed = write_blocks(repo)
    for file in changed:
        print(f"published: {file} regenerated from {json_name}")
    return changed


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--root", default=".", help="The repository root (README.md, docs/).")
    ap.add_argument("--check", action="store_true", help="Only check; exit 1 if a block differs from its JSON.")
    args = ap.parse_args(argv)
    if args.check:
        stale = check_blocks(args.root)
        for item in stale:
            print(f"{item} differs from its JSON: run python -m rlhf_ext.results", file=sys.stderr)
        return 1 if stale else 0
    for file in write_blocks(args.root):
        print(f"rewrote {file}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
