"""Hypothesis strategies for well-formed and malformed ranked, pairwise and prompt rows (issue 8).

A malformed row is a well-formed one with exactly one corruption applied. Each corruption in ``CORRUPTIONS`` maps
``(draw, row)`` to ``(bad_row, problem)``, where ``problem`` is a regex for the start of the ``ValueError`` message
after ``"<dataset name> row <i>: "``; :func:`corrupted` draws a row and applies one that fits it. Corruptions marked
``arrow=True`` keep every column's Arrow type, so the bad row can sit in a ``datasets.Dataset`` next to well-formed
rows of the same shape (text or messages, explicit or implicit prompt); the others only exist in lists of dicts.
"""

from __future__ import annotations

import math
import re

import numpy as np
from hypothesis import assume
from hypothesis import strategies as st

# Non-blank texts from a small alphabet (duplicates and shared prefixes are likely, which is the point).
WORDS = st.text(alphabet="abcxyz ", min_size=1, max_size=6).filter(lambda s: s.strip())
BLANK = st.sampled_from(["", " ", "  \n", "\t"])


def message(role, content):
    return {"role": role, "content": content}


def prompt_messages():
    """A conversation to answer: earlier turns of any role, then a user turn."""
    earlier = st.lists(st.builds(message, st.sampled_from(["system", "user", "assistant"]), WORDS), max_size=2)
    return st.builds(lambda turns, last: turns + [message("user", last)], earlier, WORDS)


def reply(text):
    return [message("assistant", text)]


# ------------------------------------------------------------------------------------------------------------------
# Well-formed rows
# ------------------------------------------------------------------------------------------------------------------


@st.composite
def ranked_rows(draw, conversational=None, margin=None):
    """``{"prompt", "completions", "ranks"[, "margin"]}``: K in 2..9, integer ranks, at least one strict pair.

    Completions are distinct, except copies that share their original's rank (a tie, which is allowed).
    """
    conv = draw(st.booleans()) if conversational is None else conversational
    k = draw(st.integers(2, 9))
    texts = draw(st.lists(WORDS, min_size=k, max_size=k, unique=True))
    ranks = draw(st.lists(st.integers(-2, 6), min_size=k, max_size=k))
    if len(set(ranks)) == 1:
        ranks[draw(st.integers(0, k - 1))] += 1
    # A copy of a completion tied with its original, if that leaves a strict pair.
    i, j = draw(st.integers(0, k - 1)), draw(st.integers(0, k - 1))
    copied = ranks[:j] + [ranks[i]] + ranks[j + 1 :]
    if i != j and draw(st.booleans()) and len(set(copied)) > 1:
        texts[j], ranks = texts[i], copied
    int_type = draw(st.sampled_from([int, int, np.int64, np.int32]))
    row = {
        "prompt": draw(prompt_messages()) if conv else draw(WORDS),
        "completions": [reply(t) for t in texts] if conv else texts,
        "ranks": [int_type(r) for r in ranks],
    }
    if margin if margin is not None else draw(st.booleans()):
        row["margin"] = draw(st.one_of(st.none(), st.integers(-3, 3), st.floats(-5, 5)))
    return row


# Different first non-blank characters: splitting off an implicit prompt leaves both sides non-blank.
CHOSEN_REJECTED = st.tuples(WORDS, WORDS).filter(lambda cr: cr[0].lstrip()[0] != cr[1].lstrip()[0])


@st.composite
def pairwise_rows(draw, conversational=None, explicit_prompt=None, margin=None):
    """TRL preference rows: ``chosen``/``rejected`` with an explicit ``prompt`` or an implicit shared one."""
    conv = draw(st.booleans()) if conversational is None else conversational
    explicit = draw(st.booleans()) if explicit_prompt is None else explicit_prompt
    chosen, rejected = draw(CHOSEN_REJECTED)
    prompt = draw(prompt_messages()) if conv else draw(WORDS)
    if conv:
        chosen, rejected = reply(chosen), reply(rejected)
    if explicit:
        row = {"prompt": prompt, "chosen": chosen, "rejected": rejected}
    else:
        row = {"chosen": prompt + chosen, "rejected": prompt + rejected}
    if margin if margin is not None else draw(st.booleans()):
        row["margin"] = draw(st.floats(-5, 5))
    return row


def preference_rows(**kwargs):
    return st.one_of(ranked_rows(**kwargs), pairwise_rows(**kwargs))


@st.composite
def prompt_rows(draw, conversational=None):
    """A PPO/RLOO prompt row: a non-blank string, or messages of which at least one has content."""
    conv = draw(st.booleans()) if conversational is None else conversational
    if not conv:
        return {"prompt": draw(WORDS)}
    messages = draw(prompt_messages())
    if draw(st.booleans()):  # a blank system turn is fine while another message says something
        messages = [message("system", "")] + messages
    return {"prompt": messages}


# ------------------------------------------------------------------------------------------------------------------
# One corruption each
# ------------------------------------------------------------------------------------------------------------------

# "chat_prompt": rows only a trainer that renders prompts with TRL's apply_chat_template (ORPO) must reject.
CORRUPTIONS: dict[str, list] = {"ranked": [], "pairwise": [], "prompt": [], "chat_prompt": []}


def corruption(*kinds, arrow=False):
    """Register ``fn(draw, row) -> (bad_row, problem_regex)``, or None when it does not apply to ``row``."""

    def register(fn):
        for kind in kinds:
            CORRUPTIONS[kind].append((fn.__name__, fn, arrow))
        return fn

    return register


def _conv(row):
    value = row.get("prompt", row.get("chosen"))
    return isinstance(value, list)


def _pick(draw, n):
    return draw(st.integers(0, n - 1))


# -- ranked rows ---------------------------------------------------------------------------------------------------


@corruption("ranked")
def missing_column(draw, row):
    column = draw(st.sampled_from(["prompt", "completions", "ranks"]))
    bad = {k: v for k, v in row.items() if k != column}
    return bad, rf"missing column\(s\) \['{column}'\]"


@corruption("ranked", arrow=True)
def none_value(draw, row):
    column = draw(st.sampled_from(["prompt", "completions", "ranks"]))
    problem = {
        "prompt": "'prompt' must be a string or a list of messages, got NoneType",
        "completions": "'completions' must be a list, got NoneType",
        "ranks": "'ranks' must be a list of integers, got NoneType",
    }[column]
    return {**row, column: None}, problem


@corruption("ranked")
def wrong_container(draw, row):
    column = draw(st.sampled_from(["prompt", "completions", "ranks"]))
    if column == "prompt":
        value = draw(st.sampled_from([7, 2.5, {"role": "user", "content": "hi"}]))
        return {**row, column: value}, "'prompt' must be a string or a list of messages, got"
    if column == "completions":
        value = draw(st.sampled_from(["one string", {"a": 1}, 3]))
        return {**row, column: value}, "'completions' must be a list, got"
    value = draw(st.sampled_from(["0 1", {"0": 1}, 1]))
    return {**row, column: value}, "'ranks' must be a list of integers, got"


@corruption("ranked", arrow=True)
def fewer_than_two(draw, row):
    n = draw(st.integers(0, 1))
    bad = {**row, "completions": row["completions"][:n], "ranks": row["ranks"][:n]}
    return bad, rf"'completions' has {n} entry\(ies\); a ranked row needs at least 2 completions"


@corruption("ranked", arrow=True)
def length_mismatch(draw, row):
    k = len(row["completions"])
    ranks = list(row["ranks"])
    ranks = ranks[:-1] if draw(st.booleans()) else ranks + [ranks[0]]
    return {**row, "ranks": ranks}, rf"'ranks' has {len(ranks)} entries but 'completions' has {k}"


@corruption("ranked", arrow=True)
def all_tied(draw, row):
    k = len(row["completions"])
    value = draw(st.integers(-2, 6))
    return {**row, "ranks": [value] * k}, rf"all {k} completions are tied"


@corruption("ranked")
def non_integer_rank(draw, row):
    i = _pick(draw, len(row["ranks"]))
    value = draw(st.sampled_from([0.5, 1.0, -2.0, math.nan, True, False, np.bool_(True), None, "1", [1]]))
    ranks = list(row["ranks"])
    ranks[i] = value
    return {**row, "ranks": ranks}, rf"rank {i} is {re.escape(repr(value)[:20])}.*ranks must be integers"


@corruption("ranked", arrow=True)
def empty_completion(draw, row):
    i = _pick(draw, len(row["completions"]))
    completions = list(row["completions"])
    if _conv(row):
        completions[i] = draw(st.sampled_from([[], reply(""), reply(" \n"), [message("assistant", "\t")] * 2]))
    else:
        completions[i] = draw(BLANK)
    return {**row, "completions": completions}, rf"completion {i} is empty"


@corruption("ranked")
def wrong_completion_type(draw, row):
    i = _pick(draw, len(row["completions"]))
    completions = list(row["completions"])
    if _conv(row):
        completions[i] = draw(st.sampled_from(["plain text", None, 3, {"role": "assistant", "content": "x"}]))
        problem = rf"completion {i} must be a list of messages \(the prompt is conversational\)"
    else:
        completions[i] = draw(st.sampled_from([None, 3, ["a", "b"], reply("x")]))
        problem = rf"completion {i} must be a string \(the prompt is a string\)"
    return {**row, "completions": completions}, problem


@corruption("ranked")
def text_and_messages_mixed(draw, row):
    if _conv(row):
        return {**row, "prompt": draw(WORDS)}, r"completion 0 must be a string \(the prompt is a string\)"
    return {**row, "prompt": draw(prompt_messages())}, r"completion 0 must be a list of messages"


@corruption("ranked", arrow=True)
def identical_completions_ranked_differently(draw, row):
    completions, ranks = list(row["completions"]), list(row["ranks"])
    pairs = [(i, j) for i in range(len(ranks)) for j in range(i + 1, len(ranks)) if ranks[i] != ranks[j]]
    i, j = draw(st.sampled_from(pairs))
    completions[j] = completions[i]
    return {**row, "completions": completions}, rf"completions \d+ and {j} are identical but ranked"


# -- messages (ranked rows and pairwise rows) ----------------------------------------------------------------------


def _message_paths(row):
    """(column, index or None, messages) for every message list of a conversational row."""
    if "completions" in row:
        return [("prompt", None, row["prompt"])] + [("completions", i, c) for i, c in enumerate(row["completions"])]
    return [(c, None, row[c]) for c in ("prompt", "chosen", "rejected") if c in row]


def _label(column, index):
    return f"completion {index}" if column == "completions" else f"'{column}'"


def _replace_message(row, column, index, m, new):
    messages = list(row[column] if index is None else row[column][index])
    messages[m] = new
    if index is None:
        return {**row, column: messages}
    completions = list(row[column])
    completions[index] = messages
    return {**row, column: completions}


@st.composite
def _message_slot(draw, row):
    column, index, messages = draw(st.sampled_from(_message_paths(row)))
    return column, index, _pick(draw, len(messages)), messages


@corruption("ranked", "pairwise")
def message_missing_key(draw, row):
    if not _conv(row):
        return None
    column, index, m, messages = draw(_message_slot(row))
    key = draw(st.sampled_from(["role", "content"]))
    bad = _replace_message(row, column, index, m, {k: v for k, v in messages[m].items() if k != key})
    return bad, rf"{_label(column, index)} message {m} has no '{key}'"


@corruption("ranked", "pairwise", arrow=True)
def message_bad_role_or_content(draw, row):
    if not _conv(row):
        return None
    column, index, m, messages = draw(_message_slot(row))
    key = draw(st.sampled_from(["role", "content"]))
    value = draw(st.sampled_from([None, ""] if key == "role" else [None]))
    bad = _replace_message(row, column, index, m, {**messages[m], key: value})
    return bad, rf"{_label(column, index)} message {m} has {key} {re.escape(repr(value))}"


@corruption("ranked", "pairwise")
def message_wrong_type(draw, row):
    if not _conv(row):
        return None
    column, index, m, messages = draw(_message_slot(row))
    if draw(st.booleans()):
        bad = _replace_message(row, column, index, m, draw(st.sampled_from(["text", None, ["user", "hi"]])))
        return bad, rf"{_label(column, index)} message {m} must be a dict with 'role' and 'content'"
    key = draw(st.sampled_from(["role", "content"]))
    bad = _replace_message(row, column, index, m, {**messages[m], key: draw(st.sampled_from([3, 1.5, True]))})
    return bad, rf"{_label(column, index)} message {m} has {key} "


@corruption("ranked", "pairwise", arrow=True)
def empty_conversation_prompt(draw, row):
    if not _conv(row):
        return None
    if "chosen" in row and "prompt" not in row:  # implicit: make the first turns differ
        first = row["chosen"][0]
        chosen = [{**first, "content": first["content"] + " (edited)"}] + row["chosen"][1:]
        problem = r"'prompt' is an empty list of messages \('chosen' and 'rejected' share no leading message\)"
        return {**row, "chosen": chosen}, problem
    return {**row, "prompt": []}, r"'prompt' is an empty list of messages"


@corruption("chat_prompt", arrow=True)
def prompt_without_a_final_turn_to_answer(draw, row):
    if not _conv(row):
        return None
    role = draw(st.sampled_from(["system", "developer"]))
    extra = [message(role, draw(WORDS))]
    if "prompt" in row:
        return {**row, "prompt": row["prompt"] + extra}, rf"'prompt' ends with a '{role}' message"
    # implicit prompt: the turn goes just before the replies, so it is the last shared message
    bad = {c: row[c][:-1] + extra + row[c][-1:] for c in ("chosen", "rejected")}
    return {**row, **bad}, rf"'prompt' ends with a '{role}' message"


@corruption("ranked", "pairwise")
def bad_margin(draw, row):
    value = draw(st.sampled_from(["0.5", True, np.bool_(False), [1.0], math.nan, math.inf, -math.inf]))
    return {**row, "margin": value}, r"'margin' must be a finite number"


@corruption("ranked", "pairwise")
def not_a_dict(draw, row):
    value = draw(st.sampled_from([list(row.values()), "prompt", None, tuple(row)]))
    return value, "expected a dict with columns"


# -- pairwise rows -------------------------------------------------------------------------------------------------


@corruption("pairwise")
def missing_chosen_or_rejected(draw, row):
    column = draw(st.sampled_from(["chosen", "rejected"]))
    return {k: v for k, v in row.items() if k != column}, rf"missing column\(s\) \['{column}'\]"


@corruption("pairwise", arrow=True)
def none_chosen_or_rejected(draw, row):
    column = draw(st.sampled_from(["chosen", "rejected"]))
    return {**row, column: None}, rf"'{column}' must be a string or a list of messages, got NoneType"


@corruption("pairwise")
def wrong_type_chosen_or_rejected(draw, row):
    column = draw(st.sampled_from(["chosen", "rejected"]))
    value = draw(st.sampled_from([0, 2.5, {"role": "assistant", "content": "x"}, ("a", "b")]))
    return {**row, column: value}, rf"'{column}' must be a string or a list of messages, got"


@corruption("pairwise", arrow=True)
def chosen_equals_rejected(draw, row):
    column = draw(st.sampled_from(["chosen", "rejected"]))
    other = "rejected" if column == "chosen" else "chosen"
    return {**row, column: row[other]}, "'chosen' and 'rejected' are identical"


@corruption("pairwise", arrow=True)
def empty_chosen_or_rejected(draw, row):
    column = draw(st.sampled_from(["chosen", "rejected"]))
    if "prompt" not in row:  # implicit prompt: the whole text or conversation is empty
        return {**row, column: [] if _conv(row) else ""}, rf"'{column}' is empty once the prompt"
    value = draw(st.sampled_from([[], reply(" ")])) if _conv(row) else draw(BLANK)
    return {**row, column: value}, rf"'{column}' is empty"


@corruption("pairwise")
def pair_text_and_messages_mixed(draw, row):
    column = draw(st.sampled_from(["chosen", "rejected"]))
    value = "plain text" if _conv(row) else reply("a reply")
    if "prompt" not in row:
        return {**row, column: value}, "'chosen' and 'rejected' must both be strings or both lists of messages"
    if _conv(row):
        return {**row, column: value}, rf"'{column}' must be a list of messages \(the prompt is conversational\)"
    return {**row, column: value}, rf"'{column}' must be a string \(the prompt is a string\)"


@corruption("pairwise")
def bad_explicit_prompt(draw, row):
    if "prompt" not in row:
        return None
    value = draw(st.sampled_from([None, 3, 2.5, {"role": "user", "content": "hi"}]))
    return {**row, "prompt": value}, "'prompt' must be a string or a list of messages, got"


# -- prompt rows ---------------------------------------------------------------------------------------------------


@corruption("prompt", arrow=True)
def prompt_none(draw, row):
    return {"prompt": None}, "'prompt' must be a string or a list of messages, got NoneType"


@corruption("prompt")
def prompt_wrong_type(draw, row):
    value = draw(st.sampled_from([0, 2.5, {"role": "user", "content": "hi"}, b"bytes", ("a",)]))
    return {"prompt": value}, "'prompt' must be a string or a list of messages, got"


@corruption("prompt", arrow=True)
def prompt_blank(draw, row):
    if _conv(row):
        n = len(row["prompt"])
        value = draw(st.sampled_from([[], [message("user", " ")] * n, [message("system", "")] * n]))
        return {"prompt": value}, r"'prompt' is empty"
    return {"prompt": draw(BLANK)}, r"'prompt' is empty"


@corruption("prompt")
def prompt_message_missing_key(draw, row):
    if not _conv(row):
        return None
    m = _pick(draw, len(row["prompt"]))
    key = draw(st.sampled_from(["role", "content"]))
    messages = list(row["prompt"])
    messages[m] = {k: v for k, v in messages[m].items() if k != key}
    return {"prompt": messages}, rf"'prompt' message {m} has no '{key}'"


@corruption("prompt", arrow=True)
def prompt_message_none_field(draw, row):
    if not _conv(row):
        return None
    m = _pick(draw, len(row["prompt"]))
    key = draw(st.sampled_from(["role", "content"]))
    messages = list(row["prompt"])
    messages[m] = {**messages[m], key: None}
    return {"prompt": messages}, rf"'prompt' message {m} has {key} None"


@corruption("prompt")
def prompt_message_not_a_dict(draw, row):
    if not _conv(row):
        return None
    m = _pick(draw, len(row["prompt"]))
    messages = list(row["prompt"])
    messages[m] = draw(st.sampled_from(["hello", None, 3]))
    return {"prompt": messages}, rf"'prompt' message {m} must be a dict"


@corruption("prompt")
def prompt_missing(draw, row):
    return {"text": "a prompt under another name"}, "missing column 'prompt'"


# ------------------------------------------------------------------------------------------------------------------
# Strategies of malformed rows
# ------------------------------------------------------------------------------------------------------------------


@st.composite
def corrupted(draw, kind, good, arrow_only=False):
    """``(name, bad_row, problem)``: one applicable corruption of kind ``kind`` applied to a row from ``good``."""
    row = draw(good)
    options = [(name, fn) for name, fn, arrow in CORRUPTIONS[kind] if arrow or not arrow_only]
    for name, fn in draw(st.permutations(options)):
        result = fn(draw, row)
        if result is not None:
            return (name, *result)
    assume(False)  # nothing applies to this row (e.g. a message corruption of a text row)
