"""Stage 4 of the sentiment pipeline: the trained policy against the initial one, on held-out prompts.

    python recipes/evaluate_sentiment.py --trained_model outputs/sentiment/ppo --reward_model outputs/sentiment/reward

For each held-out prompt both policies sample one continuation (same settings). Reported, as Ziegler et
al. 2019 did for their "vs zero-shot" comparison (humans preferred the tuned policy 86-88% of the time):
- the labeler's score and the reward model's score, before and after;
- the labeler-judged win rate of the trained policy over the initial one, ties counting half, with a 90%
  bootstrap interval over prompts;
- KL(trained || initial) on the trained policy's samples: mean over continuations of the summed per-token
  log-ratio at the sampling temperature, the quantity the adaptive KL controller targets.
Writes ``eval_results.json``, ``eval_summary.md`` and a before/after histogram into ``output_dir``, and, when the
trained model is a local folder with a card, adds the results (``model-index`` metadata and a table) and the histogram
to that card (``update_card``).
"""

from __future__ import annotations

import json
import os
import statistics
from dataclasses import asdict, dataclass, field
from pathlib import Path

from trl import TrlParser

from rlhf_ext.continuation import prompt_dataset
from rlhf_ext.data.rows import take_rows
from rlhf_ext.evaluation import win_rate
from rlhf_ext.models import load_policy
from rlhf_ext.offline.labelers import make_labeler
from rlhf_ext.pipeline import require_inputs
from rlhf_ext.sampling import reward_model_scores, sample_completions, sequence_kl

# ----------------------------------------------------------------------------- hyperparameters


@dataclass
class EvalConfig:
    trained_model: str = field(
        default="outputs/sentiment/ppo", metadata={"help": "The trained policy (folder or Hub id)."}
    )
    initial_model: str = field(
        default="offline", metadata={"help": "The initial policy; 'offline' = SmolLM2-135M-Instruct."}
    )
    reward_model: str | None = field(
        default="outputs/sentiment/reward", metadata={"help": "Reward model to score with (optional)."}
    )
    task: str = field(
        default="sentiment",
        metadata={"help": "Labeler: 'sentiment' or 'descriptiveness'.", "choices": ["sentiment", "descriptiveness"]},
    )
    prompts: str = field(
        default="offline",
        metadata={"help": "'offline' (held-out Rotten Tomatoes openings) or a Hub dataset; its `test` split is used."},
    )
    num_prompts: int = field(
        default=128, metadata={"help": "Held-out prompts (the test split of the review openings)."}
    )
    max_new_tokens: int = field(default=24, metadata={"help": "Continuation length, as in training."})
    temperature: float = field(default=0.7, metadata={"help": "Sampling temperature, as in training."})
    batch_size: int = field(default=32, metadata={"help": "Prompts per generate() call."})
    seed: int = field(default=1234, metadata={"help": "Sampling seed (both policies use it)."})
    update_card: bool = field(
        default=True, metadata={"help": "Add the results to the trained model's card (a local folder with one)."}
    )
    output_dir: str = field(default="outputs/sentiment/eval", metadata={"help": "Where results are written."})


# ----------------------------------------------------------------------------- helpers


def mean(xs):
    return statistics.fmean(xs) if xs else float("nan")


# ----------------------------------------------------------------------------- main


def main(cfg: EvalConfig) -> dict:
    require_inputs(
        {"trained_model": cfg.trained_model, "initial_model": cfg.initial_model, "reward_model": cfg.reward_model},
        Path(__file__).resolve().parent,
    )  # one line naming what is missing
    from rlhf_ext.cards import plot_score_histograms

    labeler = make_labeler(cfg.task)
    test = prompt_dataset(cfg.prompts, "test")
    prompts = take_rows(test, cfg.num_prompts, seed=0, option="num_prompts", what="the held-out split")["prompt"]

    initial, tok = load_policy(cfg.initial_model)
    trained, trained_tok = load_policy(cfg.trained_model)
    settings = dict(k=1, max_new_tokens=cfg.max_new_tokens, temperature=cfg.temperature, batch_size=cfg.batch_size)
    before = sample_completions(initial, tok, prompts, seed=cfg.seed, progress="initial policy", **settings)
    after = sample_completions(  # with the trained policy's log-probs: the KL below runs only the initial policy
        trained, trained_tok, prompts, seed=cfg.seed, progress="trained policy", logprobs=True, **settings
    )
    texts_before = [t[0] for t in before.texts]
    texts_after = [t[0] for t in after.texts]

    label_before = labeler.score(prompts, texts_before)
    label_after = labeler.score(prompts, texts_after)
    wr = win_rate(label_after, label_before, confidence=0.9)
    kls = sequence_kl(trained, initial, after, temperature=cfg.temperature)
    results = {
        "num_prompts": len(prompts),
        "labeler": type(labeler).__name__,
        "labeler_score_before": mean(label_before),
        "labeler_score_after": mean(label_after),
        "win_rate": wr.rate,
        "win_rate_ci90": [wr.low, wr.high],
        "wins_ties_losses": [wr.wins, wr.ties, wr.losses],
        "kl_to_initial": mean(kls),
        "mean_length_after_tokens": mean([len(c[0]) for c in after.completion_ids]),
    }
    if cfg.reward_model:
        rm_before = reward_model_scores(cfg.reward_model, prompts, texts_before, max_length=256)
        rm_after = reward_model_scores(cfg.reward_model, prompts, texts_after, max_length=256)
        results.update(reward_model_score_before=mean(rm_before), reward_model_score_after=mean(rm_after))

    os.makedirs(cfg.output_dir, exist_ok=True)
    plot_score_histograms(
        label_before, label_after, os.path.join(cfg.output_dir, "plots", "labeler_scores.png"), results["labeler"]
    )
    samples = [
        {"prompt": p, "initial": b, "trained": a, "score_initial": sb, "score_trained": sa}
        for p, b, a, sb, sa in zip(prompts, texts_before, texts_after, label_before, label_after)
    ]
    with open(os.path.join(cfg.output_dir, "eval_results.json"), "w") as f:
        json.dump({"config": asdict(cfg), "results": results, "samples": samples[:32]}, f, indent=2)
    summary = [
        "| metric | initial | trained |",
        "|---|---|---|",
        f"| {results['labeler']} score (mean) | {results['labeler_score_before']:.3f} | {results['labeler_score_after']:.3f} |",
    ]
    if cfg.reward_model:
        summary.append(
            f"| reward-model score (mean) | {results['reward_model_score_before']:.3f} | {results['reward_model_score_after']:.3f} |"
        )
    summary += [
        f"| win rate vs initial (labeler, ties half, {len(prompts)} prompts) | | {wr} |",
        f"| KL(trained ‖ initial), nats per continuation | 0 | {results['kl_to_initial']:.2f} |",
    ]
    with open(os.path.join(cfg.output_dir, "eval_summary.md"), "w") as f:
        f.write("\n".join(summary) + "\n")
    if cfg.update_card:
        update_card(cfg, results)
    print("\n".join(summary))
    return results


def update_card(cfg: EvalConfig, results: dict) -> None:
    """Put the results into the trained model's card, as metadata and a table, with the score histogram."""
    import shutil
    from pathlib import Path

    from rlhf_ext.cards import update_model_card

    folder = Path(cfg.trained_model)
    if not (folder / "README.md").is_file():
        return  # a Hub id, or a folder without a card
    histogram, plots = Path(cfg.output_dir) / "plots" / "labeler_scores.png", []
    if histogram.is_file():
        (folder / "plots").mkdir(exist_ok=True)
        shutil.copy(histogram, folder / "plots" / histogram.name)
        plots.append({"title": "labeler scores", "path": f"plots/{histogram.name}"})
    dataset = "review-openings" if cfg.prompts == "offline" else cfg.prompts
    n = results["num_prompts"]
    rows = [
        (f"win rate vs initial policy ({n} prompts, labeler)", results["win_rate"]),
        ("labeler score before", results["labeler_score_before"]),
        ("labeler score after", results["labeler_score_after"]),
        ("KL to initial policy (nats)", results["kl_to_initial"]),
        ("reward-model score after", results.get("reward_model_score_after")),
    ]
    update_model_card(
        folder / "README.md",
        eval_results=[{"metric": metric, "value": value, "dataset": dataset} for metric, value in rows],
        plots=plots,
    )


if __name__ == "__main__":
    (cfg,) = TrlParser(EvalConfig).parse_args_and_config()
    main(cfg)
