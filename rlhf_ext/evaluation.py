"""Evaluation helpers shared by the recipes: win rates, ROUGE, degeneration, Elo, and results tables.

A labeler (or a human) compares the trained policy's sample with the initial policy's sample on the same
prompt; Ziegler et al. 2019 report such "vs zero-shot" preferences (86-88% with humans, sentiment task).
Ties count as half a win, so a policy that changes nothing scores 0.5.

For comparing several methods (the summarization recipes): :func:`rouge` (through ``evaluate``, with a local
copy of the metric module for offline machines), :func:`distinct_n` and :func:`repetition_rate`
(degeneration), :func:`judge_comparisons` (win rates against baselines and Elo ratings from every
head-to-head judgement), and :func:`write_results` (a markdown table, JSON and a plot).
"""

from __future__ import annotations

import itertools
import json
import math
import os
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class WinRate:
    rate: float
    low: float
    high: float
    wins: int
    ties: int
    losses: int
    confidence: float

    @property
    def n(self) -> int:
        return self.wins + self.ties + self.losses

    def __str__(self) -> str:
        pct = round(self.confidence * 100)
        return (
            f"{self.rate:.3f} ({pct}% CI {self.low:.3f}-{self.high:.3f}; "
            f"{self.wins} wins, {self.ties} ties, {self.losses} losses of {self.n})"
        )


def win_rate(
    scores_a: Sequence[float],
    scores_b: Sequence[float],
    confidence: float = 0.9,
    tie_tolerance: float = 0.0,
    n_bootstrap: int = 10_000,
    seed: int = 0,
) -> WinRate:
    """Share of prompts where A's score beats B's (ties count half), with a percentile-bootstrap interval.

    ``scores_a[i]`` and ``scores_b[i]`` must score the two policies' samples for the same prompt ``i``.
    The bootstrap resamples prompts, which is what varies between evaluations.
    """
    if len(scores_a) != len(scores_b):
        raise ValueError(f"scores_a has {len(scores_a)} entries but scores_b has {len(scores_b)}: pair them by prompt")
    if not scores_a:
        raise ValueError("win_rate needs at least one pair of scores")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    outcomes = []
    for a, b in zip(scores_a, scores_b):
        if abs(a - b) <= tie_tolerance:
            outcomes.append(0.5)
        else:
            outcomes.append(1.0 if a > b else 0.0)
    n = len(outcomes)
    rate = sum(outcomes) / n
    rng = random.Random(seed)
    means = sorted(sum(rng.choice(outcomes) for _ in range(n)) / n for _ in range(n_bootstrap))
    alpha = (1 - confidence) / 2
    low = means[max(0, math.floor(alpha * n_bootstrap))]
    high = means[min(n_bootstrap - 1, math.ceil((1 - alpha) * n_bootstrap) - 1)]
    return WinRate(
        rate=rate,
        low=low,
        high=high,
        wins=outcomes.count(1.0),
        ties=outcomes.count(0.5),
        losses=outcomes.count(0.0),
        confidence=confidence,
    )


# ---------------------------------------------------------------------------------------------------------------
# Comparing several systems (summarization)
# ---------------------------------------------------------------------------------------------------------------


def rouge(predictions: Sequence[str], references: Sequence[str]) -> dict[str, float]:
    """ROUGE-1/2/L/Lsum F1 (means over examples, Porter stemming) through ``evaluate``.

    Uses rlhf_ext's local copy of the metric module (``rlhf_ext/metrics/rouge``), so it works offline and gives
    the same numbers on every machine; ``evaluate.load("rouge")`` would fetch a script from the Hub.
    """
    import evaluate

    from .metrics import path

    if len(predictions) != len(references):
        raise ValueError(f"{len(predictions)} predictions but {len(references)} references: pair them one to one")
    if not predictions:
        raise ValueError("rouge needs at least one prediction")
    scores = evaluate.load(path("rouge")).compute(predictions=list(predictions), references=list(references))
    return {key: float(value) for key, value in scores.items()}


def _ngrams(text: str, n: int) -> list[tuple[str, ...]]:
    words = text.lower().split()
    return [tuple(words[i : i + n]) for i in range(len(words) - n + 1)]


def distinct_n(texts: Sequence[str], n: int = 2) -> float:
    """Distinct-n (Li et al. 2016): distinct n-grams / all n-grams over the whole set of texts (0 if none).

    Words are lower-cased whitespace tokens. Low values mean the texts reuse the same phrases.
    """
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    grams = [g for text in texts for g in _ngrams(text, n)]
    return len(set(grams)) / len(grams) if grams else 0.0


def repetition_rate(texts: Sequence[str], n: int = 3) -> float:
    """Mean over texts of the share of a text's n-grams that repeat an earlier n-gram of the same text.

    This is Welleck et al. 2019's seq-rep-n (1 - distinct n-grams / n-grams, per text), averaged over texts; a
    text with no n-gram counts 0. Degenerate text ("the the the ...") approaches 1.
    """
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    if not texts:
        raise ValueError("repetition_rate needs at least one text")
    rates = []
    for text in texts:
        grams = _ngrams(text, n)
        rates.append(1 - len(set(grams)) / len(grams) if grams else 0.0)
    return sum(rates) / len(rates)


def elo_ratings(
    comparisons: Sequence[tuple[str, str, float]], initial: float = 1000.0, prior: float = 0.5, iterations: int = 2000
) -> dict[str, float]:
    """Elo-scale ratings from head-to-head outcomes by a Bradley-Terry maximum-likelihood fit.

    ``comparisons``: ``(a, b, outcome)`` with outcome 1 (a wins), 0.5 (tie) or 0 (b wins). The fit is order
    independent (online Elo updates are not), as LMSYS's Chatbot Arena moved to. P(a beats b) =
    1 / (1 + 10 ** ((R_b - R_a) / 400)); ratings are centred on ``initial``. ``prior`` adds that many virtual
    ties between every pair that met, so an undefeated system gets a finite rating. Solved with Hunter's
    (2004) minorize-maximize updates.
    """
    players = sorted({p for a, b, _ in comparisons for p in (a, b)})
    if not players:
        raise ValueError("elo_ratings needs at least one comparison")
    wins = {p: 0.0 for p in players}
    games: dict[tuple[str, str], float] = {}
    for a, b, outcome in comparisons:
        if outcome not in (0, 0.5, 1):
            raise ValueError(f"outcome must be 1, 0.5 or 0, got {outcome!r} for ({a!r}, {b!r})")
        if a == b:
            raise ValueError(f"a system cannot play itself: {a!r}")
        wins[a] += outcome
        wins[b] += 1 - outcome
        key = (a, b) if a < b else (b, a)
        games[key] = games.get(key, 0.0) + 1
    for key in games:
        for p in key:
            wins[p] += prior
        games[key] += 2 * prior
    strength = dict.fromkeys(players, 1.0)
    for _ in range(iterations):
        new = {}
        for p in players:
            denom = sum(n / (strength[a] + strength[b]) for (a, b), n in games.items() if p in (a, b))
            new[p] = wins[p] / denom if denom else strength[p]
        norm = math.exp(sum(math.log(v) for v in new.values()) / len(new))
        new = {p: v / norm for p, v in new.items()}
        done = max(abs(math.log(new[p] / strength[p])) for p in players) < 1e-10
        strength = new
        if done:
            break
    return {p: initial + 400 * math.log10(strength[p]) for p in players}


def judge_comparisons(
    scores: Mapping[str, Sequence[float]],
    baselines: Sequence[str] = ("sft", "reference"),
    tie_tolerance: float = 0.0,
    confidence: float = 0.9,
) -> dict:
    """Head-to-head judgements of several systems scored by one judge on the same prompts.

    ``scores[name][i]`` is the judge's score of system ``name`` on prompt ``i``; on each prompt the higher score
    wins. Returns ``{"win_rates": {name: {"win_rate_vs_<b>": rate, "win_rate_vs_<b>_ci": [low, high]}},
    "elo": {name: rating}, "comparisons": [(a, b, outcome), ...]}``: win rates of every system against each
    baseline (ties half, bootstrap interval), and Elo ratings fitted on every pair of systems on every prompt.
    """
    names = list(scores)
    lengths = {len(v) for v in scores.values()}
    if len(lengths) != 1:
        raise ValueError(
            f"every system needs a score for every prompt, got lengths { {k: len(v) for k, v in scores.items()} }"
        )
    missing = [b for b in baselines if b not in scores]
    if missing:
        raise ValueError(f"baselines {missing} are not among the scored systems {names}")
    win_rates: dict[str, dict] = {name: {} for name in names}
    for base in baselines:
        for name in names:
            if name == base:
                continue
            wr = win_rate(scores[name], scores[base], confidence=confidence, tie_tolerance=tie_tolerance)
            win_rates[name][f"win_rate_vs_{base}"] = wr.rate
            win_rates[name][f"win_rate_vs_{base}_ci"] = [wr.low, wr.high]
    comparisons = []
    for a, b in itertools.combinations(names, 2):
        for x, y in zip(scores[a], scores[b]):
            comparisons.append((a, b, 0.5 if abs(x - y) <= tie_tolerance else float(x > y)))
    return {"win_rates": win_rates, "elo": elo_ratings(comparisons), "comparisons": comparisons}


_COLUMNS = (
    ("rouge1", "ROUGE-1"),
    ("rouge2", "ROUGE-2"),
    ("rougeL", "ROUGE-L"),
    ("judge_score", "judge"),
    ("reward_model_score", "RM"),
    ("length_words", "words"),
    ("distinct_2", "distinct-2"),
    ("repetition_3", "rep-3"),
    ("kl_to_sft", "KL to SFT"),
    ("win_rate_vs_sft", "win vs SFT"),
    ("win_rate_vs_reference", "win vs ref"),
    ("elo", "Elo"),
)


def _cell(row: Mapping, key: str) -> str:
    value = row.get(key)
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if key == "elo":
        return f"{value:.0f}"
    text = f"{value:.3f}" if key != "length_words" else f"{value:.1f}"
    ci = row.get(f"{key}_ci")
    return f"{text} ({ci[0]:.2f}–{ci[1]:.2f})" if ci else text


def results_markdown(metrics: Mapping[str, Mapping], title: str = "") -> str:
    """A markdown table: one row per system, the columns of :data:`_COLUMNS` that any system has."""
    columns = [(k, label) for k, label in _COLUMNS if any(k in row for row in metrics.values())]
    lines = [f"**{title}**", ""] if title else []
    lines.append("| system | " + " | ".join(label for _, label in columns) + " |")
    lines.append("|---|" + "---|" * len(columns))
    for name, row in metrics.items():
        lines.append(f"| {name} | " + " | ".join(_cell(row, k) for k, _ in columns) + " |")
    return "\n".join(lines) + "\n"


def write_results(metrics: Mapping[str, Mapping], output_dir: str, title: str = "") -> dict[str, str]:
    """Write ``results.md``, ``results.json`` and ``plots/results.png`` (win rates with intervals, and Elo).

    Returns their paths under the keys ``markdown``, ``json`` and ``plot``.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    os.makedirs(os.path.join(output_dir, "plots"), exist_ok=True)
    paths = {
        "markdown": os.path.join(output_dir, "results.md"),
        "json": os.path.join(output_dir, "results.json"),
        "plot": os.path.join(output_dir, "plots", "results.png"),
    }
    with open(paths["markdown"], "w") as f:
        f.write(results_markdown(metrics, title))
    with open(paths["json"], "w") as f:
        json.dump({"title": title, "systems": metrics}, f, indent=2)

    names = list(metrics)
    fig, (ax_win, ax_elo) = plt.subplots(1, 2, figsize=(10, 3.6))
    width = 0.38
    for offset, base in ((-width / 2, "sft"), (width / 2, "reference")):
        key = f"win_rate_vs_{base}"
        xs = [i + offset for i, n in enumerate(names) if key in metrics[n]]
        ys = [metrics[n][key] for n in names if key in metrics[n]]
        errs = [
            [y - metrics[n][f"{key}_ci"][0] for n, y in zip([n for n in names if key in metrics[n]], ys)],
            [metrics[n][f"{key}_ci"][1] - y for n, y in zip([n for n in names if key in metrics[n]], ys)],
        ]
        if xs:
            ax_win.bar(xs, ys, width, yerr=errs, capsize=3, label=f"vs {base}")
    ax_win.axhline(0.5, color="grey", lw=0.8, ls="--")
    ax_win.set_xticks(range(len(names)), names)
    ax_win.set_ylim(0, 1)
    ax_win.set_ylabel("judge win rate (ties half)")
    ax_win.legend(fontsize=8)
    ax_win.set_title("win rates, 90% intervals")
    elos = [metrics[n].get("elo", float("nan")) for n in names]
    ax_elo.bar(range(len(names)), elos, color="tab:green")
    ax_elo.set_xticks(range(len(names)), names)
    low = min(e for e in elos if not math.isnan(e))
    ax_elo.set_ylim(low - 50, max(elos) + 50)
    ax_elo.set_title("Elo (Bradley-Terry fit, all pairs)")
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(paths["plot"], dpi=100)
    plt.close(fig)
    return paths
