"""Collect PPO runs on the TL;DR stand-in and their joint evaluation into one JSON (docs/summarize_ppo_runs.json).

    python recipes/ppo_tldr.py --config A.yaml > A.log          # one or more PPO runs from the same SFT and RM
    python recipes/evaluate_summaries.py --config recipes/configs/evaluate_tldr_offline.yaml --root ROOT \\
        --policies sft ppo_a ppo_b --num_prompts 256 --output_dir ROOT/eval_ppo --update_cards false
    python benchmarks/collect_ppo_runs.py --eval ROOT/eval_ppo --labels ROOT/labels --reward ROOT/reward \\
        --run ppo_a=A.yaml:A.log --run ppo_b=B.yaml:B.log

Per run the JSON keeps its config (the YAML), the episodes, optimizer steps and epochs ``PPOConfig`` derives from it, and the
trainer's ``train_runtime`` from its log; beside them the labels' and reward model's statistics and the evaluation's
``results.json`` as written. ``python -m rlhf_ext.results`` renders the tables of docs/summarization.md from it.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import re
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def run_record(config_path: Path, log_path: Path) -> dict:
    """What one PPO run did: its YAML, and the figures ``PPOConfig`` derives from it (defaults filled in), with the
    trainer's ``train_runtime`` from the run's log."""
    from rlhf_ext import PPOConfig

    config = yaml.safe_load(config_path.read_text())
    runtimes = re.findall(r"'train_runtime': '?([0-9.]+)", log_path.read_text(errors="replace"))
    if not runtimes:
        raise SystemExit(f"{log_path}: no train_runtime in the log (did the PPO run finish?)")
    fields = {f.name for f in dataclasses.fields(PPOConfig)}
    # parsed here on whatever machine collects: device options do not change the counts read from it
    args = PPOConfig(**{**{k: v for k, v in config.items() if k in fields}, "use_cpu": True, "bf16": False})
    return {
        "config": {k: v for k, v in config.items() if k not in ("model_name_or_path", "reward_model", "output_dir")},
        "reward_model": "the judge (SummaryLabeler)" if config.get("reward_model") == "labeler" else "reward model",
        "optimizer_steps": args.max_steps,
        "minibatch": args.per_device_train_batch_size,
        "num_ppo_epochs": args.num_ppo_epochs,
        "critic_from_reward_model": args.critic_from_reward_model,
        "episodes": args.num_total_batches * args.batch_size,  # batches x episodes per batch, all processes
        "train_runtime_s": float(runtimes[-1]),
    }


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--eval", type=Path, required=True, help="evaluate_summaries.py's output folder.")
    ap.add_argument("--labels", type=Path, required=True, help="The labels folder (labeling_stats.json).")
    ap.add_argument("--reward", type=Path, required=True, help="The reward model folder (eval_results.json).")
    ap.add_argument("--run", action="append", required=True, help="NAME=CONFIG.yaml:LOG, one per PPO policy.")
    ap.add_argument("--machine", default=f"{os.cpu_count()} CPU cores, no GPU")
    ap.add_argument("--output", type=Path, default=ROOT / "docs" / "summarize_ppo_runs.json")
    args = ap.parse_args(argv)
    runs = {}
    for spec in args.run:
        name, _, paths = spec.partition("=")
        config, _, log = paths.partition(":")
        runs[name] = run_record(Path(config), Path(log))
    evaluation = json.loads((args.eval / "results.json").read_text())
    missing = set(runs) - set(evaluation["systems"])
    if missing:
        raise SystemExit(f"runs {sorted(missing)} are not in {args.eval / 'results.json'}")
    record = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": args.machine,
        "labels": json.loads((args.labels / "labeling_stats.json").read_text()),
        "reward_model": json.loads((args.reward / "eval_results.json").read_text()),
        "runs": runs,
        "evaluation": evaluation,
    }
    args.output.write_text(json.dumps(record, indent=2) + "\n")
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
