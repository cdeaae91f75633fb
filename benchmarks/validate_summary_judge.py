"""Validate the offline summary judge (``SummaryLabeler``) on held-out articles before anything is trained on it.

    python benchmarks/validate_summary_judge.py --sft outputs/tldr/sft          # writes docs/summary_judge.json

A judge stands in for a person only if it prefers what a person would. On held-out articles of the news TL;DR
stand-in, the human-written headline is compared with
(a) a summary sampled from the SFT policy (temperature 0.7, as in labelling and evaluation),
(b) another article's headline, (c) the article's first N words (N = the headline's length) and its first 12,
(d) the headline cut to its first third, its words shuffled, and the headline repeated three times,
and every one of these, the headline included, with an empty summary. A preference rate is the share of articles
where the judge scores the headline higher (ties half), with a 90% bootstrap interval over articles.

It also times the judge (seconds per summary, all features) and writes the SFT samples to
``tests/data/judge_sft_samples.json`` so that the test suite re-judges the very same samples
(tests/test_summary_judge.py). The table in docs/summarization.md is rendered from the JSON by
:func:`render_table` (``--docs``), and a test checks that the two agree.
"""

from __future__ import annotations

import argparse
import json
import random
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOCS_BEGIN = "<!-- judge-validation:begin (benchmarks/validate_summary_judge.py writes this table) -->"
DOCS_END = "<!-- judge-validation:end -->"

# name -> (what the headline is compared with, target preference rate from issue 13)
CONTRASTS = {
    "sft": ("(a) a sample from the SFT policy", 0.65),
    "other_article": ("(b) another article's headline", 0.95),
    "lead": ("(c) the article's first N words, N = the headline's length", 0.95),
    "lead_12": ("(c) the article's first 12 words", 0.95),
    "first_third": ("(d) the headline's first third", 0.95),
    "shuffled": ("(d) the headline's words shuffled", 0.90),
    "repeated": ("(d) the headline repeated three times", 0.95),
    "empty": ("an empty summary", 1.0),
}


def held_out_articles(num_articles: int, max_article_words: int, dataset: str = "offline-tldr"):
    """The first ``num_articles`` test-split rows after the evaluation's shuffle (seed 0): prompts and headlines."""
    from rlhf_ext.summarization import summarization_dataset

    data = summarization_dataset(dataset, "test", max_article_words=max_article_words)
    if num_articles > len(data):
        raise ValueError(f"num_articles={num_articles} but the test split has {len(data)} articles")
    data = data.shuffle(seed=0).select(range(num_articles))
    return list(data["prompt"]), [c.strip() for c in data["completion"]]


def variants(prompts: list[str], references: list[str], seed: int = 0) -> dict[str, list[str]]:
    """The corrupted summaries of each article, built from its headline and text (no model involved)."""
    from rlhf_ext.offline.summary_judge import article_of

    rng = random.Random(seed)
    n = len(references)
    if n < 2:
        raise ValueError("need at least two articles (one's headline stands in as another article's)")
    articles = [article_of(p).split() for p in prompts]

    def shuffled(text: str) -> str:
        words = text.split()
        for _ in range(20):  # a headline whose words are all equal cannot change
            rng.shuffle(words)
            if " ".join(words) != text:
                break
        return " ".join(words)

    return {
        "other_article": [references[(i + 1 + rng.randrange(n - 1)) % n] for i in range(n)],
        "lead": [" ".join(a[: len(r.split())]) for a, r in zip(articles, references)],
        "lead_12": [" ".join(a[:12]) for a in articles],
        "first_third": [" ".join(r.split()[: max(1, len(r.split()) // 3)]) for r in references],
        "shuffled": [shuffled(r) for r in references],
        "repeated": [" ".join([r] * 3) for r in references],
        "empty": [""] * n,
    }


def preference_rates(scores: dict[str, list[float]]) -> dict[str, dict]:
    """Reference over each variant, and each system (reference included) over the empty summary."""
    from rlhf_ext.evaluation import win_rate

    out = {}
    for name in CONTRASTS:
        if name not in scores:
            continue
        over_variant = win_rate(scores["reference"], scores[name])
        over_empty = win_rate(scores[name], scores["empty"]) if name != "empty" else None
        out[name] = {
            "reference_preferred": over_variant.rate,
            "ci90": [over_variant.low, over_variant.high],
            "target": CONTRASTS[name][1],
            "beats_empty": None if over_empty is None else over_empty.rate,
        }
    out["reference"] = {"beats_empty": win_rate(scores["reference"], scores["empty"]).rate}
    return out


def render_table(results: dict) -> str:
    """The markdown table of docs/summarization.md, from the JSON this script writes."""
    rates = results["rates"]
    lines = [
        "| the headline vs | headline preferred | 90% CI | target | this summary beats an empty one |",
        "|---|---|---|---|---|",
    ]
    for name, (label, _) in CONTRASTS.items():
        if name not in rates:
            continue
        r = rates[name]
        empty = "–" if r["beats_empty"] is None else f"{r['beats_empty']:.3f}"
        lines.append(
            f"| {label} | {r['reference_preferred']:.3f} | {r['ci90'][0]:.3f}–{r['ci90'][1]:.3f} "
            f"| >= {r['target']:.2f} | {empty} |"
        )
    lines.append(f"| (the headline itself) | | | | {rates['reference']['beats_empty']:.3f} |")
    cost = results["cost"]
    lines += [
        "",
        f"{results['num_articles']} held-out articles (test split, {results['max_article_words']}-word articles); "
        f"judge cost {1000 * cost['seconds_per_summary']:.0f} ms per summary ({cost['summaries']} summaries in "
        f"{cost['seconds']:.0f} s, {cost['torch_threads']} torch threads{', machine shared' if cost['shared'] else ''}).",
    ]
    return "\n".join(lines)


def write_docs(results: dict, docs: Path) -> None:
    text = docs.read_text()
    if DOCS_BEGIN not in text or DOCS_END not in text:
        raise ValueError(f"{docs} has no '{DOCS_BEGIN}' ... '{DOCS_END}' block to fill")
    head, rest = text.split(DOCS_BEGIN, 1)
    _, tail = rest.split(DOCS_END, 1)
    docs.write_text(f"{head}{DOCS_BEGIN}\n{render_table(results)}\n{DOCS_END}{tail}")


def docs_table(docs: Path) -> str:
    """The table currently in the docs' judge-validation block."""
    text = docs.read_text()
    return text.split(DOCS_BEGIN, 1)[1].split(DOCS_END, 1)[0].strip("\n")


def main(argv=None):
    import torch

    from rlhf_ext.offline.labelers import SummaryLabeler

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sft", default=None, help="SFT policy folder for contrast (a); without it (a) is skipped.")
    ap.add_argument("--num_articles", type=int, default=256)
    ap.add_argument("--max_article_words", type=int, default=80)
    ap.add_argument("--temperature", type=float, default=0.7)
    ap.add_argument("--max_new_tokens", type=int, default=24)
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--shared", action="store_true", help="Say in the docs that other jobs shared the machine.")
    ap.add_argument("--output", default=str(ROOT / "docs" / "summary_judge.json"))
    ap.add_argument("--samples_output", default=str(ROOT / "tests" / "data" / "judge_sft_samples.json"))
    ap.add_argument("--docs", default=str(ROOT / "docs" / "summarization.md"), help="'' to leave the docs alone.")
    args = ap.parse_args(argv)

    prompts, references = held_out_articles(args.num_articles, args.max_article_words)
    systems = {"reference": references, **variants(prompts, references)}
    if args.sft:
        from rlhf_ext.continuation import load_policy
        from rlhf_ext.sampling import sample_completions

        model, tok = load_policy(args.sft)
        samples = sample_completions(
            model, tok, prompts, k=1, max_new_tokens=args.max_new_tokens, temperature=args.temperature,
            batch_size=16, seed=args.seed, progress="SFT samples",
        )  # fmt: skip
        systems["sft"] = [t[0].strip() for t in samples.texts]
        del model

    judge = SummaryLabeler()
    judge.score(prompts[:2], references[:2])  # load both models before timing
    names = list(systems)
    t0 = time.perf_counter()
    features = judge.features(prompts * len(names), [t for name in names for t in systems[name]])
    seconds = time.perf_counter() - t0
    n = len(prompts)
    scores = {name: [judge.score_features(f) for f in features[j * n : (j + 1) * n]] for j, name in enumerate(names)}
    results = {
        "num_articles": n,
        "max_article_words": args.max_article_words,
        "judge": {k: v for k, v in vars(judge).items() if not k.startswith("_")},
        "rates": preference_rates(scores),
        "cost": {
            "seconds": round(seconds, 1),
            "summaries": len(features),
            "seconds_per_summary": seconds / len(features),
            "torch_threads": torch.get_num_threads(),
            "shared": args.shared,
        },
        "mean_features": {
            name: {k: sum(f[k] for f in features[j * n : (j + 1) * n]) / n for k in features[0]}
            for j, name in enumerate(names)
        },
        "mean_score": {name: sum(s) / n for name, s in scores.items()},
        "sampling": {
            "sft": args.sft,
            "temperature": args.temperature,
            "max_new_tokens": args.max_new_tokens,
            "seed": args.seed,
        },  # fmt: skip
    }
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(results, indent=2) + "\n")
    if "sft" in systems and args.samples_output:
        Path(args.samples_output).parent.mkdir(parents=True, exist_ok=True)
        Path(args.samples_output).write_text(
            json.dumps(
                {"max_article_words": args.max_article_words, "references": references, "sft": systems["sft"]},
                indent=0,
            )
            + "\n"  # fmt: skip
        )
    if args.docs:
        write_docs(results, Path(args.docs))
    print(render_table(results))
    return results


if __name__ == "__main__":
    main()
