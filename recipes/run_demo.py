"""The whole sentiment pipeline of Ziegler et al. 2019 with InstructGPT's ranked labels, on the offline default.

    make demo                     # = python recipes/run_demo.py
    python recipes/run_demo.py --push_to_hub --hub_model_id you/smollm2-ppo-sentiment

Stages (each is also a recipe of its own, runnable with ``accelerate launch``):
1. ``sample_and_label.py``  SmolLM2 samples K = 4 continuations of 256 review openings; VADER ranks them.
2. ``reward_sentiment.py``  RankedRewardTrainer fits a MiniLM reward model on the rankings.
3. ``ppo_sentiment.py``     PPO with Ziegler's adaptive KL against that reward model (LoRA on SmolLM2).
4. ``evaluate_sentiment.py`` held-out prompts: labeler and RM scores, KL, win rate vs the initial policy.
5. model cards (reward model, policy, ranked dataset) with plots; pushed with ``--push_to_hub``.

``--toy`` runs the same stages on tiny random models in about a minute (the CI test uses it).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import evaluate_sentiment  # noqa: E402
import ppo_sentiment  # noqa: E402
import reward_sentiment  # noqa: E402
import sample_and_label  # noqa: E402
from trl import TrlParser  # noqa: E402

from rlhf_ext import PPOConfig, RankedRewardConfig  # noqa: E402


def parse(parser_types, config: Path, overrides: list[str]):
    return TrlParser(parser_types).parse_args_and_config(["--config", str(config), *overrides])


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--output_dir", default="outputs/sentiment", help="Root folder of every stage's outputs.")
    ap.add_argument("--task", default=None, choices=["sentiment", "descriptiveness"],
                    help="What the labeler prefers (Ziegler et al.'s stylistic tasks); default sentiment, toy: descriptiveness.")  # fmt: skip
    ap.add_argument("--toy", action="store_true", help="Tiny random models and a few steps (CI).")
    ap.add_argument("--ptx", action="store_true", help="PPO-ptx: add the LM loss of review text (gamma 27.8).")
    ap.add_argument("--push_to_hub", action="store_true", help="Push the policy, reward model and dataset.")
    ap.add_argument("--hub_model_id", default=None, help="Policy repo id; the RM and dataset get -reward/-labels.")
    ap.add_argument("--hub_token", default=None, help="Hub token (default: the logged-in user's).")
    args = ap.parse_args(argv)
    if args.push_to_hub and not args.hub_model_id:
        ap.error("--push_to_hub needs --hub_model_id")
    args.task = args.task or ("descriptiveness" if args.toy else "sentiment")

    root = Path(args.output_dir)
    dirs = {name: root / name for name in ("labels", "reward", "ppo", "eval")}
    configs = HERE / "configs"
    over = {"label": [], "reward": [], "ppo": [], "eval": []}
    if args.toy:
        from rlhf_ext.testing.tiny_models import build_tiny_models

        tiny = build_tiny_models(root / "tiny-models")
        # A random tiny model rarely writes sentiment words (VADER ties everything), so the toy ranks by the
        # descriptiveness proxy unless --task says otherwise, and samples longer at temperature 1.
        over["label"] = ["--model_name_or_path", str(tiny.causal_lm), "--num_prompts", "24", "--temperature", "1.0"]
        over["reward"] = ["--model_name_or_path", str(tiny.reward_model), "--num_train_epochs", "1"]
        over["ppo"] = [
            "--model_name_or_path", str(tiny.causal_lm), "--num_prompts", "32", "--max_steps", "2",
            "--per_device_train_batch_size", "8", "--max_completion_length", "8", "--use_lora", "false",
        ]  # fmt: skip
        over["eval"] = ["--initial_model", str(tiny.causal_lm), "--num_prompts", "16"]
    over["label"] += ["--task", args.task]
    over["eval"] += ["--task", args.task]
    if args.ptx:
        over["ppo"] += ["--ptx_coef", "27.8"]

    timings = {}
    t0 = time.time()

    print("\n=== 1/5 sample K=4 continuations and rank them with the labeler ===", flush=True)
    (label_cfg,) = parse(sample_and_label.SampleAndLabelConfig, configs / "sample_and_label_offline.yaml",
                         over["label"] + ["--output_dir", str(dirs["labels"])])  # fmt: skip
    _, label_stats = sample_and_label.main(label_cfg)
    timings["sample and label"] = time.time() - t0

    print("\n=== 2/5 reward model from the rankings (RankedRewardTrainer) ===", flush=True)
    t = time.time()
    reward_args = parse((reward_sentiment.RewardRecipeArgs, RankedRewardConfig), configs / "reward_sentiment_offline.yaml",
                        over["reward"] + ["--labels_dir", str(dirs["labels"]), "--output_dir", str(dirs["reward"])])  # fmt: skip
    rm_trainer, rm_metrics = reward_sentiment.main(*reward_args)
    timings["reward model"] = time.time() - t

    print("\n=== 3/5 PPO with adaptive KL against the reward model ===", flush=True)
    t = time.time()
    ppo_args = parse((ppo_sentiment.PPORecipeArgs, PPOConfig), configs / "ppo_sentiment_offline.yaml",
                     over["ppo"] + ["--reward_model", str(dirs["reward"]), "--output_dir", str(dirs["ppo"])])  # fmt: skip
    ppo_trainer = ppo_sentiment.main(*ppo_args)
    timings["PPO"] = time.time() - t

    print("\n=== 4/5 evaluate on held-out prompts ===", flush=True)
    t = time.time()
    (eval_cfg,) = parse(evaluate_sentiment.EvalConfig, configs / "evaluate_sentiment_offline.yaml",
                        over["eval"] + ["--trained_model", str(dirs["ppo"]), "--reward_model", str(dirs["reward"]),
                                        "--output_dir", str(dirs["eval"])])  # fmt: skip
    results = evaluate_sentiment.main(eval_cfg)
    timings["evaluation"] = time.time() - t

    print("\n=== 5/5 model cards ===", flush=True)
    ppo_cfg = ppo_args[1]
    kl_band = (ppo_cfg.kl_target / 2, ppo_cfg.kl_target * 1.5) if ppo_cfg.kl_target else None
    info = ppo_trainer.card_info  # ppo_sentiment.main filled in the data and base model
    info.summary = (
        "SmolLM2-135M-Instruct tuned with PPO and Ziegler et al.'s adaptive KL to continue movie-review openings "
        "positively, against a reward model trained on VADER-ranked samples (an offline reproduction of the "
        "sentiment experiment of Ziegler et al. 2019)."
        if not args.toy
        else "A toy run of the rlhf_ext sentiment pipeline on tiny random models (CI)."
    )
    n = results["num_prompts"]
    info.eval_results = [
        {"metric": f"win rate vs initial policy ({n} prompts, labeler)", "value": results["win_rate"]},
        {"metric": "labeler score before", "value": results["labeler_score_before"]},
        {"metric": "labeler score after", "value": results["labeler_score_after"]},
        {"metric": "KL to initial policy (nats)", "value": results["kl_to_initial"]},
        {"metric": "reward-model score after", "value": results.get("reward_model_score_after")},
    ]
    shutil.copytree(dirs["eval"] / "plots", dirs["ppo"] / "plots", dirs_exist_ok=True)
    info.extra_plots = [{"title": "labeler scores", "path": "plots/labeler_scores.png"}]
    ppo_trainer.create_model_card()
    timings["total"] = time.time() - t0

    def fmt(x):
        return "n/a" if x is None else f"{x:.3f}"

    low, high = results["win_rate_ci90"]
    summary = {
        "comparisons labeled": str(label_stats["comparisons"]),
        "RM held-out pairwise accuracy": fmt(rm_metrics.get("eval_accuracy")),
        f"{results['labeler']} score": f"{fmt(results['labeler_score_before'])} -> {fmt(results['labeler_score_after'])}",
        "RM score": f"{fmt(results.get('reward_model_score_before'))} -> {fmt(results.get('reward_model_score_after'))}",
        f"win rate vs initial, {n} prompts": f"{fmt(results['win_rate'])} (90% CI {fmt(low)}-{fmt(high)})",
        "KL to initial (nats)": fmt(results["kl_to_initial"])
        + (f" (target band {kl_band[0]:.1f}-{kl_band[1]:.1f})" if kl_band else ""),
        "final KL coefficient": fmt(getattr(getattr(ppo_trainer, "kl_ctl", None), "value", None)),
        "wall time": f"{timings['total'] / 60:.1f} min",
    }
    with open(root / "summary.json", "w") as f:
        json.dump({"summary": summary, "timings_s": timings, "eval": results}, f, indent=2, default=str)

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
