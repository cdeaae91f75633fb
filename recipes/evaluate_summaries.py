"""Summarization, stage 7: evaluation of every policy and the reference summaries on the same held-out articles.

    python recipes/evaluate_summaries.py --config recipes/configs/evaluate_tldr_offline.yaml

One entry point for all methods. Each policy (SFT, PPO, DPO, ORPO: folders under ``root``) writes one
summary per held-out article (same seed and sampling settings); the references are the dataset's own. For
every system it reports
- ROUGE-1/2/L against the references (``evaluate``'s ROUGE, or rlhf_ext's local copy of the metric offline);
- the judge's score (``SummaryLabeler``, which never sees the reference, so references are judged like any
  summary) and the reward model's score;
- length (words) and degeneration (distinct-2, repeated 3-grams), since over-trained DPO collapses into
  repeated text;
- KL(policy || SFT) on the policy's own samples (nats per summary);
- judge win rates vs the SFT policy and vs the references (ties count half, 90% bootstrap intervals), as
  Stiennon et al. 2020 and the DPO paper report "win rate vs reference";
- Elo ratings of all systems from every head-to-head judge comparison.
Written to ``output_dir`` as ``results.md``, ``results.json`` and ``plots/results.png``, and into each
policy's model card (``README.md`` in its folder) as an evaluation section.
"""

from __future__ import annotations

import json
import os
import statistics
from dataclasses import asdict, dataclass, field
from pathlib import Path

from tqdm.auto import tqdm
from trl import TrlParser

from rlhf_ext.data.rows import take_rows
from rlhf_ext.models import load_policy
from rlhf_ext.offline.labelers import make_labeler
from rlhf_ext.pipeline import require_inputs
from rlhf_ext.sampling import reward_model_scores, sample_completions, sequence_kl
from rlhf_ext.summarization import summarization_dataset

# ----------------------------------------------------------------------------- hyperparameters


@dataclass
class SummaryEvalConfig:
    root: str = field(
        default="outputs/tldr", metadata={"help": "Folder holding the policies (<root>/<name>) and reward/."}
    )
    policies: list[str] = field(
        default_factory=lambda: ["sft", "ppo", "dpo", "orpo"],
        metadata={
            "help": "Policies evaluated side by side: a bare name is a folder under root, else a path or a Hub id (owner/name)."
        },
    )
    baseline: str = field(default="sft", metadata={"help": "The policy the others' win rates are measured against."})
    reward_model: str | None = field(
        default="reward", metadata={"help": "Reward model folder under root (or a path / Hub id); None to skip."}
    )
    dataset: str = field(default="offline-tldr", metadata={"help": "Held-out articles (see rlhf_ext.summarization)."})
    dataset_config: str | None = field(default=None, metadata={"help": "Hub dataset config, e.g. '3.0.0'."})
    split: str = field(default="test", metadata={"help": "Held-out split."})
    max_article_words: int | None = field(
        default=None, metadata={"help": "Offline stand-ins only: cut articles to N words (as in training)."}
    )
    num_prompts: int = field(default=128, metadata={"help": "Held-out articles to summarize."})
    max_new_tokens: int = field(default=24, metadata={"help": "Summary length limit, as in training."})
    temperature: float = field(default=0.7, metadata={"help": "Sampling temperature (Huang et al. 2024: 0.7)."})
    batch_size: int = field(default=16, metadata={"help": "Articles per generate() call."})
    seed: int = field(default=1234, metadata={"help": "Sampling seed, the same for every policy."})
    update_cards: bool = field(default=True, metadata={"help": "Add the results to each policy's model card."})
    output_dir: str = field(default="outputs/tldr/eval", metadata={"help": "Where results are written."})


def locate(root: str, name: str) -> str:
    """``<root>/<name>`` when that folder exists, else ``name`` itself (a path or a Hub id)."""
    candidate = Path(root) / name
    return str(candidate) if candidate.exists() else name


def in_root(root: str, name: str) -> str:
    """Where ``name`` is looked for first: ``<root>/<name>`` for a bare name, else ``name`` (a path or a Hub id)."""
    return str(Path(root) / name) if "/" not in name else name


def mean(xs):
    return statistics.fmean(xs) if xs else float("nan")


# ----------------------------------------------------------------------------- main


def main(cfg: SummaryEvalConfig) -> dict:
    from rlhf_ext.evaluation import distinct_n, judge_comparisons, repetition_rate, rouge, write_results

    if cfg.baseline not in cfg.policies:
        raise ValueError(f"baseline {cfg.baseline!r} is not one of the evaluated policies {cfg.policies}")
    # a bare name is a folder under root (locate), the way the pipeline writes them
    under_root = {f"policies ({name})": in_root(cfg.root, name) for name in cfg.policies}
    if cfg.reward_model:
        under_root["reward_model"] = in_root(cfg.root, cfg.reward_model)
    require_inputs(under_root, Path(__file__).resolve().parent)  # one line naming what is missing
    data = summarization_dataset(cfg.dataset, cfg.split, cfg.dataset_config, cfg.max_article_words)
    data = take_rows(data, cfg.num_prompts, seed=0, option="num_prompts", what=f"the {cfg.split!r} split")
    prompts, references = list(data["prompt"]), [r.strip() for r in data["completion"]]

    # 1. every policy summarizes every article (same seed and settings)
    summaries, kls = {}, {}
    settings = dict(k=1, max_new_tokens=cfg.max_new_tokens, temperature=cfg.temperature, batch_size=cfg.batch_size)
    baseline_model, _ = load_policy(locate(cfg.root, cfg.baseline))
    for name in cfg.policies:
        model, tok = load_policy(locate(cfg.root, name))
        samples = sample_completions(  # with the policy's log-probs: the KL below runs only the baseline
            model, tok, prompts, seed=cfg.seed, progress=f"{name} summaries", logprobs=True, **settings
        )
        summaries[name] = [t[0].strip() for t in samples.texts]
        if name == cfg.baseline:  # the baseline against itself: 0 by definition, no need for two more passes
            kls[name] = 0.0
        else:
            kl = sequence_kl(
                model, baseline_model, samples, temperature=cfg.temperature, progress=f"{name} KL to {cfg.baseline}"
            )
            kls[name] = mean(kl)
    summaries["reference"] = references

    # 2. score every system: judge, reward model, ROUGE, length, degeneration
    judge = make_labeler("summary")
    judge_scores = {
        name: judge.score(prompts, texts) for name, texts in tqdm(summaries.items(), desc="Judging systems")
    }
    rm_scores = {}
    if cfg.reward_model:  # every system's summary of an article in one packed row: the article is encoded once
        names = list(summaries)
        flat = reward_model_scores(
            locate(cfg.root, cfg.reward_model),
            [p for p in prompts for _ in names],
            [summaries[name][i] for i in range(len(prompts)) for name in names],
            shared_prompt=True,
            progress="Reward model scoring",
        )
        rm_scores = {name: flat[j :: len(names)] for j, name in enumerate(names)}
    metrics = {}
    for name, texts in tqdm(summaries.items(), desc="Scoring systems (ROUGE, length)"):
        row = {
            "judge_score": mean(judge_scores[name]),
            "length_words": mean([len(t.split()) for t in texts]),
            "distinct_2": distinct_n(texts, 2),
            "repetition_3": repetition_rate(texts, 3),
            "kl_to_sft": kls.get(name),
        }
        if name != "reference":
            row.update({f"{k}": v for k, v in rouge(texts, references).items()})
        if name in rm_scores:
            row["reward_model_score"] = mean(rm_scores[name])
        metrics[name] = row

    # 3. head-to-head: win rates vs the baseline and the references, Elo over all systems
    comparisons = judge_comparisons(judge_scores, baselines=(cfg.baseline, "reference"))
    for name in summaries:
        metrics[name].update(comparisons["win_rates"].get(name, {}))
        metrics[name]["elo"] = comparisons["elo"][name]

    os.makedirs(cfg.output_dir, exist_ok=True)
    paths = write_results(metrics, cfg.output_dir, title=f"{cfg.dataset}, {len(prompts)} held-out articles")
    examples = [{"prompt": p, **{name: summaries[name][i] for name in summaries}} for i, p in enumerate(prompts[:16])]
    with open(os.path.join(cfg.output_dir, "samples.json"), "w") as f:
        json.dump({"config": asdict(cfg), "examples": examples}, f, indent=2)
    if cfg.update_cards:
        update_cards(cfg, paths)
    print(Path(paths["markdown"]).read_text())
    return metrics


def update_cards(cfg: SummaryEvalConfig, paths: dict) -> None:
    """Put the comparison table and plot into the model card of every evaluated policy folder."""
    import shutil

    from rlhf_ext.cards import set_card_section

    table = Path(paths["markdown"]).read_text()
    for name in cfg.policies:
        folder = Path(locate(cfg.root, name))
        if not (folder / "README.md").exists():
            continue
        (folder / "plots").mkdir(exist_ok=True)
        shutil.copy(paths["plot"], folder / "plots" / "summarization_results.png")
        body = (
            f"This policy (`{name}`) and the other methods, judged on the same held-out articles "
            f"(recipes/evaluate_summaries.py):\n\n{table}\n![results](plots/summarization_results.png)\n"
        )
        set_card_section(folder / "README.md", "Summarization comparison", body)


if __name__ == "__main__":
    (cfg,) = TrlParser(SummaryEvalConfig).parse_args_and_config()
    main(cfg)
