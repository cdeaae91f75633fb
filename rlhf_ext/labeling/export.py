"""From a labeling session to RankedRewardTrainer rows, agreement statistics, a dataset card and the Hub.

``export(session)`` gives one row per (labeler, ranked prompt): ``prompt``, ``completions`` (in the source's order,
not the order a labeler saw), ``ranks`` (0 = best, equal ranks tie), ``labeler``, ``time`` (UTC, ISO 8601) and
``item_id``, ``flags``, ``note``, ``seconds``. ``mode="consensus"`` gives one row per prompt instead: completions
ordered by their mean rank over its labelers (ranks averaged as fractional ranks, so a tie spans the places it
covers), equal means tying. Rows where every completion ties carry no comparison and are left out (counted).
"""

from __future__ import annotations

import json
import logging
import os
import random
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from .agreement import agreement, format_agreement
from .store import FLAGS, LabelingError, LabelStore, dense_ranks

logger = logging.getLogger(__name__)

MODES = ("per_labeler", "consensus")


def _open(session) -> LabelStore:
    return session if isinstance(session, LabelStore) else LabelStore(session)


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, tz=timezone.utc).isoformat(timespec="seconds")


def fractional_ranks(ranks: list[int]) -> list[float]:
    """Place-based ranks with ties at the mean of the places they share: ``[0, 1, 1, 2] -> [0, 1.5, 1.5, 3]``."""
    order = sorted(range(len(ranks)), key=lambda i: ranks[i])
    out = [0.0] * len(ranks)
    start = 0
    while start < len(order):
        end = start
        while end + 1 < len(order) and ranks[order[end + 1]] == ranks[order[start]]:
            end += 1
        for place in range(start, end + 1):
            out[order[place]] = (start + end) / 2
        start = end + 1
    return out


def _ranked(store: LabelStore, labelers, exclude_flags) -> list:
    bad = [f for f in exclude_flags if f not in FLAGS]
    if bad:
        raise ValueError(f"exclude_flags: unknown flag(s) {bad}; flags are {list(FLAGS)}")
    out = []
    for j in store.judgements():
        if j.status != "ranked" or (labelers is not None and j.labeler not in labelers):
            continue
        if set(j.flags) & set(exclude_flags):
            continue
        out.append(j)
    return out


def export_rows(
    session,
    *,
    mode: str = "per_labeler",
    labelers: list[str] | None = None,
    exclude_flags: tuple[str, ...] | list[str] = (),
    min_labelers: int = 1,
) -> tuple[list[dict], dict[str, Any]]:
    """The rows of :func:`export` as dicts, and counts of what was left out."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    store = _open(session)
    judgements = _ranked(store, labelers, exclude_flags)
    rows, all_tied = [], 0
    if mode == "per_labeler":
        for j in judgements:
            if len(set(j.ranks)) < 2:
                all_tied += 1
                continue
            rows.append(
                {
                    "prompt": j.prompt,
                    "completions": j.completions,
                    "ranks": j.ranks,
                    "labeler": j.labeler,
                    "time": _iso(j.created_at),
                    "item_id": j.item_id,
                    "flags": j.flags,
                    "note": j.note,
                    "seconds": j.seconds,
                }
            )
    else:
        by_item: dict[int, list] = {}
        for j in judgements:
            by_item.setdefault(j.item_id, []).append(j)
        for item_id in sorted(by_item):
            group = by_item[item_id]
            if len(group) < min_labelers:
                continue
            places = [fractional_ranks(j.ranks) for j in group]
            mean = [round(sum(p[k] for p in places) / len(places), 9) for k in range(len(places[0]))]
            ranks = dense_ranks(mean)
            if len(set(ranks)) < 2:
                all_tied += 1
                continue
            rows.append(
                {
                    "prompt": group[0].prompt,
                    "completions": group[0].completions,
                    "ranks": ranks,
                    "labeler": ",".join(sorted(j.labeler for j in group)),
                    "time": _iso(max(j.created_at for j in group)),
                    "item_id": item_id,
                    "flags": sorted({f for j in group for f in j.flags}),
                    "note": "\n".join(f"{j.labeler}: {j.note}" for j in group if j.note),
                    "seconds": sum(j.seconds for j in group if j.seconds is not None)
                    if any(j.seconds is not None for j in group)
                    else None,
                }
            )
    return rows, {"all_tied_left_out": all_tied}


def export(
    session,
    *,
    mode: str = "per_labeler",
    labelers: list[str] | None = None,
    exclude_flags: tuple[str, ...] | list[str] = (),
    min_labelers: int = 1,
):
    """A ``datasets.Dataset`` of RankedRewardTrainer rows from a labeling session (a path or a ``LabelStore``).

    ``mode``: ``"per_labeler"`` (one row per labeler and prompt) or ``"consensus"`` (one row per prompt ranked by at
    least ``min_labelers`` labelers). ``labelers``: keep only these. ``exclude_flags``: leave out judgements flagged
    with any of these (``"broken"``, ``"unsafe"``); by default flagged rankings are kept, with their ``flags``.
    Raises ``LabelingError`` when nothing is left to export.
    """
    from datasets import Dataset

    rows, _ = export_rows(
        session, mode=mode, labelers=labelers, exclude_flags=exclude_flags, min_labelers=min_labelers
    )
    if not rows:
        raise LabelingError("no ranked judgement to export yet (skips and all-tied rankings carry no comparison)")
    return Dataset.from_list(rows)


def session_agreement(session, labelers: list[str] | None = None, exclude_flags=()) -> dict[str, Any]:
    """:func:`rlhf_ext.labeling.agreement.agreement` over a session's live rankings."""
    store = _open(session)
    return agreement((j.item_id, j.labeler, j.ranks) for j in _ranked(store, labelers, exclude_flags))


def session_stats(session) -> dict[str, Any]:
    """Counts for the card: prompts, labelers, rankings, skips, flags, comparisons, median seconds per judgement."""
    store = _open(session)
    judgements = store.judgements()
    ranked = [j for j in judgements if j.status == "ranked"]
    seconds = sorted(j.seconds for j in judgements if j.seconds is not None)
    stats = {
        "prompts": store.num_items,
        "prompts_ranked": len({j.item_id for j in ranked}),
        "labelers": len({j.labeler for j in judgements}),
        "rankings": len(ranked),
        "skips": sum(j.status == "skipped" for j in judgements),
        "comparisons": sum(
            sum(1 for a in range(len(j.ranks)) for b in range(a + 1, len(j.ranks)) if j.ranks[a] != j.ranks[b])
            for j in ranked
        ),
        "undone": len(store.judgements(include_undone=True)) - len(judgements),
    }
    for flag in FLAGS:
        stats[f"flagged_{flag}"] = sum(flag in j.flags for j in judgements)
    if seconds:
        stats["median_seconds_per_judgement"] = round(seconds[len(seconds) // 2], 1)
    return stats


def save_export(
    session,
    output_dir: str | os.PathLike,
    *,
    mode: str = "per_labeler",
    exclude_flags=(),
    min_labelers: int = 1,
    test_fraction: float = 0.125,
    seed: int = 0,
    push_to_hub: bool = False,
    hub_dataset_id: str | None = None,
    token: str | None = None,
) -> dict[str, Any]:
    """Export, print the agreement, save ``output_dir`` (``save_to_disk`` + ``README.md`` card + ``stats.json``) and,
    with ``push_to_hub``, push the dataset and card through :mod:`rlhf_ext.hub` (retried; no token in any file).

    ``test_fraction`` of the prompts (at least one, when there are two or more) go to a ``test`` split with all their
    labelers' rows, so that no prompt is in both splits; 0 keeps a ``train`` split alone.
    """
    from datasets import DatasetDict

    from ..cards import render_dataset_card

    if push_to_hub and not hub_dataset_id:
        raise ValueError("--push_to_hub needs --hub_dataset_id")
    store = _open(session)
    rows = export(store, mode=mode, exclude_flags=exclude_flags, min_labelers=min_labelers)
    items = sorted(set(rows["item_id"]))
    random.Random(seed).shuffle(items)
    n_test = max(1, round(test_fraction * len(items))) if test_fraction > 0 and len(items) > 1 else 0
    held_out = set(items[:n_test])
    data = DatasetDict({"train": rows.filter(lambda r: r["item_id"] not in held_out)})
    if held_out:
        data["test"] = rows.filter(lambda r: r["item_id"] in held_out)
    _, left_out = export_rows(store, mode=mode, exclude_flags=exclude_flags, min_labelers=min_labelers)
    stats = {**session_stats(store), "mode": mode, "rows": len(rows), "test_prompts": n_test, **left_out}
    agree = session_agreement(store, exclude_flags=exclude_flags)
    section = format_agreement(agree)
    print(section)
    repo_id = hub_dataset_id or Path(output_dir).name
    card_args = dict(
        summary=(
            "Rankings of K completions per prompt by human labelers, collected with rlhf_ext's labeling page "
            f"(`rlhf-ext label`); {'one row per labeler and prompt' if mode == 'per_labeler' else 'one consensus row per prompt'}."
        ),
        source_model=store.source or "unknown",
        labeler=f"{stats['labelers']} human labeler(s)",
        stats=stats,
        sections={"Agreement between labelers": section},
    )
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    data.save_to_disk(str(output_dir))
    render_dataset_card(repo_id, dataset_is_standin=False, has_scores=False, **card_args).save(
        str(output_dir / "README.md")
    )
    (output_dir / "stats.json").write_text(json.dumps({"stats": stats, "agreement": agree}, indent=2))
    if push_to_hub:
        from ..hub import push_ranked_dataset

        push_ranked_dataset(data, hub_dataset_id, dataset_is_standin=False, token=token, **card_args)
    return {"stats": stats, "agreement": agree}
