"""Model and dataset cards for what rlhf_ext trains: templates rendered with plots and ``model-index`` metadata.

This module only renders. The Jinja templates are ``rlhf_ext/templates/model.md`` and ``dataset.md`` (as TRL keeps
its own in ``trl/templates/``); :func:`render_model_card` and :func:`render_dataset_card` fill them, and
:func:`draw_training_plots` draws the learning curves and the reward-vs-KL plot from a trainer's ``log_history``.
Trainers get their card from ``rlhf_ext.base_trainer.TrainerMixin.create_model_card``, which gathers the trainer's
facts and calls these functions; recipes add what only they know (evaluation results, the data's provenance)
through ``trainer.card_info``, or edit a saved card with :func:`set_card_section`.
"""

from __future__ import annotations

import enum
import importlib.resources
import math
import os
import re
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

CITATIONS = {
    "ziegler2019": "Ziegler et al. 2019, *Fine-Tuning Language Models from Human Preferences*, arXiv:1909.08593",
    "instructgpt": "Ouyang et al. 2022, *Training language models to follow instructions with human feedback*, "
    "arXiv:2203.02155",
    "stiennon2020": "Stiennon et al. 2020, *Learning to summarize from human feedback*, arXiv:2009.01325",
    "huang2024": "Huang et al. 2024, *The N+ Implementation Details of RLHF with PPO: A Case Study on TL;DR "
    "Summarization*, arXiv:2403.17031",
    "ppo": "Schulman et al. 2017, *Proximal Policy Optimization Algorithms*, arXiv:1707.06347",
    "gae": "Schulman et al. 2016, *High-Dimensional Continuous Control Using Generalized Advantage Estimation*, "
    "arXiv:1506.02438",
    "dpo": "Rafailov et al. 2023, *Direct Preference Optimization*, arXiv:2305.18290",
    "orpo": "Hong et al. 2024, *ORPO: Monolithic Preference Optimization without Reference Model*, arXiv:2403.07691",
    "trl": "von Werra et al., *TRL: Transformer Reinforcement Learning*, https://github.com/huggingface/trl",
}

KIND_LABELS = {
    "reward_model": "reward model (scalar score of a prompt and completion)",
    "policy": "policy (causal language model)",
}


@dataclass
class CardInfo:
    """What a card says beyond what the trainer knows. Recipes fill it; trainers give defaults."""

    kind: str = "policy"
    method: str = ""
    # The Hub id of the base model when the trainer only knows a local folder (e.g. the offline conversion).
    base_model: str | None = None
    summary: str = ""
    dataset_name: str | None = None
    dataset_description: str = "the training data passed to the trainer"
    dataset_is_standin: bool = False
    citations: list[str] = field(default_factory=lambda: ["trl"])
    hyperparameters: dict = field(default_factory=dict)
    # Each: {"task": ..., "dataset": ..., "metric": ..., "value": float}
    eval_results: list[dict] = field(default_factory=list)
    usage: str | None = None
    # Plots a recipe drew itself (e.g. before/after score histograms), as {"title": ..., "path": "plots/x.png"}
    # relative to the output folder.
    extra_plots: list[dict] = field(default_factory=list)
    license: str = "apache-2.0"
    tags: list[str] = field(default_factory=list)


def framework_versions() -> dict[str, str]:
    out = {}
    for name in ("rlhf_ext", "trl", "transformers", "torch", "peft", "accelerate", "datasets", "huggingface_hub"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "not installed"
    return out


def _template(name: str) -> str:
    return importlib.resources.files("rlhf_ext").joinpath("templates", name).read_text(encoding="utf-8")


def _default_usage(kind: str, repo: str) -> str:
    if kind == "reward_model":
        return (
            "from transformers import AutoModelForSequenceClassification, AutoTokenizer\n"
            f'tok = AutoTokenizer.from_pretrained("{repo}")\n'
            f'rm = AutoModelForSequenceClassification.from_pretrained("{repo}")\n'
            'score = rm(**tok("prompt and completion", return_tensors="pt")).logits[0, 0]'
        )
    return (
        "from transformers import pipeline\n"
        f'generator = pipeline("text-generation", model="{repo}")\n'
        'print(generator("The movie was", max_new_tokens=24)[0]["generated_text"])'
    )


def _is_number(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def _eval_results(rows: list[dict], kind: str, dataset_name: str | None) -> list:
    """``huggingface_hub.EvalResult`` entries of ``model-index`` for rows ``{"metric", "value"[, "dataset", "task"]}``;
    rows without a finite number are left out."""
    from huggingface_hub import EvalResult

    return [
        EvalResult(
            task_type=r.get("task", "text-generation" if kind == "policy" else "text-classification"),
            dataset_type=r.get("dataset", dataset_name or "custom"),
            dataset_name=r.get("dataset", dataset_name or "custom"),
            metric_type=re.sub(r"[^a-z0-9]+", "_", r["metric"].lower()).strip("_"),
            metric_name=r["metric"],
            metric_value=round(float(r["value"]), 4),
        )
        for r in rows
        if _is_number(r.get("value"))
    ]


def _evaluation_table(results: list) -> str:
    rows = [f"| {r.metric_name} | {r.metric_value} | {r.dataset_name} |" for r in results]
    return "\n".join(["| metric | value | data |", "|---|---|---|", *rows])


def render_model_card(
    info: CardInfo,
    *,
    model_name: str,
    base_model: str | None = None,
    repo_id: str | None = None,
    plots: list[dict] | None = None,
):
    """A ``huggingface_hub.ModelCard`` for a policy or reward model, with ``model-index`` eval results."""
    from huggingface_hub import ModelCard, ModelCardData

    if info.kind not in KIND_LABELS:
        raise ValueError(f"card kind must be one of {sorted(KIND_LABELS)}, got {info.kind!r}")
    results = _eval_results(info.eval_results, info.kind, info.dataset_name)
    card_data = ModelCardData(
        base_model=base_model if base_model and not os.path.isdir(base_model) else None,
        datasets=[info.dataset_name] if info.dataset_name and not info.dataset_is_standin else None,
        library_name="transformers",
        license=info.license,
        model_name=model_name,
        tags=sorted({"rlhf_ext", "trl", "rlhf", *info.tags}),
        eval_results=results or None,
    )
    # model-index needs a model name; ModelCardData takes it from model_name.
    return ModelCard.from_template(
        card_data,
        template_str=_template("model.md"),
        model_name=model_name,
        summary=info.summary or f"A {KIND_LABELS[info.kind]} trained with rlhf_ext.",
        kind_label=KIND_LABELS[info.kind],
        base_model=base_model,
        method=info.method or "see citations",
        dataset_is_standin=info.dataset_is_standin,
        dataset_description=info.dataset_description,
        hyperparameters={
            k: (v.value if isinstance(v, enum.Enum) else v) for k, v in info.hyperparameters.items() if v is not None
        },
        eval_results=results,
        evaluation_table=_evaluation_table(results),
        plots=plots or [],
        usage=info.usage or _default_usage(info.kind, repo_id or model_name),
        versions=framework_versions(),
        citations=[CITATIONS.get(c, c) for c in info.citations],
    )


def render_dataset_card(
    repo_id: str,
    *,
    summary: str,
    source_model: str,
    labeler: str,
    dataset_is_standin: bool,
    stats: dict | None = None,
    has_scores: bool = True,
    citations: tuple[str, ...] = ("ziegler2019", "instructgpt"),
    sections: dict[str, str] | None = None,
):
    """A ``huggingface_hub.DatasetCard`` for a ranked preference dataset; ``sections`` adds ``{heading: markdown}``
    after the statistics (e.g. the agreement between human labelers)."""
    from huggingface_hub import DatasetCard, DatasetCardData

    data = DatasetCardData(
        license="apache-2.0",
        task_categories=["text-generation"],
        tags=["rlhf_ext", "preference", "ranked", *(["offline-stand-in"] if dataset_is_standin else [])],
        pretty_name=repo_id.split("/")[-1],
    )
    return DatasetCard.from_template(
        data,
        template_str=_template("dataset.md"),
        dataset_name=repo_id.split("/")[-1],
        repo_id=repo_id,
        summary=summary,
        source_model=source_model,
        labeler=labeler,
        dataset_is_standin=dataset_is_standin,
        stats=stats or {},
        has_scores=has_scores,
        sections=sections or {},
        citations=[CITATIONS.get(c, c) for c in citations],
    )


# ----------------------------------------------------------------------------- plots


def _series(log_history: list[dict], key: str) -> tuple[list[float], list[float]]:
    steps, values = [], []
    for entry in log_history:
        if key in entry and _is_number(entry[key]):
            steps.append(entry.get("step", len(steps)))
            values.append(float(entry[key]))
    return steps, values


def plot_learning_curves(log_history: list[dict], keys: list[str], path: str | Path, title: str) -> bool:
    """Line plots of the logged ``keys`` against the step; returns False (and draws nothing) with no data."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    present = [(k, *_series(log_history, k)) for k in keys]
    present = [p for p in present if p[1]]
    if not present:
        return False
    fig, axes = plt.subplots(1, len(present), figsize=(4 * len(present), 3), squeeze=False)
    for ax, (key, steps, values) in zip(axes[0], present):
        ax.plot(steps, values, marker="." if len(steps) < 30 else None)
        ax.set_title(key, fontsize=9)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def plot_reward_vs_kl(log_history: list[dict], path: str | Path, reward_key: str, kl_key: str) -> bool:
    """Reward against KL to the reference over training (Ziegler et al.'s trade-off view), step as colour."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pairs = [
        (e.get("step", i), float(e[kl_key]), float(e[reward_key]))
        for i, e in enumerate(log_history)
        if _is_number(e.get(kl_key)) and _is_number(e.get(reward_key))
    ]
    if not pairs:
        return False
    steps, kls, rewards = zip(*pairs)
    fig, ax = plt.subplots(figsize=(4.5, 3.5))
    sc = ax.scatter(kls, rewards, c=steps, cmap="viridis", s=18)
    ax.plot(kls, rewards, alpha=0.3, color="grey")
    fig.colorbar(sc, ax=ax, label="step")
    ax.set_xlabel(f"KL to reference ({kl_key})")
    ax.set_ylabel(f"reward ({reward_key})")
    ax.set_title("reward vs KL")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def plot_score_histograms(before: list[float], after: list[float], path: str | Path, label: str) -> bool:
    """Overlaid histograms of a score before and after training."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not before or not after:
        return False
    fig, ax = plt.subplots(figsize=(4.5, 3.2))
    lo, hi = min(min(before), min(after)), max(max(before), max(after))
    bins = [lo + (hi - lo) * i / 20 for i in range(21)] if hi > lo else 10
    ax.hist(before, bins=bins, alpha=0.55, label="before")
    ax.hist(after, bins=bins, alpha=0.55, label="after")
    ax.set_xlabel(label)
    ax.set_ylabel("samples")
    ax.legend()
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def draw_training_plots(
    log_history: list[dict], output_dir: str, curves: tuple[str, ...], reward_kl: tuple[str, str] | None = None
) -> list[dict]:
    """Draw a trainer's plots into ``<output_dir>/plots/`` and list them for the card (``{"title", "path"}``).

    ``reward_kl`` (reward key, KL key): the reward-vs-KL scatter; ``curves``: the logged keys drawn as learning
    curves (those never logged are left out); ``eval_loss`` / ``eval_accuracy`` when evaluated. A plot with no data
    is not drawn.
    """
    plots = []
    if reward_kl is not None:
        reward_key, kl_key = reward_kl
        if plot_reward_vs_kl(log_history, os.path.join(output_dir, "plots", "reward_vs_kl.png"), reward_key, kl_key):
            plots.append({"title": "reward vs KL", "path": "plots/reward_vs_kl.png"})
    logged = [k for k in curves if any(k in e for e in log_history)]
    if plot_learning_curves(log_history, logged, os.path.join(output_dir, "plots", "learning_curves.png"), "training"):
        plots.append({"title": "learning curves", "path": "plots/learning_curves.png"})
    eval_curves = [f"eval_{k}" for k in ("loss", "accuracy") if any(f"eval_{k}" in e for e in log_history)]
    if plot_learning_curves(
        log_history, eval_curves, os.path.join(output_dir, "plots", "eval_curves.png"), "evaluation"
    ):
        plots.append({"title": "evaluation curves", "path": "plots/eval_curves.png"})
    return plots


def set_card_section(
    readme: str | os.PathLike, heading: str, body: str, before: tuple[str, ...] = ("Citations",)
) -> None:
    """Put ``## heading`` + ``body`` into an existing model card, replacing that section if it is there.

    Recipes that evaluate a saved model after its trainer is gone (e.g. several methods compared side by side)
    add their results this way; running the evaluation again replaces the section instead of appending a copy.
    A new section goes before the first of the ``before`` headings the card has (by default "## Citations"), else at
    the end.
    """
    path = Path(readme)
    text = path.read_text(encoding="utf-8")
    marker = f"## {heading}\n"
    section = f"{marker}\n{body.strip()}\n\n"
    anchor = next((f"\n## {h}\n" for h in before if f"\n## {h}\n" in text), None)
    if marker in text:
        start = text.index(marker)
        nxt = text.find("\n## ", start + len(marker))
        text = text[:start] + section + (text[nxt + 1 :] if nxt != -1 else "")
    elif anchor is not None:
        at = text.index(anchor) + 1
        text = text[:at] + section + text[at:]
    else:
        text = text.rstrip("\n") + "\n\n" + section
    _replace_file(path, text)


def _replace_file(path: Path, text: str) -> None:
    text = re.sub(r"\n{3,}", "\n\n", text)  # sections the template left empty or an edit removed leave blank runs
    tmp = path.with_suffix(".md.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)  # a reader never sees a half-written card


def update_model_card(
    readme: str | os.PathLike,
    *,
    summary: str | None = None,
    eval_results: list[dict] | None = None,
    plots: list[dict] = (),
    kind: str = "policy",
) -> None:
    """Add what was learnt after training to a card written by :func:`render_model_card`, in place.

    ``eval_results`` (rows as in :class:`CardInfo`) go into the ``model-index`` metadata, replacing results of the
    same metric name, and into the card's "Evaluation" table; ``plots`` (``{"title", "path"}``, relative to the
    card's folder) are shown under the table; ``summary`` replaces the paragraph under the title. Running it again
    with the same results leaves the card as it was.
    """
    from huggingface_hub import ModelCard

    path = Path(readme)
    card = ModelCard.load(path)
    text = card.text
    if summary is not None:
        title_end = text.index("\n", text.index("# "))
        nxt = text.find("\n## ", title_end)
        text = text[: title_end + 1] + f"\n{summary.strip()}\n" + (text[nxt:] if nxt != -1 else "\n")
    if eval_results is not None:
        new = _eval_results(eval_results, kind, None)
        names = {r.metric_name for r in new}
        kept = [r for r in (card.data.eval_results or []) if r.metric_name not in names]
        card.data.eval_results = (kept + new) or None
        if card.data.eval_results and not card.data.model_name:
            card.data.model_name = text[text.index("# ") + 2 : text.index("\n", text.index("# "))].strip()
    card.text = text
    _replace_file(path, str(card))
    if eval_results is not None or plots:
        body = _evaluation_table(card.data.eval_results or [])
        body += "".join(f"\n\n![{p['title']}]({p['path']})" for p in plots)
        set_card_section(
            path, "Evaluation", body, before=("Training curves", "Usage", "Framework versions", "Citations")
        )


def copy_card(folder: str | os.PathLike, dest: str | os.PathLike) -> Path:
    """Copy the card of a saved model (``README.md`` and ``plots/``, not the weights) from ``folder`` to ``dest``.

    The orchestrators use it to keep the published runs' example cards in ``model_cards/``; an older copy's plots are
    replaced. Returns the copied card's path.
    """
    import shutil

    folder, dest = Path(folder), Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copy(folder / "README.md", dest / "README.md")
    if (dest / "plots").exists():
        shutil.rmtree(dest / "plots")
    if (folder / "plots").is_dir():
        shutil.copytree(folder / "plots", dest / "plots")
    return dest / "README.md"
