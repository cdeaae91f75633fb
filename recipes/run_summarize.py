"""Every summarization recipe in order, on the offline default: SFT -> labels -> reward model -> PPO, DPO, ORPO -> evaluation.

    python recipes/run_summarize.py                    # news TL;DR stand-in, SmolLM2-135M, 2 CPU cores
    python recipes/run_summarize.py --dataset cnndm    # the CNN/DailyMail-sized stand-in
    python recipes/run_summarize.py --toy              # tiny random models, a few steps (the CI test)
    python recipes/run_summarize.py --push_to_hub --hub_model_id you/smollm2-tldr   # also push models and cards
    python recipes/run_summarize.py --cards_dir model_cards/tldr   # also keep the example cards in the repository
    python recipes/run_summarize.py --publish   # the run becomes the published one: docs/summarize_results.json,
                                                # the README/docs tables, docs/images plot, model_cards/tldr
                                                # (--dataset cnndm: docs/cnndm_results.json, model_cards/cnndm)

Stages (each a recipe of its own, runnable with ``accelerate launch`` and the config named here):
1. ``sft_tldr.py``          SFT on reference summaries                        sft_<dataset>_offline.yaml
2. ``sample_and_label.py``  K = 8 SFT summaries an article, ranked           label_<dataset>_offline.yaml
3. ``reward_tldr.py``       RankedRewardTrainer on the rankings                reward_<dataset>_offline.yaml
4. ``ppo_tldr.py``          PPO from SFT against the reward model             ppo_<dataset>_offline.yaml
5. ``dpo_tldr.py``          DPO from SFT on the same comparisons              dpo_<dataset>_offline.yaml
6. ``orpo_tldr.py``         ORPO from the pretrained model on the same ranks  orpo_<dataset>_offline.yaml
7. ``evaluate_summaries.py`` all policies and the references on held-out articles; results table,
                            plot and model cards                             evaluate_<dataset>_offline.yaml
``--stages`` runs a subset (e.g. ``--stages evaluate`` after editing the evaluation config).

Each stage runs as the command this script prints would run it (``rlhf_ext.pipeline.run_stage``: the recipe's own
argument parsing on its config plus a few overrides, inside this interpreter so TRL is imported once); stages pass
results on through the folders they write, as separate commands would.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from rlhf_ext.pipeline import PIPELINES

HERE = Path(__file__).resolve().parent
STAGES = tuple(stage.name for stage in PIPELINES["tldr"])  # sft, label, reward, ppo, dpo, orpo, evaluate


def toy_overrides(root: Path) -> dict[str, list[str]]:
    """Tiny random models, short articles and a few steps: every stage's code path in about a minute."""
    from rlhf_ext.testing.tiny_models import build_tiny_models

    tiny = build_tiny_models(root / "tiny-models")
    lm, rm = str(tiny.causal_lm), str(tiny.reward_model)
    short = ["--max_article_words", "30"]
    steps = ["--max_steps", "2", "--logging_steps", "1"]
    return {
        "sft": ["--model_name_or_path", lm, "--num_train_rows", "16", "--per_device_train_batch_size", "4", *short,
                *steps],
        "label": ["--num_prompts", "16", "--max_new_tokens", "12", "--temperature", "1.0", *short],
        "reward": ["--model_name_or_path", rm, "--num_train_epochs", "1", "--per_device_train_batch_size", "4"],
        "ppo": ["--num_prompts", "16", "--per_device_train_batch_size", "4", "--max_completion_length", "8",
                "--use_peft", "false", *short, *steps],
        "dpo": ["--per_device_train_batch_size", "4", "--max_length", "320", *steps],
        "orpo": ["--model_name_or_path", lm, "--per_device_train_batch_size", "2", "--max_length", "320", *steps],
        "evaluate": ["--num_prompts", "8", "--max_new_tokens", "8", *short],
    }  # fmt: skip


def earlier_timings(path: Path, toy: bool, dataset: str) -> dict[str, float]:
    """Stage times an earlier invocation wrote for the same root (e.g. all stages, then `--stages evaluate`).

    They are kept so that timings.json and summary.json hold the latest time of every stage whose folder the run
    reads; times of a toy run, or of the other dataset, in the same root are dropped.
    """
    if not path.exists():
        return {}
    earlier = json.loads(path.read_text())
    if earlier.get("toy") != toy or earlier.get("dataset") != dataset:
        return {}
    return {stage: seconds for stage, seconds in earlier.get("seconds", {}).items() if stage in STAGES}


def reward_starts_from_sft(dataset: str) -> bool:
    """Whether the reward config's backbone is the SFT stage's output (then this run's SFT folder is passed on)."""
    import yaml

    config = yaml.safe_load((HERE / "configs" / f"reward_{dataset}_offline.yaml").read_text())
    return str(config.get("model_name_or_path", "")).rstrip("/") == f"outputs/{dataset}/sft"


def reward_backbone(dataset: str, toy: bool, sft: Path) -> list[str]:
    """The reward stage's backbone option: this run's SFT folder when the reward config names ``outputs/<dataset>/sft``
    (Huang et al.'s choice); nothing for --toy, whose overrides name its tiny model."""
    return [] if toy or not reward_starts_from_sft(dataset) else ["--model_name_or_path", str(sft)]


def publish(root: Path, dirs: dict[str, Path], repo: Path = HERE.parent, dataset: str = "tldr") -> None:
    """This run becomes the published one: docs/summarize_results.json (CNN/DM: docs/cnndm_results.json), the tables
    generated from it, the plot."""
    from rlhf_ext.results import CNNDM_JSON, SUMMARIZE_JSON, publish_run

    json_name, plot = (
        (SUMMARIZE_JSON, "summarize_results.png") if dataset == "tldr" else (CNNDM_JSON, "cnndm_results.png")
    )
    publish_run(root / "summary.json", json_name, {dirs["eval"] / "plots" / "results.png": plot}, repo)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", default="tldr", choices=["tldr", "cnndm"], help="Which stand-in (and configs).")
    ap.add_argument("--output_dir", default=None, help="Root of every stage's outputs (default outputs/<dataset>).")
    ap.add_argument("--stages", nargs="+", default=list(STAGES), choices=STAGES, help="Stages to run, in order.")
    ap.add_argument("--toy", action="store_true", help="Tiny random models and a few steps (CI).")
    ap.add_argument("--push_to_hub", action="store_true", help="Push the policies, reward model and labels.")
    ap.add_argument("--hub_model_id", default=None, help="Prefix of the repo ids: <id>-sft, <id>-ppo, ...")
    ap.add_argument("--hub_token", default=None, help="Hub token (default: the logged-in user's).")
    ap.add_argument(
        "--publish",
        action="store_true",
        help="Publish this run (all stages, not --toy): its summary.json as docs/summarize_results.json "
        "(--dataset cnndm: docs/cnndm_results.json), the README and docs tables regenerated from it "
        "(rlhf_ext.results), the plot in docs/images/, the cards in model_cards/<dataset>.",
    )
    ap.add_argument(
        "--machine", default=None, help="How to describe the machine in summary.json (default: N CPU cores)."
    )
    ap.add_argument("--cards_dir", default=None,
                    help="Also copy each policy's and the reward model's card (README.md and plots) here, e.g. model_cards/tldr.")  # fmt: skip
    args = ap.parse_args(argv)
    if args.push_to_hub and not args.hub_model_id:
        ap.error("--push_to_hub needs --hub_model_id")
    if args.publish and (args.toy or list(args.stages) != list(STAGES)):
        ap.error("--publish is for a full run (every stage, not --toy)")

    from rlhf_ext.pipeline import run_stage

    root = Path(args.output_dir or f"outputs/{args.dataset}")
    d = {name: root / name for name in ("sft", "labels", "reward", "ppo", "dpo", "orpo", "eval")}
    over = toy_overrides(root) if args.toy else {stage: [] for stage in STAGES}
    over["sft"] += ["--output_dir", str(d["sft"])]
    over["label"] += ["--model_name_or_path", str(d["sft"]), "--output_dir", str(d["labels"])]
    over["reward"] += ["--preferences", str(d["labels"]), "--output_dir", str(d["reward"])]
    over["reward"] += reward_backbone(args.dataset, args.toy, d["sft"])
    over["ppo"] += ["--model_name_or_path", str(d["sft"]), "--reward_model", str(d["reward"]), "--output_dir", str(d["ppo"])]  # fmt: skip
    over["dpo"] += ["--model_name_or_path", str(d["sft"]), "--preferences", str(d["labels"]), "--output_dir", str(d["dpo"])]  # fmt: skip
    over["orpo"] += ["--preferences", str(d["labels"]), "--output_dir", str(d["orpo"])]
    over["evaluate"] += ["--root", str(root), "--output_dir", str(d["eval"])]

    timings_file = root / "timings.json"
    timings = earlier_timings(timings_file, args.toy, args.dataset)
    for number, stage in enumerate(STAGES, start=1):
        if stage not in args.stages:
            continue
        print(f"\n=== {number}/{len(STAGES)} {stage} ===", flush=True)
        step = next(s for s in PIPELINES[args.dataset] if s.name == stage)
        seconds = run_stage(HERE / step.script, HERE / "configs" / step.config, over[stage])
        timings[stage] = round(seconds, 1)
        print(f"[{stage}: {timings[stage]:.0f} s]", flush=True)

    timings = {s: timings[s] for s in STAGES if s in timings}  # pipeline order
    root.mkdir(parents=True, exist_ok=True)
    with open(timings_file, "w") as f:
        json.dump({"seconds": timings, "toy": args.toy, "dataset": args.dataset}, f, indent=2)
    results = None
    if "evaluate" in args.stages:  # every system's metrics, as evaluate_summaries.py wrote them
        evaluation = json.loads((d["eval"] / "results.json").read_text())
        results = evaluation["systems"]
        labels = json.loads((d["labels"] / "labeling_stats.json").read_text())
        rm_file = d["reward"] / "eval_results.json"
        rm = json.loads(rm_file.read_text()) if rm_file.exists() else {}
        record = {
            "command": "python recipes/run_summarize.py " + " ".join(argv if argv is not None else sys.argv[1:]),
            "date": time.strftime("%Y-%m-%d"),
            "machine": args.machine or f"{os.cpu_count()} CPU cores, no GPU",
            "labels": labels,
            "reward_model_heldout_pairwise_accuracy": rm.get("eval_accuracy"),
            "reward_model_heldout_rows": labels.get("test_prompts"),
            "stage_seconds": timings,
            "total_seconds": round(sum(timings.values()), 1),
            "evaluation": evaluation,
        }
        with open(root / "summary.json", "w") as f:
            json.dump(record, f, indent=2)

    cards_dir = args.cards_dir or (HERE.parent / "model_cards" / args.dataset if args.publish else None)
    if cards_dir:
        from rlhf_ext.cards import copy_card

        for name in ("sft", "ppo", "dpo", "orpo", "reward"):
            if (d[name] / "README.md").exists():
                copy_card(d[name], Path(cards_dir) / name)
    if args.publish:
        publish(root, d, dataset=args.dataset)
    if args.push_to_hub:
        from rlhf_ext.hub import push_folder

        for name in ("sft", "ppo", "dpo", "orpo", "reward"):
            if d[name].exists():
                push_folder(d[name], f"{args.hub_model_id}-{name}", token=args.hub_token,
                            commit_message=f"rlhf_ext summarization: {name}")  # fmt: skip
    print(f"\nOutputs: {root.resolve()}  (stage times: {timings})")
    return results, timings


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    main()
