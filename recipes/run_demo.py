"""The whole sentiment pipeline of Ziegler et al. 2019 with InstructGPT's ranked labels, on the offline default.

    make demo                     # = python recipes/run_demo.py
    python recipes/run_demo.py --task descriptiveness         # writes outputs/descriptiveness/
    python recipes/run_demo.py --push_to_hub --hub_model_id you/smollm2-ppo-sentiment
    python recipes/run_demo.py --cards_dir model_cards/sentiment  # also keep the example cards in the repository
    python recipes/run_demo.py --publish   # the run becomes the published one: docs/demo_summary.json, README table,
                                           # docs/images plots, model_cards/sentiment

Stages, each a recipe of its own that runs alone (``accelerate launch recipes/<stage>.py --config ...``):
1. ``sample_and_label.py``   SmolLM2 samples K = 4 continuations of 256 review openings; the labeler ranks them.
2. ``reward_sentiment.py``   RankedRewardTrainer fits a MiniLM reward model on the rankings.
3. ``ppo_sentiment.py``      PPO with Ziegler's adaptive KL against that reward model (LoRA on SmolLM2).
4. ``evaluate_sentiment.py`` held-out prompts: labeler and RM scores, KL, win rate vs the initial policy, written
                             into the policy's card. Then ``summary.json``, and with ``--push_to_hub`` the policy,
                             the reward model and the ranked dataset, each with its card.

Each stage runs as the command this script prints would run it (``rlhf_ext.pipeline.run_stage``: the recipe's own
argument parsing on its config plus a few overrides, inside this interpreter so TRL is imported once); stages pass
results on through the files they write, as separate commands would. ``--toy`` runs the same stages on tiny random
models in about a minute (the CI test).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import yaml

from rlhf_ext.pipeline import PIPELINES

HERE = Path(__file__).resolve().parent
STAGES = tuple(stage.name for stage in PIPELINES["sentiment"])  # label, reward, ppo, evaluate
SCRIPTS = {stage.name: stage.script for stage in PIPELINES["sentiment"]}
CONFIGS = {stage.name: stage.config for stage in PIPELINES["sentiment"]}


def toy_overrides(root: Path) -> dict[str, list[str]]:
    """Tiny random models and a few steps: every stage's code path in about a minute."""
    from rlhf_ext.testing.tiny_models import build_tiny_models

    tiny = build_tiny_models(root / "tiny-models")
    # A random tiny model rarely writes sentiment words (VADER ties everything), so the toy ranks by the
    # descriptiveness proxy unless --task says otherwise, and samples longer at temperature 1.
    return {
        "label": ["--model_name_or_path", str(tiny.causal_lm), "--num_prompts", "24", "--temperature", "1.0"],
        "reward": ["--model_name_or_path", str(tiny.reward_model), "--num_train_epochs", "1"],
        "ppo": ["--model_name_or_path", str(tiny.causal_lm), "--num_prompts", "32", "--max_steps", "2",
                "--per_device_train_batch_size", "8", "--max_completion_length", "8", "--use_peft", "false"],
        "evaluate": ["--initial_model", str(tiny.causal_lm), "--num_prompts", "16"],
    }  # fmt: skip


def publish(root: Path, dirs: dict[str, Path], repo: Path = HERE.parent) -> None:
    """This run becomes the published one: docs/demo_summary.json, the README's block generated from it, the plots."""
    from rlhf_ext.results import DEMO_JSON, publish_run

    plots = {dirs["ppo"] / "plots" / "reward_vs_kl.png": "demo_reward_vs_kl.png",
             dirs["eval"] / "plots" / "labeler_scores.png": "demo_labeler_scores.png"}  # fmt: skip
    publish_run(root / "summary.json", DEMO_JSON, plots, repo)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--output_dir", default=None, help="Root folder of every stage's outputs (default outputs/<task>)."
    )
    ap.add_argument("--task", default=None, choices=["sentiment", "descriptiveness"],
                    help="What the labeler prefers (Ziegler et al.'s stylistic tasks); default sentiment, toy: descriptiveness.")  # fmt: skip
    ap.add_argument("--toy", action="store_true", help="Tiny random models and a few steps (CI).")
    ap.add_argument("--ptx", action="store_true", help="PPO-ptx: add the LM loss of review text (gamma 27.8).")
    ap.add_argument("--push_to_hub", action="store_true", help="Push the policy, reward model and dataset.")
    ap.add_argument("--hub_model_id", default=None, help="Policy repo id; the RM and dataset get -reward/-labels.")
    ap.add_argument("--hub_token", default=None, help="Hub token (default: the logged-in user's).")
    ap.add_argument(
        "--publish",
        action="store_true",
        help="Publish this run: its summary.json as docs/demo_summary.json, the README's results block "
        "regenerated from it (rlhf_ext.results), its plots in docs/images/, its cards in model_cards/sentiment.",
    )
    ap.add_argument(
        "--machine", default=None, help="How to describe the machine in summary.json (default: N CPU cores)."
    )
    ap.add_argument("--cards_dir", default=None,
                    help="Also copy the policy's and reward model's cards (README.md and plots) here, e.g. model_cards/sentiment.")  # fmt: skip
    args = ap.parse_args(argv)
    if args.push_to_hub and not args.hub_model_id:
        ap.error("--push_to_hub needs --hub_model_id")
    if args.publish and (args.toy or args.task not in (None, "sentiment")):
        ap.error("--publish is for the sentiment demo itself (not --toy or another task)")
    args.task = args.task or ("descriptiveness" if args.toy else "sentiment")

    from rlhf_ext.cards import copy_card, update_model_card
    from rlhf_ext.pipeline import run_stage

    root = Path(args.output_dir or f"outputs/{args.task}")
    dirs = {name: root / name for name in ("labels", "reward", "ppo", "eval")}
    over = toy_overrides(root) if args.toy else {stage: [] for stage in STAGES}
    over["label"] += ["--task", args.task, "--output_dir", str(dirs["labels"])]
    over["reward"] += ["--labels_dir", str(dirs["labels"]), "--output_dir", str(dirs["reward"])]
    over["ppo"] += ["--reward_model", str(dirs["reward"]), "--output_dir", str(dirs["ppo"])]
    over["ppo"] += ["--ptx_coef", "27.8"] if args.ptx else []
    over["evaluate"] += ["--task", args.task, "--trained_model", str(dirs["ppo"]), "--reward_model", str(dirs["reward"]),
                         "--output_dir", str(dirs["eval"])]  # fmt: skip

    titles = {  # stage -> (banner, key in summary.json's timings)
        "label": ("sample K=4 continuations and rank them with the labeler", "sample and label"),
        "reward": ("reward model from the rankings (RankedRewardTrainer)", "reward model"),
        "ppo": ("PPO with adaptive KL against the reward model", "PPO"),
        "evaluate": ("evaluate on held-out prompts, results into the policy's card", "evaluation"),
    }
    timings = {}
    t0 = time.time()
    for number, stage in enumerate(STAGES, start=1):
        banner, key = titles[stage]
        print(f"\n=== {number}/{len(STAGES)} {banner} ===", flush=True)
        timings[key] = run_stage(HERE / SCRIPTS[stage], HERE / "configs" / CONFIGS[stage], over[stage])
    timings["total"] = time.time() - t0

    # What the stages wrote, read back as a user reading the folders would.
    def read_json(path):
        return json.loads(Path(path).read_text())

    label_stats = read_json(dirs["labels"] / "labeling_stats.json")
    rm_metrics = read_json(dirs["reward"] / "eval_results.json")
    results = read_json(dirs["eval"] / "eval_results.json")["results"]
    ppo_run = read_json(dirs["ppo"] / "train_results.json")
    final_kl_coef = ppo_run.get("kl_coef")
    kl_target = yaml.safe_load((HERE / "configs" / CONFIGS["ppo"]).read_text()).get("kl_target")
    kl_band = (kl_target / 2, kl_target * 1.5) if kl_target else None
    update_model_card(
        dirs["ppo"] / "README.md",
        summary=(
            "SmolLM2-135M-Instruct tuned with PPO and Ziegler et al.'s adaptive KL to continue movie-review openings "
            "positively, against a reward model trained on VADER-ranked samples (an offline reproduction of the "
            "sentiment experiment of Ziegler et al. 2019)."
            if not args.toy
            else "A toy run of the rlhf_ext sentiment pipeline on tiny random models (CI)."
        ),
    )

    def fmt(x):
        return "n/a" if x is None else f"{x:.3f}"

    n = results["num_prompts"]
    low, high = results["win_rate_ci90"]
    summary = {
        "comparisons labeled": str(label_stats["comparisons"]),
        "RM held-out pairwise accuracy": fmt(rm_metrics.get("eval_accuracy")),
        f"{results['labeler']} score": f"{fmt(results['labeler_score_before'])} -> {fmt(results['labeler_score_after'])}",
        "RM score": f"{fmt(results.get('reward_model_score_before'))} -> {fmt(results.get('reward_model_score_after'))}",
        f"win rate vs initial, {n} prompts": f"{fmt(results['win_rate'])} (90% CI {fmt(low)}-{fmt(high)})",
        "KL to initial (nats)": fmt(results["kl_to_initial"])
        + (f" (target band {kl_band[0]:.1f}-{kl_band[1]:.1f})" if kl_band else ""),
        "final KL coefficient": fmt(final_kl_coef),
        "wall time": f"{timings['total'] / 60:.1f} min",
    }
    record = {
        "summary": summary,
        "timings_s": timings,
        "eval": results,
        "labels": label_stats,
        "reward_model": {"heldout_pairwise_accuracy": rm_metrics.get("eval_accuracy")},
        "ppo": {
            "episodes": ppo_run.get("episodes"),
            "episodes_per_batch": ppo_run.get("episodes_per_batch"),
            "batches": ppo_run.get("batches"),
            "epochs": ppo_run.get("ppo_epochs"),
            "kl_target": kl_target,
            "final_kl_coef": final_kl_coef,
        },
        "command": "python recipes/run_demo.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "date": time.strftime("%Y-%m-%d"),
        "machine": args.machine or f"{os.cpu_count()} CPU cores, no GPU",
    }
    with open(root / "summary.json", "w") as f:
        json.dump(record, f, indent=2, default=str)
    cards_dir = args.cards_dir or (HERE.parent / "model_cards" / "sentiment" if args.publish else None)
    if cards_dir:
        copy_card(dirs["ppo"], Path(cards_dir) / "policy")
        copy_card(dirs["reward"], Path(cards_dir) / "reward_model")
    if args.publish:
        publish(root, dirs)

    if args.push_to_hub:
        from datasets import load_from_disk

        from rlhf_ext.hub import push_folder, push_ranked_dataset

        base = args.hub_model_id
        push_folder(dirs["ppo"], base, token=args.hub_token, commit_message="PPO policy with adaptive KL")
        push_folder(dirs["reward"], f"{base}-reward", token=args.hub_token, commit_message="Ranked reward model")
        push_ranked_dataset(load_from_disk(str(dirs["labels"])), f"{base}-labels", stats=label_stats,
                            source_model="SmolLM2-135M-Instruct", labeler="SentimentLabeler (VADER)",
                            token=args.hub_token)  # fmt: skip

    print("\n=== summary ===")
    width = max(len(k) for k in summary)
    for key, value in summary.items():
        print(f"{key:<{width}}  {value}")
    print(
        f"\nOutputs: {root.resolve()} (labels/, reward/, ppo/ with README.md model card and plots/, eval/, summary.json)"
    )
    return summary, results


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    main()
