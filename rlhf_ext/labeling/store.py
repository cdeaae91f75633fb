"""Where the labeling page keeps its prompts and judgements: one SQLite file in WAL mode, fsynced per judgement.

A *judgement* is one labeler's answer for one prompt: a ranking of its K completions (ties allowed), or a skip,
with optional flags (``broken``, ``unsafe``) and a note. :meth:`LabelStore.submit` returns only after the row is
committed with ``PRAGMA synchronous=FULL``, which in WAL mode fsyncs the log on every commit: once the page says
"saved", a ``kill -9`` of the server (or a power cut) cannot lose it. Rows are appended, never overwritten; an undo
marks the labeler's latest judgement as undone (it stays in the file, out of every export). A partial unique index
allows one live judgement per (labeler, prompt), so two tabs of one labeler cannot record the same prompt twice,
and labelers never touch each other's rows.

The prompts and completions are copied into the file when it is created, so the file alone is the labeling
session: restarting the server on it resumes every labeler, and :func:`rlhf_ext.labeling.export` needs nothing else.

Who labels what (``assignment``): with no roster, every labeler who gives a name gets every prompt. With a roster of
M labelers and ``labelers_per_prompt`` L, each prompt goes to L labelers, balanced (each gets about N*L/M prompts)
and mixed (the same seed-driven draw pairs labelers differently from prompt to prompt, so agreement can be measured
between most pairs). Each labeler sees their prompts in an order of their own and, within a prompt, the completions
in an order of their own (position bias: InstructGPT's labelers saw outputs in random order); both orders derive from
the seed, the labeler's name and the prompt, so they survive restarts.
"""

from __future__ import annotations

import json
import random
import secrets
import sqlite3
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

FLAGS = ("broken", "unsafe")
MAX_NOTE_CHARS = 2000
MAX_NAME_CHARS = 64
SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS items (
    item_id INTEGER PRIMARY KEY,
    prompt TEXT NOT NULL,          -- JSON: a string or a list of chat messages
    completions TEXT NOT NULL      -- JSON list of K completions, in the source's order
);
CREATE TABLE IF NOT EXISTS judgements (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    labeler TEXT NOT NULL,
    item_id INTEGER NOT NULL REFERENCES items(item_id),
    status TEXT NOT NULL CHECK (status IN ('ranked', 'skipped')),
    ranks TEXT,                    -- JSON, in the source's completion order, dense, 0 = best; NULL when skipped
    shown_order TEXT NOT NULL,     -- JSON: position p on the page showed completion shown_order[p]
    flags TEXT NOT NULL,           -- JSON list, a subset of FLAGS
    note TEXT NOT NULL,
    created_at REAL NOT NULL,      -- unix time of the commit
    seconds REAL,                  -- time the labeler spent on the prompt, as the page measured it
    undone_at REAL                 -- set by undo; undone rows are kept but never exported
);
CREATE UNIQUE INDEX IF NOT EXISTS one_live_judgement ON judgements (labeler, item_id) WHERE undone_at IS NULL;
CREATE INDEX IF NOT EXISTS by_labeler ON judgements (labeler, id);
"""


class LabelingError(ValueError):
    """A request the store refuses (unknown labeler, incomplete ranking, a prompt already judged, ...)."""


@dataclass
class Task:
    """One prompt as one labeler sees it: completions in that labeler's order, and their progress."""

    item_id: int
    prompt: Any
    completions: list  # in shown order
    shown_order: list[int]  # shown position p -> index in the source's completions
    done: int  # judgements this labeler has made
    total: int  # prompts assigned to this labeler
    previous: dict | None = None  # the undone judgement of this prompt, to pre-fill the page
    labeler: str = ""


@dataclass
class Judgement:
    id: int
    labeler: str
    item_id: int
    status: str
    ranks: list[int] | None
    shown_order: list[int]
    flags: list[str]
    note: str
    created_at: float
    seconds: float | None
    prompt: Any = None
    completions: list = field(default_factory=list)


def dense_ranks(values: Sequence[float]) -> list[int]:
    """0 for the best (lowest) value, ties share a rank, no gaps: ``[2, 1, 2, 5] -> [1, 0, 1, 2]``."""
    distinct = sorted(set(values))
    return [distinct.index(v) for v in values]


def check_labeler_name(name: Any) -> str:
    if not isinstance(name, str) or not name.strip():
        raise LabelingError("a labeler name is required")
    name = name.strip()
    if len(name) > MAX_NAME_CHARS or any(ord(c) < 32 for c in name):
        raise LabelingError(f"a labeler name has at most {MAX_NAME_CHARS} printable characters")
    return name


def assign(num_items: int, roster: Sequence[str] | None, labelers_per_prompt: int | None, seed: int):
    """``{labeler: [item ids]}`` for a roster (see the module docstring), or None when every labeler gets every item."""
    if roster is None:
        return None
    per_prompt = len(roster) if labelers_per_prompt is None else labelers_per_prompt
    rng = random.Random(f"{seed}-assign")
    load = dict.fromkeys(roster, 0)
    out: dict[str, list[int]] = {name: [] for name in roster}
    for item in range(num_items):
        draw = {name: rng.random() for name in roster}
        for name in sorted(roster, key=lambda n: (load[n], draw[n]))[:per_prompt]:
            out[name].append(item)
            load[name] += 1
    return out


class LabelStore:
    """The SQLite file of one labeling session. Thread-safe: one connection per thread, SQLite's own locking between
    threads and processes (``busy_timeout`` 10 s)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        if not self.path.exists():
            raise FileNotFoundError(f"no labeling session at {self.path}: create one with LabelStore.create")
        self._local = threading.local()
        meta = dict(self._conn().execute("SELECT key, value FROM meta").fetchall())
        if int(meta.get("schema_version", -1)) != SCHEMA_VERSION:
            raise LabelingError(f"{self.path} is not a labeling session of this rlhf_ext version")
        self.roster: list[str] | None = json.loads(meta["roster"])
        self.labelers_per_prompt: int | None = json.loads(meta["labelers_per_prompt"])
        self.seed = int(meta["seed"])
        self.source = meta.get("source", "")
        # Key of the page's browser-side storage (the typed labeler name): kept in the file so that a restarted
        # server still reads what browsers stored before.
        self.browser_secret = meta["browser_secret"]
        self.num_items = self._conn().execute("SELECT COUNT(*) FROM items").fetchone()[0]
        self._assignment = assign(self.num_items, self.roster, self.labelers_per_prompt, self.seed)
        self._items: dict[int, tuple[Any, list]] = {}

    # ------------------------------------------------------------------ creation

    @classmethod
    def create(
        cls,
        path: str | Path,
        rows: Iterable[Mapping[str, Any]],
        *,
        labelers: Sequence[str] | None = None,
        labelers_per_prompt: int | None = None,
        seed: int = 0,
        source: str = "",
    ) -> LabelStore:
        """Write a new session file holding ``rows`` (each with ``prompt`` and ``completions``, K >= 2)."""
        from ..ranked_data import validate_prompt_dataset

        path = Path(path)
        if path.exists():
            raise FileExistsError(f"{path} exists; open it with LabelStore(path) to resume")
        roster = None
        if labelers is not None:
            roster = sorted({check_labeler_name(n) for n in labelers})
            if not roster:
                raise LabelingError("labelers: the roster is empty")
        if labelers_per_prompt is not None:
            if roster is None:
                raise LabelingError(
                    "labelers_per_prompt needs a roster of labelers (--labelers or the users of --auth_file): "
                    "without one every labeler ranks every prompt"
                )
            if not 1 <= labelers_per_prompt <= len(roster):
                raise LabelingError(
                    f"labelers_per_prompt must be between 1 and the {len(roster)} labelers, got {labelers_per_prompt}"
                )
        rows = [dict(row) for row in rows]
        if not rows:
            raise LabelingError("the dataset to label is empty")
        try:
            validate_prompt_dataset(rows, name="the dataset to label")
        except ValueError as err:
            raise LabelingError(str(err)) from None
        items = []
        for index, row in enumerate(rows):
            if "completions" not in row:
                raise LabelingError(f"the dataset to label row {index}: missing column 'completions'")
            completions = list(row["completions"])
            if len(completions) < 2:
                raise LabelingError(
                    f"the dataset to label row {index}: 'completions' has {len(completions)} entries; ranking needs >= 2"
                )
            for k, completion in enumerate(completions):
                if not isinstance(completion, (str, list)):
                    raise LabelingError(
                        f"the dataset to label row {index}: completion {k} must be a string or a list of messages, "
                        f"got {type(completion).__name__}"
                    )
                if not (completion.strip() if isinstance(completion, str) else completion):
                    raise LabelingError(f"the dataset to label row {index}: completion {k} is empty")
            items.append((index, json.dumps(row["prompt"]), json.dumps(completions)))
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".creating")
        tmp.unlink(missing_ok=True)
        conn = sqlite3.connect(tmp)
        conn.executescript(_SCHEMA)
        with conn:
            conn.executemany("INSERT INTO items VALUES (?, ?, ?)", items)
            meta = {
                "schema_version": str(SCHEMA_VERSION),
                "roster": json.dumps(roster),
                "labelers_per_prompt": json.dumps(labelers_per_prompt),
                "seed": str(seed),
                "source": source,
                "created_at": str(time.time()),
                "browser_secret": secrets.token_hex(16),
            }
            conn.executemany("INSERT INTO meta VALUES (?, ?)", meta.items())
        conn.close()
        tmp.replace(path)  # a crash while creating leaves no half-filled session behind
        return cls(path)

    def check_settings(self, labelers: Sequence[str] | None, labelers_per_prompt: int | None) -> None:
        """Refuse to resume with a roster or overlap other than the one the session was created with: it would
        move prompts between labelers mid-way."""
        roster = None if labelers is None else sorted({check_labeler_name(n) for n in labelers})
        if roster != self.roster or labelers_per_prompt != self.labelers_per_prompt:
            raise LabelingError(
                f"{self.path} was created with labelers={self.roster} and labelers_per_prompt="
                f"{self.labelers_per_prompt}; resuming with labelers={roster} and labelers_per_prompt="
                f"{labelers_per_prompt} would reassign prompts. Use the same settings, or start a new session file."
            )

    # ------------------------------------------------------------------ connections

    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=10.0)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")  # fsync the WAL at every commit
            conn.execute("PRAGMA foreign_keys=ON")
            self._local.conn = conn
        return conn

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    # ------------------------------------------------------------------ reading

    @property
    def max_completions(self) -> int:
        row = self._conn().execute("SELECT MAX(json_array_length(completions)) FROM items").fetchone()
        return int(row[0])

    def item(self, item_id: int) -> tuple[Any, list]:
        if item_id not in self._items:
            row = (
                self._conn().execute("SELECT prompt, completions FROM items WHERE item_id = ?", (item_id,)).fetchone()
            )
            if row is None:
                raise LabelingError(f"no prompt with id {item_id}")
            self._items[item_id] = (json.loads(row[0]), json.loads(row[1]))
        return self._items[item_id]

    def check_labeler(self, labeler: str) -> str:
        labeler = check_labeler_name(labeler)
        if self.roster is not None and labeler not in self.roster:
            raise LabelingError(f"'{labeler}' is not one of this session's labelers")
        return labeler

    def queue(self, labeler: str) -> list[int]:
        """The prompts of ``labeler``, in that labeler's order."""
        labeler = self.check_labeler(labeler)
        items = list(range(self.num_items)) if self._assignment is None else list(self._assignment[labeler])
        random.Random(f"{self.seed}-order-{labeler}").shuffle(items)
        return items

    def shown_order(self, labeler: str, item_id: int) -> list[int]:
        order = list(range(len(self.item(item_id)[1])))
        random.Random(f"{self.seed}-completions-{labeler}-{item_id}").shuffle(order)
        return order

    def _live_items(self, labeler: str) -> set[int]:
        rows = (
            self._conn()
            .execute("SELECT item_id FROM judgements WHERE labeler = ? AND undone_at IS NULL", (labeler,))
            .fetchall()
        )
        return {r[0] for r in rows}

    def progress(self, labeler: str) -> tuple[int, int]:
        queue = self.queue(labeler)
        return len(self._live_items(labeler) & set(queue)), len(queue)

    def next_task(self, labeler: str) -> Task | None:
        """The first prompt in ``labeler``'s order they have not judged, or None when they are done."""
        labeler = self.check_labeler(labeler)
        queue = self.queue(labeler)
        judged = self._live_items(labeler)
        pending = [i for i in queue if i not in judged]
        if not pending:
            return None
        item_id = pending[0]
        prompt, completions = self.item(item_id)
        order = self.shown_order(labeler, item_id)
        previous = (
            self._conn()
            .execute(
                "SELECT status, ranks, flags, note FROM judgements WHERE labeler = ? AND item_id = ? "
                "AND undone_at IS NOT NULL ORDER BY id DESC LIMIT 1",
                (labeler, item_id),
            )
            .fetchone()
        )
        if previous is not None:
            ranks = json.loads(previous[1]) if previous[1] else None
            previous = {
                "status": previous[0],
                "shown_ranks": [ranks[i] for i in order] if ranks else None,
                "flags": json.loads(previous[2]),
                "note": previous[3],
            }
        return Task(
            item_id=item_id,
            prompt=prompt,
            completions=[completions[i] for i in order],
            shown_order=order,
            done=len(queue) - len(pending),
            total=len(queue),
            previous=previous,
            labeler=labeler,
        )

    def judgements(self, labeler: str | None = None, include_undone: bool = False) -> list[Judgement]:
        """Judgements in the order they were made (all labelers, or one)."""
        sql = "SELECT * FROM judgements"
        where, args = [], []
        if not include_undone:
            where.append("undone_at IS NULL")
        if labeler is not None:
            where.append("labeler = ?")
            args.append(labeler)
        if where:
            sql += " WHERE " + " AND ".join(where)
        out = []
        for row in self._conn().execute(sql + " ORDER BY id", args).fetchall():
            prompt, completions = self.item(row[2])
            out.append(
                Judgement(
                    id=row[0],
                    labeler=row[1],
                    item_id=row[2],
                    status=row[3],
                    ranks=json.loads(row[4]) if row[4] else None,
                    shown_order=json.loads(row[5]),
                    flags=json.loads(row[6]),
                    note=row[7],
                    created_at=row[8],
                    seconds=row[9],
                    prompt=prompt,
                    completions=completions,
                )
            )
        return out

    # ------------------------------------------------------------------ writing

    def submit(
        self,
        labeler: str,
        item_id: int,
        shown_ranks: Sequence[int] | None,
        *,
        flags: Sequence[str] = (),
        note: str = "",
        seconds: float | None = None,
    ) -> int:
        """Record ``labeler``'s judgement of ``item_id`` and return its id once it is on disk.

        ``shown_ranks``: one rank per completion *as shown on the page* (any integers, lower is better, equal ones
        tie), or None for a skip. Stored in the source's completion order as dense ranks (0 = best).
        """
        labeler = self.check_labeler(labeler)
        if item_id not in set(self.queue(labeler)):
            raise LabelingError(f"prompt {item_id} is not assigned to {labeler}")
        order = self.shown_order(labeler, item_id)
        bad = [f for f in flags if f not in FLAGS]
        if bad:
            raise LabelingError(f"unknown flag(s) {bad}; flags are {list(FLAGS)}")
        if not isinstance(note, str) or len(note) > MAX_NOTE_CHARS:
            raise LabelingError(f"a note is a text of at most {MAX_NOTE_CHARS} characters")
        ranks_json = None
        if shown_ranks is not None:
            shown_ranks = list(shown_ranks)
            if len(shown_ranks) != len(order) or any(
                r is None or isinstance(r, bool) or not isinstance(r, int) for r in shown_ranks
            ):
                missing = sum(r is None for r in shown_ranks)
                raise LabelingError(
                    f"rank every completion before submitting ({missing or 'some'} of {len(order)} have no rank)"
                )
            ranks = [0] * len(order)
            for position, rank in enumerate(shown_ranks):
                ranks[order[position]] = rank
            ranks_json = json.dumps(dense_ranks(ranks))
        conn = self._conn()
        try:
            with conn:  # commits (and, with synchronous=FULL, fsyncs) before returning
                cursor = conn.execute(
                    "INSERT INTO judgements (labeler, item_id, status, ranks, shown_order, flags, note, created_at, "
                    "seconds) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        labeler,
                        item_id,
                        "skipped" if shown_ranks is None else "ranked",
                        ranks_json,
                        json.dumps(order),
                        json.dumps(sorted(set(flags))),
                        note.strip(),
                        time.time(),
                        seconds,
                    ),
                )
        except sqlite3.IntegrityError as err:
            raise LabelingError(f"{labeler} has already judged prompt {item_id} (undo it to change it)") from err
        return cursor.lastrowid

    def undo(self, labeler: str) -> int | None:
        """Take back ``labeler``'s latest live judgement (only theirs); returns its prompt id, None if there is none."""
        labeler = self.check_labeler(labeler)
        conn = self._conn()
        with conn:
            row = conn.execute(
                "SELECT id, item_id FROM judgements WHERE labeler = ? AND undone_at IS NULL ORDER BY id DESC LIMIT 1",
                (labeler,),
            ).fetchone()
            if row is None:
                return None
            conn.execute("UPDATE judgements SET undone_at = ? WHERE id = ?", (time.time(), row[0]))
        return row[1]
