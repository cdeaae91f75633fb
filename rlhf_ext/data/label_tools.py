"""Rankings exported by other labeling tools -> ranked rows (``prompt``, ``completions``, ``ranks``, ``labeler``).

- Argilla's ``RankingQuestion``: each response is a list of ``{"value": <option>, "rank": <int, 1 = best>}``; equal
  ranks are ties. Records come as Argilla 2.x flat dicts (``record.to_dict()`` or ``dataset.records.to_list(
  flatten=True)``: ``"<question>.responses"``, ``"<question>.responses.users"``, ``"<question>.responses.status"``),
  Argilla 2.x nested dicts (``"responses": {"<question>": [{"value", "user_id", "status"}]}``), Argilla 1.x
  ``FeedbackDataset`` Hub exports (``"<question>": [{"user_id", "value", "status"}]``) or 1.x record dicts
  (``"responses": [{"user_id", "values": {"<question>": {"value": [...]}}, "status"}]``).
- Label Studio's ``Ranker`` (``<List name=... value="$items"/>`` + ``<Ranker name=... toName=...>``): a task's
  ``data`` holds the items (``{"id", "title", "body"}``); an annotation result of type ``ranker`` holds
  ``value.ranker`` = ``{<list name>: [ids in ranked order]}`` (no buckets: a strict order) or ``{<bucket>: [ids],
  ...}`` (with ``<Bucket>`` tags: each bucket is one tie group, buckets in the order given, or as exported).

Each labeler's response becomes one row (``labeler`` names them), ready for ``RankedRewardTrainer``; rows that carry
no comparison (fewer than 2 ranked completions, or all tied) and unsubmitted or cancelled responses are left out and
counted in a log line. Both functions return a ``datasets.Dataset``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from .formats import to_dataset
from .ranking import ranks_from_scores

logger = logging.getLogger(__name__)

__all__ = ["from_argilla_ranking", "from_label_studio_ranker"]


def _finish(rows: list[dict], dropped: dict[str, int], source: str):
    if any(dropped.values()):
        logger.warning("%s: left out %s", source, ", ".join(f"{n} {why}" for why, n in dropped.items() if n))
    if not rows:
        raise ValueError(f"{source}: no ranking with a comparison in the input ({dropped})")
    return to_dataset(rows)


# ---------------------------------------------------------------------------------------------------------------
# Argilla
# ---------------------------------------------------------------------------------------------------------------


def _argilla_responses(record: Mapping[str, Any], question: str) -> list[tuple[Any, Any, Any]]:
    """``(ranking value, user, status)`` of every response to ``question``, whatever the export's shape."""
    flat = f"{question}.responses"
    if flat in record:
        values = record[flat] or []
        users = record.get(f"{flat}.users") or [None] * len(values)
        statuses = record.get(f"{flat}.status") or ["submitted"] * len(values)
        return list(zip(values, users, statuses))
    responses = record.get("responses")
    if isinstance(responses, Mapping):  # 2.x nested
        return [
            (r.get("value"), r.get("user_id"), r.get("status", "submitted")) for r in responses.get(question) or []
        ]
    if isinstance(responses, list):  # 1.x record dict
        out = []
        for r in responses:
            value = (r.get("values") or {}).get(question)
            if value is not None:
                out.append(
                    (value.get("value") if isinstance(value, Mapping) else value, r.get("user_id"), r.get("status"))
                )
        return out
    if isinstance(record.get(question), list):  # 1.x Hub export
        return [(r.get("value"), r.get("user_id"), r.get("status", "submitted")) for r in record[question]]
    return []


def _argilla_field(record: Mapping[str, Any], name: str) -> Any:
    fields = record.get("fields")
    if isinstance(fields, Mapping) and name in fields:
        return fields[name]
    return record.get(name)


def from_argilla_ranking(
    records: Iterable[Mapping[str, Any]],
    *,
    question: str = "ranking",
    prompt_field: str = "prompt",
    options: Mapping[str, str] | None = None,
    submitted_only: bool = True,
):
    """Argilla ``RankingQuestion`` responses -> one ranked row per (record, labeler).

    ``options`` maps each option value to the record field holding that completion's text (e.g. ``{"reply-1":
    "response1", "reply-2": "response2"}``); by default an option value that names a record field takes that field's
    text, and any other option value is the completion text itself. Completions keep the order of ``options`` (or
    of the first response). Argilla ranks start at 1; equal ranks tie. ``submitted_only`` drops draft and discarded
    responses. ``labeler`` is the response's user id.
    """
    rows: list[dict] = []
    dropped = {"unsubmitted responses": 0, "incomplete rankings": 0, "all-tied rankings": 0}
    for index, record in enumerate(records):
        prompt = _argilla_field(record, prompt_field)
        if prompt is None:
            raise ValueError(f"Argilla record {index}: no field '{prompt_field}' (pass prompt_field=)")
        for value, user, status in _argilla_responses(record, question):
            if submitted_only and status not in (None, "submitted"):
                dropped["unsubmitted responses"] += 1
                continue
            if not isinstance(value, list) or any(not isinstance(v, Mapping) or "value" not in v for v in value):
                raise ValueError(
                    f"Argilla record {index}: the '{question}' response is not a list of {{value, rank}} items: "
                    f"{value!r:.80}"
                )
            ranked = {v["value"]: v.get("rank") for v in value}
            names = list(options) if options is not None else list(ranked)
            if any(ranked.get(n) is None for n in names) or len(names) < 2:
                dropped["incomplete rankings"] += 1
                continue
            completions = []
            for name in names:
                field = options[name] if options is not None else name
                text = _argilla_field(record, field)
                if options is not None and text is None:
                    raise ValueError(f"Argilla record {index}: option {name!r} maps to field {field!r}, not found")
                completions.append(text if text is not None else name)
            ranks = ranks_from_scores([int(ranked[n]) for n in names], higher_is_better=False)
            if len(set(ranks)) < 2:
                dropped["all-tied rankings"] += 1
                continue
            rows.append(
                {
                    "prompt": prompt,
                    "completions": completions,
                    "ranks": ranks,
                    "labeler": "" if user is None else str(user),
                }
            )
    return _finish(rows, dropped, "from_argilla_ranking")


# ---------------------------------------------------------------------------------------------------------------
# Label Studio
# ---------------------------------------------------------------------------------------------------------------


def _labeler_of(annotation: Mapping[str, Any]) -> str:
    who = annotation.get("completed_by")
    if isinstance(who, Mapping):
        who = who.get("email") or who.get("id")
    return "" if who is None else str(who)


def from_label_studio_ranker(
    tasks: Iterable[Mapping[str, Any]],
    *,
    prompt_field: str = "prompt",
    items_field: str = "items",
    ranker: str | None = None,
    buckets: Sequence[str] | None = None,
    unplaced: str = "drop",
    text_key: str = "body",
):
    """Label Studio ``Ranker`` annotations (its JSON export: a list of tasks) -> one ranked row per annotation.

    ``data[items_field]`` is the list of ``{"id", "title", "body"}`` items and ``data[prompt_field]`` the prompt; a
    completion's text is its ``text_key`` (``body``), or ``title`` when that is missing. ``ranker``: the Ranker tag's
    name (``from_name``) when a config has several. With ``buckets`` (the Bucket names, best first) every bucket is a
    tie group; without, a single list is a strict order and several groups are buckets in the order exported. Items
    in no bucket (Label Studio's ``"_"`` column) are dropped from the row (``unplaced="drop"``) or ranked below every
    bucket (``"last"``). Cancelled annotations are skipped. ``labeler`` is the annotation's ``completed_by``.
    """
    if unplaced not in ("drop", "last"):
        raise ValueError(f"unplaced must be 'drop' or 'last', got {unplaced!r}")
    rows: list[dict] = []
    dropped = {"cancelled annotations": 0, "rankings without a comparison": 0}
    for index, task in enumerate(tasks):
        data = task.get("data") or {}
        if prompt_field not in data or items_field not in data:
            raise ValueError(
                f"Label Studio task {index}: data needs '{prompt_field}' and '{items_field}', has {sorted(data)}"
            )
        items = {str(item["id"]): item for item in data[items_field]}
        for annotation in task.get("annotations") or []:
            if annotation.get("was_cancelled"):
                dropped["cancelled annotations"] += 1
                continue
            results = [
                r
                for r in annotation.get("result") or []
                if r.get("type") == "ranker" and (ranker is None or r.get("from_name") == ranker)
            ]
            if len(results) != 1:
                raise ValueError(
                    f"Label Studio task {index}: expected one 'ranker' result, found {len(results)}"
                    + (" (pass ranker= to pick one)" if len(results) > 1 else "")
                )
            groups = dict(results[0]["value"]["ranker"])
            rest = [str(i) for i in groups.pop("_", [])]
            if buckets is not None:
                unknown = sorted(set(groups) - set(buckets))
                if unknown:
                    raise ValueError(f"Label Studio task {index}: bucket(s) {unknown} not in buckets={list(buckets)}")
                order = [[str(i) for i in groups.get(b, [])] for b in buckets]
            elif len(groups) == 1:
                order = [[str(i)] for i in next(iter(groups.values()))]  # a plain list: every item its own place
            else:
                order = [[str(i) for i in ids] for ids in groups.values()]
            if unplaced == "last" and rest:
                order.append(rest)
            ids, ranks = [], []
            for place, group in enumerate(g for g in order if g):
                for item_id in group:
                    if item_id not in items:
                        raise ValueError(f"Label Studio task {index}: ranked id {item_id!r} is not in its items")
                    ids.append(item_id)
                    ranks.append(place)
            if len(set(ranks)) < 2:
                dropped["rankings without a comparison"] += 1
                continue
            completions = [items[i].get(text_key) or items[i].get("title") for i in ids]
            rows.append(
                {
                    "prompt": data[prompt_field],
                    "completions": completions,
                    "ranks": ranks,
                    "labeler": _labeler_of(annotation),
                }
            )
    return _finish(rows, dropped, "from_label_studio_ranker")
