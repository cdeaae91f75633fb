"""Ablations of the TL;DR PPO recipe, in the style of Huang et al. 2024: the win rate vs SFT when one detail is taken
away, each row from a real PPO run.

    python recipes/run_summarize.py                                    # first: a finished run in outputs/tldr
    python benchmarks/ablate_ppo_tldr.py --root outputs/tldr           # every variant; docs/summarize_ablation.json
    python benchmarks/ablate_ppo_tldr.py --root outputs/tldr --variants full half_episodes --num_prompts 64
    python benchmarks/ablate_ppo_tldr.py --root /tmp/toy --toy         # after run_summarize.py --toy --output_dir /tmp/toy

Each variant of :data:`VARIANTS` is ``recipes/ppo_tldr.py`` on the run's own PPO config
(``recipes/configs/ppo_<dataset>_offline.yaml``) with a few options changed, from the run's SFT policy against its
reward model, into ``ROOT/ablation/<variant>`` (``rlhf_ext.pipeline.run_stage``, as ``run_summarize.py`` runs its
stages). ``k4_labels`` first trains ``recipes/reward_tldr.py`` (the run's reward config) on each training article's
first 4 summaries, re-ranked from their stored judge scores (:func:`first_k_labels`; the held-out split is kept
whole, so both reward models are scored on the same held-out pairs), into ``ROOT/ablation/reward_k4``. A variant
that only restates what the config already does, or cannot run on this run (``critic_from_reward_model`` needs a
decoder reward model), is left out with one printed line saying why.

Then ONE ``recipes/evaluate_summaries.py`` call judges SFT and every variant on the held-out articles of the run's
own evaluation (its ``ROOT/eval/samples.json`` settings: split, number of articles, seed, lengths), with SFT as the
baseline, into ``ROOT/ablation/eval``. Per variant the JSON (``--output``, default ``docs/summarize_ablation.json``;
``ROOT/ablation/summary.json`` with ``--toy``) holds the changed options, the win rate vs SFT with its 90% interval,
KL to SFT, judge and reward-model scores, words, PPO seconds and episodes; ``rlhf_ext.results`` renders it as the
table of docs/summarization.md. A variant whose folder holds a finished policy (``ablation_run.json``, written after
its PPO run returns) is not trained again: rerun the command after an interruption. One seed per row: read the win
rates with their intervals.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RECIPES = ROOT / "recipes"
DOCS_JSON = ROOT / "docs" / "summarize_ablation.json"
RUN_RECORD = "ablation_run.json"  # written into a variant's folder once its PPO run has returned
# what each variant's row keeps of evaluate_summaries.py's results.json
METRICS = ("win_rate_vs_sft", "win_rate_vs_sft_ci", "kl_to_sft", "judge_score", "reward_model_score", "length_words")


@dataclass(frozen=True)
class Variant:
    taken_away: str  # what the row lacks compared with `full` ("+ ..." when it adds what the config lacks)
    options: Callable  # the config's parsed PPOConfig -> {PPO option: value} set on the command line
    labels_k: int | None = None  # the reward model is retrained on the first k summaries of each article


# Huang et al. 2024's details, each taken away from (or, where the config lacks it, added to) the recipe's config.
VARIANTS: dict[str, Variant] = {
    "full": Variant("nothing: the config as it is", lambda c: {}),
    "no_reward_normalization": Variant(
        "reward normalisation: the reward model's raw score", lambda c: {"reward_normalization": "none"}
    ),
    "reference_reward_normalization": Variant(
        "+ reward normalised on the reference summaries (Huang et al.), which the config lacks",
        lambda c: {"reward_normalization": "reference"},
    ),
    "trunk_value_head": Variant(
        "the critic copied from the reward model: a value head on the policy trunk",
        lambda c: {"critic_from_reward_model": False},
    ),
    "critic_from_reward_model": Variant(
        "the value head on the policy trunk: a critic copied from the reward model",
        lambda c: {"critic_from_reward_model": True},
    ),
    "half_episodes": Variant(
        "half the PPO episodes (max_steps halved)", lambda c: {"max_steps": max(1, c.max_steps // 2)}
    ),
    "k4_labels": Variant(
        "all but 4 of each article's K ranked summaries: the reward model learns from the first 4",
        lambda c: {},
        labels_k=4,
    ),
}


# ----------------------------------------------------------------------------- helpers


def cli(options: dict) -> list[str]:
    """``{"max_steps": 8, "critic_from_reward_model": True}`` -> ``["--max_steps", "8", "--critic_from_reward_model",
    "true"]``."""
    out = []
    for name, value in options.items():
        out += [f"--{name}", str(value).lower() if isinstance(value, bool) else str(value)]
    return out


def parse_ppo(config: Path, overrides: list[str]):
    """The PPO recipe's parsed arguments ``(recipe, PPOConfig, ModelConfig)`` for ``--config config overrides``: what
    the run will use, read without running it."""
    from trl import ModelConfig, TrlParser

    from rlhf_ext import PPOConfig
    from rlhf_ext.pipeline import load_script

    parser = TrlParser((load_script(RECIPES / "ppo_tldr.py").SummaryPPOArgs, PPOConfig, ModelConfig))
    return parser.parse_args_and_config(args=["--config", str(config), *overrides])


def episodes(args) -> int:
    """Episodes a PPO run samples: batches x episodes per batch (all processes)."""
    return int(args.num_total_batches * args.batch_size)


def first_k_labels(labels, k: int, tie_tolerance: float = 0.0):
    """Ranked labels as if each training article had been sampled only ``k`` times: its first ``k`` completions,
    ranked anew from their stored ``scores`` (``ranks_from_scores``, the labeler's rule), rows whose ``k`` all tie
    dropped (no comparison, as ``sample_and_label.py`` drops them). Every other split (the held-out one) is kept
    whole, so reward models trained on both label sets are scored on the same held-out pairs.

    Returns the new ``DatasetDict`` and its figures (rows, dropped rows, comparisons)."""
    from datasets import Dataset, DatasetDict

    from rlhf_ext.data.ranking import ranked_pairs, ranks_from_scores, scores_shared_by_copies

    train = labels["train"]
    widths = {len(c) for c in train["completions"]}
    if min(widths) <= k:
        raise ValueError(f"the labels have {min(widths)} completions for some article; {k} of them takes nothing away")
    rows, dropped = [], 0
    for row in train:
        scores = scores_shared_by_copies(row["completions"][:k], row["scores"][:k])
        ranks = ranks_from_scores(scores, tie_tolerance=tie_tolerance)
        if len(set(ranks)) < 2:
            dropped += 1
            continue
        rows.append({**row, "completions": list(row["completions"][:k]), "ranks": ranks, "scores": scores})
    if not rows:
        raise ValueError(f"every training article's first {k} completions tie: no comparison left")
    out = DatasetDict({name: split for name, split in labels.items()})
    out["train"] = Dataset.from_list(rows, features=train.features)
    stats = {
        "k": k,
        "train_prompts": len(rows),
        "all_tied_dropped": dropped,
        "comparisons": sum(len(ranked_pairs(r["ranks"])) for r in rows),
        "test_prompts": {name: len(split) for name, split in out.items() if name != "train"},
    }
    return out, stats


def critic_unavailable(reward_model: Path, sft: Path) -> str | None:
    """Why a critic cannot be copied from ``reward_model`` for the ``sft`` policy (the trainer's own check), or None."""
    from transformers import AutoTokenizer

    from rlhf_ext.critic import critic_from_reward_model

    try:
        critic_from_reward_model([str(reward_model)], None, AutoTokenizer.from_pretrained(sft), {})
    except ValueError as err:
        return str(err).split(". ")[0]
    return None


def finished(folder: Path) -> dict | None:
    """The record of a variant's finished PPO run in ``folder``, or None."""
    record = folder / RUN_RECORD
    if record.is_file() and (folder / "config.json").is_file():
        return json.loads(record.read_text())
    return None


# ----------------------------------------------------------------------------- main


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--root", required=True, help="A finished summarization run (run_summarize.py --output_dir).")
    ap.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS),
                    help="Variants to run (default: every one that differs from the config).")  # fmt: skip
    ap.add_argument("--dataset", default="tldr", choices=["tldr", "cnndm"], help="Which stand-in's configs.")
    ap.add_argument("--toy", action="store_true", help="The run is run_summarize.py --toy's: tiny models, few steps.")
    ap.add_argument("--full_from_run", action="store_true",
                    help="`full` is the run's own PPO stage (ROOT/ppo, run_summarize.py's run of the same config), "
                         "evaluated again, not trained again.")  # fmt: skip
    ap.add_argument("--num_prompts", type=int, default=None,
                    help="Held-out articles to evaluate (default: as many as the run's own evaluation).")  # fmt: skip
    ap.add_argument("--output", default=None,
                    help=f"The JSON written (default {DOCS_JSON.relative_to(ROOT)}; with --toy ROOT/ablation/summary.json).")  # fmt: skip
    ap.add_argument("--machine", default=None, help="How to describe the machine (default: N CPU cores).")
    opts = ap.parse_args(argv)

    from rlhf_ext.pipeline import PIPELINES, load_script, run_stage

    root = Path(opts.root)
    d = {name: root / name for name in ("sft", "labels", "reward", "eval")}
    for name in ("sft", "labels", "reward"):
        if not d[name].is_dir():
            raise SystemExit(
                f"error: {d[name]} does not exist: --root must be a finished run of recipes/run_summarize.py"
            )
    out_dir = root / "ablation"
    stages = {s.name: s for s in PIPELINES[opts.dataset]}
    configs = {name: RECIPES / "configs" / stages[name].config for name in ("ppo", "reward", "evaluate")}
    run_summarize = load_script(RECIPES / "run_summarize.py")
    toy = run_summarize.toy_overrides(root) if opts.toy else {name: [] for name in configs}

    # 1. what each variant changes, given what the config already does
    inputs = {"model_name_or_path": str(d["sft"]), "reward_model": str(d["reward"])}
    _, config, _ = parse_ppo(configs["ppo"], [*toy["ppo"], *cli(inputs)])
    plan, skipped = {}, {}
    for name in opts.variants:
        variant = VARIANTS[name]
        options = variant.options(config)
        if name != "full" and not variant.labels_k and all(getattr(config, k) == v for k, v in options.items()):
            same = ", ".join(f"{k} = {v}" for k, v in options.items())
            skipped[name] = f"the config already has {same}: that is `full`"
        elif options.get("critic_from_reward_model"):
            why = critic_unavailable(d["reward"], d["sft"])
            if why:
                skipped[name] = f"no critic can be copied from {d['reward']}: {why}"
        if name not in skipped:
            plan[name] = options
    for name, why in skipped.items():
        print(f"[ablation] skipping {name}: {why}", flush=True)

    # 2. the reward model of the K = 4 labels
    reward_k = {}
    for name in [n for n in plan if VARIANTS[n].labels_k]:
        k = VARIANTS[name].labels_k
        rm_dir, labels_dir = out_dir / f"reward_k{k}", out_dir / f"labels_k{k}"
        if (rm_dir / RUN_RECORD).is_file():
            print(f"[ablation] {rm_dir} is a finished reward model: not trained again", flush=True)
            stats = json.loads((labels_dir / "labeling_stats.json").read_text())
            seconds = json.loads((rm_dir / RUN_RECORD).read_text())["seconds"]
        else:
            from datasets import load_from_disk

            from rlhf_ext.offline.labelers import make_labeler

            task = json.loads((d["labels"] / "labeling_stats.json").read_text())["task"]
            try:
                subset, stats = first_k_labels(load_from_disk(str(d["labels"])), k, make_labeler(task).tie_tolerance)
            except ValueError as err:
                skipped[name] = str(err)
                print(f"[ablation] skipping {name}: {err}", flush=True)
                del plan[name]
                continue
            subset.save_to_disk(str(labels_dir))
            (labels_dir / "labeling_stats.json").write_text(json.dumps({"task": task, **stats}, indent=2))
            print(f"\n=== reward model on the first {k} summaries of each article ===", flush=True)
            over = [
                *toy["reward"],
                *run_summarize.reward_backbone(opts.dataset, opts.toy, d["sft"]),  # where the run's RM started
                "--preferences",
                str(labels_dir),
                "--output_dir",
                str(rm_dir),
            ]
            seconds = run_stage(RECIPES / stages["reward"].script, configs["reward"], over)
            (rm_dir / RUN_RECORD).write_text(json.dumps({"seconds": round(seconds, 1)}))
        accuracy = json.loads((rm_dir / "eval_results.json").read_text()).get("eval_accuracy")
        main_rm = d["reward"] / "eval_results.json"
        reward_k[name] = {
            "labels": stats,
            "heldout_pairwise_accuracy": accuracy,
            "full_labels_heldout_pairwise_accuracy": json.loads(main_rm.read_text()).get("eval_accuracy")
            if main_rm.is_file()
            else None,
            "seconds": seconds,
        }
        plan[name] = {"reward_model": str(rm_dir), **plan[name]}

    # 3. one PPO run per variant
    runs, policies = {}, {name: f"ablation/{name}" for name in plan}  # policy folders under root
    if opts.full_from_run and "full" in plan:
        timings = root / "timings.json"
        ppo_seconds = json.loads(timings.read_text())["seconds"].get("ppo") if timings.is_file() else None
        if not (root / "ppo" / "config.json").is_file() or ppo_seconds is None:
            raise SystemExit(
                f"error: --full_from_run needs the run's PPO policy in {root / 'ppo'} and its time in {timings}"
            )
        runs["full"] = {"overrides": [], "ppo_seconds": ppo_seconds, "episodes": episodes(config)}
        policies["full"] = "ppo"
        print(f"[ablation] full: the run's own PPO stage ({root / 'ppo'}, {ppo_seconds:.0f} s), not trained again")
    for number, (name, options) in enumerate(plan.items(), start=1):
        if name in runs:
            continue
        folder = out_dir / name
        record = finished(folder)
        if record and record["overrides"] != cli(options):
            print(f"[ablation] {name}: {folder} was trained with {record['overrides']}, not {cli(options)}: run again")
            record = None
        if record:
            print(f"[ablation] {name}: {folder} holds a finished policy ({record['ppo_seconds']:.0f} s of PPO): not "
                  "run again (delete the folder to rerun it)", flush=True)  # fmt: skip
        else:
            print(f"\n=== {number}/{len(plan)} PPO: {name} ===", flush=True)
            over = [*toy["ppo"], *cli({**inputs, "output_dir": str(folder), **options})]
            seconds = run_stage(RECIPES / stages["ppo"].script, configs["ppo"], over)
            _, args, _ = parse_ppo(configs["ppo"], over)
            record = {"overrides": cli(options), "ppo_seconds": round(seconds, 1), "episodes": episodes(args)}
            (folder / RUN_RECORD).write_text(json.dumps(record, indent=2))
        runs[name] = record
    if not runs:
        raise SystemExit("error: no variant left to evaluate")

    # 4. one evaluation of SFT and every variant, on the held-out articles of the run's own evaluation
    main_eval, same = d["eval"] / "samples.json", toy["evaluate"]
    if main_eval.is_file():  # its settings, so that both evaluations judge the same articles the same way
        settings = json.loads(main_eval.read_text())["config"]
        keep = ("dataset", "dataset_config", "split", "max_article_words", "num_prompts", "max_new_tokens",
                "temperature", "batch_size", "seed", "reward_model")  # fmt: skip
        same = cli({k: settings[k] for k in keep if settings.get(k) is not None})
    over = [*same, *(["--num_prompts", str(opts.num_prompts)] if opts.num_prompts else []), "--root", str(root),
            "--policies", "sft", *policies.values(), "--baseline", "sft", "--output_dir", str(out_dir / "eval"),
            "--update_cards", "false"]  # fmt: skip
    print(f"\n=== evaluation of sft and {len(runs)} variants ===", flush=True)
    eval_seconds = run_stage(RECIPES / stages["evaluate"].script, configs["evaluate"], over)
    results = json.loads((out_dir / "eval" / "results.json").read_text())
    systems = results["systems"]
    used = json.loads((out_dir / "eval" / "samples.json").read_text())["config"]

    variants = {}
    for name, record in runs.items():
        row = systems[policies[name]]
        variants[name] = {
            "taken_away": VARIANTS[name].taken_away,
            "policy": policies[name],
            "overrides": record["overrides"],
            **{key: row.get(key) for key in METRICS},
            "ppo_seconds": record["ppo_seconds"],
            "episodes": record["episodes"],
        }
        if name in reward_k:
            variants[name]["reward_model"] = reward_k[name]
    summary = {
        "command": "python benchmarks/ablate_ppo_tldr.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "date": time.strftime("%Y-%m-%d"),
        "machine": opts.machine or f"{os.cpu_count()} CPU cores, no GPU",
        "toy": opts.toy,
        "ppo_config": str(configs["ppo"].relative_to(ROOT)),
        "evaluation": {
            k: used[k] for k in ("dataset", "split", "num_prompts", "seed", "max_new_tokens", "temperature")
        },
        "evaluation_seconds": round(eval_seconds, 1),
        "sft": {key: systems["sft"].get(key) for key in ("judge_score", "reward_model_score", "length_words")},
        "variants": variants,
        "skipped": skipped,
    }
    output = Path(opts.output) if opts.output else (out_dir / "summary.json" if opts.toy else DOCS_JSON)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(summary, indent=2) + "\n")
    if output != out_dir / "summary.json":
        (out_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")

    from rlhf_ext.results import render_summarize_ablation, write_blocks

    print("\n" + render_summarize_ablation(summary))
    print(f"\nwritten: {output}")
    if output.resolve() == DOCS_JSON:
        try:
            for file in write_blocks(ROOT):
                print(f"rewrote {file} from {DOCS_JSON.relative_to(ROOT)}")
        except ValueError as err:  # the docs have no block for it yet
            print(f"{err}: add the block to docs/summarization.md, then run python -m rlhf_ext.results")
    return summary


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    main()
