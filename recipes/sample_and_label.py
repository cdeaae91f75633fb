"""Sample K completions per prompt and let a labeler rank them (Ziegler et al. 2019 with InstructGPT's labels).

Stage 1 of the sentiment pipeline (``recipes/run_demo.py``) and stage 2 of the summarization one
(``recipes/run_summarize.py``):

    accelerate launch recipes/sample_and_label.py --config recipes/configs/sample_and_label_offline.yaml
    accelerate launch recipes/sample_and_label.py --config recipes/configs/label_tldr_offline.yaml  # summaries

For each prompt (a movie-review opening), the initial policy samples K = 4 continuations (Ziegler et al.
sampled 4 and asked labelers for the best one; we keep the whole ranking, as InstructGPT did with K = 4..9).
A programmatic labeler stands in for the human: VADER sentiment ("positive is better") or a
descriptiveness proxy. The summarization recipes use the same stage (``task: summary``): the SFT policy
samples K = 4 summaries per article and ``SummaryLabeler`` ranks them, standing in for Stiennon et al.'s
human comparisons. The result is a ranked preference dataset with columns ``prompt``, ``completions``,
``ranks`` (0 = best, equal ranks tie) and ``scores``, saved with ``Dataset.save_to_disk`` into
``output_dir`` and, with ``--push_to_hub``, pushed as a Hub dataset with its own card.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from tqdm.auto import tqdm
from trl import TrlParser

from rlhf_ext.continuation import prompt_dataset
from rlhf_ext.data.ranking import ranks_from_scores, scores_shared_by_copies
from rlhf_ext.data.rows import take_rows
from rlhf_ext.models import load_policy
from rlhf_ext.offline.labelers import LABELERS, make_labeler
from rlhf_ext.pipeline import require_inputs
from rlhf_ext.sampling import sample_completions

# ----------------------------------------------------------------------------- hyperparameters


@dataclass
class SampleAndLabelConfig:
    model_name_or_path: str = field(
        default="offline",
        metadata={"help": "Policy to sample from: a Hub id or folder, or 'offline' for SmolLM2-135M-Instruct."},
    )
    prompts: str = field(
        default="offline",
        metadata={
            "help": "'offline' for the Rotten Tomatoes review openings, or a Hub dataset id with a `prompt` column; "
            "for task=summary: 'offline-tldr', 'offline-cnndm' or a summarization dataset (see rlhf_ext.summarization)."
        },
    )
    dataset_config: str | None = field(
        default=None, metadata={"help": "Hub dataset config of the prompts, e.g. '3.0.0' for abisee/cnn_dailymail."}
    )
    max_article_words: int | None = field(
        default=None, metadata={"help": "task=summary, offline stand-ins: cut articles to N words."}
    )
    task: str = field(
        default="sentiment",
        metadata={
            "help": "What the labeler prefers (rlhf_ext.offline.labelers.LABELERS); 'none' samples only (prompt, "
            "completions), for people to rank with `rlhf-ext label serve --data output_dir`.",
            "choices": [*sorted(LABELERS), "none"],
        },
    )
    num_prompts: int = field(default=256, metadata={"help": "Prompts to label (Ziegler et al. used 4,992 labels)."})
    k: int = field(
        default=4, metadata={"help": "Completions sampled per prompt (Ziegler et al.: 4; InstructGPT: 4-9)."}
    )
    max_new_tokens: int = field(default=24, metadata={"help": "Continuation length in tokens (Ziegler et al.: 24)."})
    temperature: float = field(
        default=0.7,
        metadata={"help": "Sampling temperature. Ziegler et al. used 1.0; the 4-bit SmolLM2 reads better at 0.7."},
    )
    top_k: int = field(default=0, metadata={"help": "Top-k sampling (0 = off, as in Ziegler et al.)."})
    batch_size: int = field(default=16, metadata={"help": "Prompts per generate() call."})
    test_fraction: float = field(
        default=0.125, metadata={"help": "Share of labeled prompts kept as a held-out split."}
    )
    seed: int = field(default=0, metadata={"help": "Random seed for prompt choice and sampling."})
    output_dir: str = field(
        default="outputs/sentiment/labels", metadata={"help": "Where the ranked dataset is saved."}
    )
    push_to_hub: bool = field(default=False, metadata={"help": "Push the ranked dataset and its card to the Hub."})
    hub_dataset_id: str | None = field(default=None, metadata={"help": "Hub dataset repo id for --push_to_hub."})


# ----------------------------------------------------------------------------- helpers


def load_prompts(cfg: SampleAndLabelConfig) -> list[str]:
    source, num_prompts, seed = cfg.prompts, cfg.num_prompts, cfg.seed
    if cfg.task == "summary":
        from rlhf_ext.summarization import summarization_dataset

        ds = summarization_dataset(source, "train", cfg.dataset_config, cfg.max_article_words)
    else:
        ds = prompt_dataset(source, "train")
    return take_rows(ds, num_prompts, seed=seed, option="num_prompts", what="the prompt dataset")["prompt"]


# ----------------------------------------------------------------------------- main


def main(cfg: SampleAndLabelConfig):
    require_inputs(
        {"model_name_or_path": cfg.model_name_or_path}, Path(__file__).resolve().parent
    )  # one line naming what is missing
    from datasets import Dataset, DatasetDict

    if cfg.k < 2:
        raise ValueError(f"k must be >= 2 to form a ranking, got {cfg.k}")
    if cfg.push_to_hub and cfg.task == "none":
        raise ValueError("--task none saves unranked samples for the labeling page; push the labels it exports")
    if cfg.push_to_hub and not cfg.hub_dataset_id:
        raise ValueError("--push_to_hub needs --hub_dataset_id")
    torch.manual_seed(cfg.seed)
    labeler = None if cfg.task == "none" else make_labeler(cfg.task)
    prompts = load_prompts(cfg)
    model, tok = load_policy(cfg.model_name_or_path)

    t0 = time.time()
    completions = sample_completions(
        model,
        tok,
        prompts,
        k=cfg.k,
        max_new_tokens=cfg.max_new_tokens,
        temperature=cfg.temperature,
        top_k=cfg.top_k,
        batch_size=cfg.batch_size,
        seed=cfg.seed,
        progress=f"sampling {cfg.k} continuations per prompt",
    ).texts
    if labeler is None:  # people rank these on the labeling page
        data = Dataset.from_list([{"prompt": p, "completions": c} for p, c in zip(prompts, completions)])
        data.save_to_disk(cfg.output_dir)
        print(f"sampled {cfg.k} completions for {len(data)} prompts into {cfg.output_dir}; rank them with:")
        print(f"  rlhf-ext label serve --data {cfg.output_dir} --session {cfg.output_dir}.sqlite")
        return data, {"prompts": len(data), "seconds": round(time.time() - t0, 1)}
    rows = []
    chunk = cfg.batch_size  # prompts judged together: the judge's models batch their K completions
    for start in tqdm(range(0, len(prompts), chunk), desc=f"ranking with the {cfg.task} labeler", unit="batch"):
        group = list(zip(prompts[start : start + chunk], completions[start : start + chunk]))
        flat = labeler.score([p for p, comps in group for _ in comps], [c for _, comps in group for c in comps])
        for prompt, comps in group:
            scores, flat = scores_shared_by_copies(comps, flat[: len(comps)]), flat[len(comps) :]
            ranks = ranks_from_scores(scores, tie_tolerance=labeler.tie_tolerance)
            rows.append({"prompt": prompt, "completions": comps, "ranks": ranks, "scores": scores})
    # A prompt whose K completions all tie gives no comparison: InstructGPT's loss has no pair for it.
    usable = [r for r in rows if len(set(r["ranks"])) > 1]
    if len(usable) < 2:
        raise ValueError(
            f"the labeler tied all {cfg.k} completions of {len(rows) - len(usable)} of {len(rows)} prompts, leaving "
            f"{len(usable)} prompt(s) with a comparison: sample longer or more varied completions (max_new_tokens, "
            "temperature) or use another task"
        )
    n_test = max(1, round(cfg.test_fraction * len(usable)))
    data = DatasetDict({"train": Dataset.from_list(usable[n_test:]), "test": Dataset.from_list(usable[:n_test])})
    Path(cfg.output_dir).mkdir(parents=True, exist_ok=True)
    data.save_to_disk(cfg.output_dir)

    n_pairs = sum(sum(1 for i in r["ranks"] for j in r["ranks"] if i < j) for r in usable)
    stats = {
        "task": cfg.task,
        "prompts": len(rows),
        "all_tied_dropped": len(rows) - len(usable),
        "train_prompts": len(data["train"]),
        "test_prompts": len(data["test"]),
        "comparisons": n_pairs,
        "mean_score": sum(sum(r["scores"]) for r in rows) / sum(len(r["scores"]) for r in rows),
        "seconds": round(time.time() - t0, 1),
    }
    with open(os.path.join(cfg.output_dir, "labeling_stats.json"), "w") as f:
        json.dump(stats, f, indent=2)
    print(json.dumps(stats, indent=2))
    if cfg.push_to_hub:
        from rlhf_ext.hub import push_ranked_dataset

        push_ranked_dataset(
            data,
            cfg.hub_dataset_id,
            stats=stats,
            source_model="SmolLM2-135M-Instruct" if cfg.model_name_or_path == "offline" else cfg.model_name_or_path,
            labeler=type(labeler).__name__,
            dataset_is_standin=cfg.prompts.startswith("offline"),
        )
    return data, stats


if __name__ == "__main__":
    (cfg,) = TrlParser(SampleAndLabelConfig).parse_args_and_config()
    main(cfg)
