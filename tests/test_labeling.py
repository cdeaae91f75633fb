"""rlhf_ext.labeling without a browser: the session file (durability settings, assignment, own-judgements-only,
concurrent writers, refusals), export per labeler and by consensus against hand computations, agreement statistics
against a hand computation, the dataset card and Hub push, and the command line's refusals."""

from __future__ import annotations

import json
import sqlite3
import threading
from pathlib import Path

import pytest

from rlhf_ext.labeling import LabelingError, LabelStore, agreement, export, export_rows, save_export
from rlhf_ext.labeling.cli import is_loopback, main, password_check, read_auth_file
from rlhf_ext.labeling.store import assign

ROWS = [
    {"prompt": "The movie was", "completions": [" great", " bad", " fine"]},
    {"prompt": "The team", "completions": [" won", " lost", " drew", " played"]},
    {"prompt": [{"role": "user", "content": "Hi"}], "completions": [[{"role": "assistant", "content": "Hello"}]] * 2},
]


def source_ranks(store, labeler, item_id, wanted):
    """The page's per-position ranks that give ``wanted`` (ranks in the source's order)."""
    return [wanted[i] for i in store.shown_order(labeler, item_id)]


@pytest.fixture
def store(tmp_path):
    return LabelStore.create(tmp_path / "s.sqlite", ROWS[:2])


def test_every_judgement_is_committed_with_wal_and_full_sync(store, tmp_path):
    conn = store._conn()
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL: fsync at every commit
    task = store.next_task("ann")
    store.submit("ann", task.item_id, source_ranks(store, "ann", task.item_id, [1, 3, 2, 4][: len(task.completions)]))
    # Another connection (another process would do the same) sees it at once: it is committed, not buffered.
    other = sqlite3.connect(tmp_path / "s.sqlite")
    assert other.execute("SELECT COUNT(*) FROM judgements").fetchone()[0] == 1


def test_ranks_are_stored_in_source_order_dense_and_exported(store):
    for item_id, wanted in ((0, [1, 3, 1]), (1, [2, 5, 5, 9])):
        store.submit("ann", item_id, source_ranks(store, "ann", item_id, wanted), flags=["unsafe"], note=" hm ")
    rows = export(store).to_list()
    assert [r["ranks"] for r in rows] == [[0, 1, 0], [0, 1, 1, 2]]
    assert rows[0]["completions"] == ROWS[0]["completions"] and rows[0]["labeler"] == "ann"
    assert rows[0]["flags"] == ["unsafe"] and rows[0]["note"] == "hm" and rows[0]["time"].endswith("+00:00")
    assert export_rows(store, exclude_flags=["unsafe"])[0] == []


def test_skips_and_all_tied_rankings_are_not_training_rows(store):
    store.submit("ann", 0, None, flags=["broken"])
    store.submit("ann", 1, [1, 1, 1, 1])
    rows, left_out = export_rows(store)
    assert rows == [] and left_out == {"all_tied_left_out": 1}
    with pytest.raises(LabelingError, match="no ranked judgement to export"):
        export(store)


def test_submit_refuses_incomplete_rankings_unknown_flags_and_repeats(store):
    with pytest.raises(LabelingError, match="rank every completion before submitting \\(1 of 3"):
        store.submit("ann", 0, [1, None, 2])
    with pytest.raises(LabelingError, match="unknown flag"):
        store.submit("ann", 0, [1, 2, 3], flags=["spam"])
    store.submit("ann", 0, [1, 2, 3])
    with pytest.raises(LabelingError, match="already judged prompt 0"):
        store.submit("ann", 0, [3, 2, 1])
    assert len(store.judgements()) == 1


def test_undo_takes_back_only_the_labelers_own_latest_and_prefills_it(store):
    for name in ("ann", "bob"):
        task = store.next_task(name)
        store.submit(name, task.item_id, [1] + [2] * (len(task.completions) - 1), note=f"{name} note")
    bob_before = store.judgements("bob")
    undone = store.undo("ann")
    assert store.judgements("bob") == bob_before and store.judgements("ann") == []
    task = store.next_task("ann")
    assert task.item_id == undone and task.done == 0
    assert task.previous["shown_ranks"] == [0] + [1] * (len(task.completions) - 1)
    assert task.previous["note"] == "ann note"
    assert store.undo("ann") is None
    assert len(store.judgements(include_undone=True)) == 2  # kept in the file, out of every export


def test_each_labeler_has_an_order_of_their_own_that_survives_reopening(tmp_path):
    rows = [{"prompt": f"p{i}", "completions": [f"a{i}", f"b{i}", f"c{i}", f"d{i}"]} for i in range(12)]
    store = LabelStore.create(tmp_path / "s.sqlite", rows)
    orders = {name: store.queue(name) for name in ("ann", "bob", "cat")}
    assert all(sorted(o) == list(range(12)) for o in orders.values())
    assert len({tuple(o) for o in orders.values()}) == 3
    shown = {name: store.shown_order(name, 0) for name in ("ann", "bob", "cat")}
    assert len({tuple(o) for o in shown.values()}) > 1
    again = LabelStore(tmp_path / "s.sqlite")
    assert {name: again.queue(name) for name in orders} == orders
    assert {name: again.shown_order(name, 0) for name in shown} == shown


def test_labelers_per_prompt_gives_balanced_mixed_overlap(tmp_path):
    roster = ["ann", "bob", "cat", "dan"]
    plan = assign(30, roster, 2, seed=0)
    per_item = [sorted(n for n in roster if i in plan[n]) for i in range(30)]
    assert all(len(names) == 2 for names in per_item)
    assert sorted(len(items) for items in plan.values()) == [15, 15, 15, 15]
    assert len({tuple(names) for names in per_item}) == 6  # every pair of labelers shares prompts
    store = LabelStore.create(tmp_path / "s.sqlite", ROWS[:2] * 15, labelers=roster, labelers_per_prompt=2)
    assert store.progress("ann") == (0, 15)
    not_mine = next(i for i in range(30) if i not in plan["ann"])
    with pytest.raises(LabelingError, match=f"prompt {not_mine} is not assigned to ann"):
        store.submit("ann", not_mine, [1, 2, 3])
    with pytest.raises(LabelingError, match="'eve' is not one of this session's labelers"):
        store.next_task("eve")
    with pytest.raises(LabelingError, match="would reassign prompts"):
        store.check_settings(roster, 3)


def test_bad_sessions_are_refused_naming_the_row(tmp_path):
    with pytest.raises(LabelingError, match="row 1: missing column 'completions'"):
        LabelStore.create(tmp_path / "a.sqlite", [ROWS[0], {"prompt": "x"}])
    with pytest.raises(LabelingError, match="row 0: 'completions' has 1 entries"):
        LabelStore.create(tmp_path / "b.sqlite", [{"prompt": "x", "completions": ["a"]}])
    with pytest.raises(LabelingError, match="row 0: completion 1 is empty"):
        LabelStore.create(tmp_path / "c.sqlite", [{"prompt": "x", "completions": ["a", "  "]}])
    with pytest.raises(LabelingError, match="row 0: 'prompt' is empty"):
        LabelStore.create(tmp_path / "d.sqlite", [{"prompt": " ", "completions": ["a", "b"]}])
    with pytest.raises(LabelingError, match="labelers_per_prompt needs a roster"):
        LabelStore.create(tmp_path / "e.sqlite", ROWS, labelers_per_prompt=2)
    assert not list(tmp_path.iterdir())  # nothing half-made is left behind


def test_concurrent_labelers_in_separate_connections_lose_nothing(tmp_path):
    rows = [{"prompt": f"p{i}", "completions": [f"a{i}", f"b{i}", f"c{i}"]} for i in range(20)]
    LabelStore.create(tmp_path / "s.sqlite", rows)
    errors = []

    def label(name):
        try:
            store = LabelStore(tmp_path / "s.sqlite")  # its own connections, as a second server process would have
            while (task := store.next_task(name)) is not None:
                store.submit(name, task.item_id, source_ranks(store, name, task.item_id, [0, 1, 2]))
        except Exception as err:  # noqa: BLE001 - reported below
            errors.append(err)

    threads = [threading.Thread(target=label, args=(name,)) for name in ("ann", "bob", "cat", "dan")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    rows_out = export(tmp_path / "s.sqlite").to_list()
    assert len(rows_out) == 80 and all(r["ranks"] == [0, 1, 2] for r in rows_out)


def test_agreement_against_a_hand_computation():
    stats = agreement(
        [
            ("p1", "A", [0, 1, 2]),
            ("p1", "B", [0, 2, 1]),  # agrees on (0,1), (0,2); not on (1,2): 2/3
            ("p2", "A", [0, 0, 1]),
            ("p2", "B", [0, 0, 1]),  # ties agree with ties: 3/3
            ("p3", "A", [1, 0]),
            ("p3", "C", [1, 0]),  # 1/1
            ("p4", "B", [0, 1]),  # ranked by one labeler only: not shared
        ]
    )
    assert stats["overall"]["agreement"] == pytest.approx(8 / 9)
    assert stats["overall"]["stderr"] == pytest.approx(1 / 9)  # sd of (2/3, 1, 1) / sqrt(3)
    assert stats["per_labeler"]["A"]["agreement"] == pytest.approx(8 / 9)
    assert stats["per_labeler"]["B"]["agreement"] == pytest.approx(5 / 6)
    assert stats["per_labeler"]["C"] == {"agreement": 1.0, "stderr": None, "units": 1}
    assert stats["per_pair"]["A & B"]["units"] == 2 and stats["shared_prompts"] == 3 and stats["comparisons"] == 7


def test_consensus_averages_place_ranks(store):
    store.submit("ann", 0, source_ranks(store, "ann", 0, [0, 1, 2]))
    store.submit("bob", 0, source_ranks(store, "bob", 0, [0, 2, 1]))  # mean places (0, 1.5, 1.5): a tie
    store.submit("ann", 1, source_ranks(store, "ann", 1, [0, 0, 1, 2]))  # places (0.5, 0.5, 2, 3)
    store.submit("bob", 1, source_ranks(store, "bob", 1, [0, 1, 2, 3]))  # mean (0.25, 0.75, 2, 3)
    rows = export(store, mode="consensus").to_list()
    assert [r["ranks"] for r in rows] == [[0, 1, 1], [0, 1, 2, 3]]
    assert rows[0]["labeler"] == "ann,bob"
    assert export_rows(store, mode="consensus", min_labelers=3)[0] == []


def test_save_export_writes_card_with_agreement_and_pushes(local_hub, tmp_path, capsys):
    from datasets import load_from_disk
    from huggingface_hub import DatasetCard, HfApi

    store = LabelStore.create(tmp_path / "s.sqlite", ROWS[:2])
    for name, wanted in (("ann", [0, 1, 2, 3]), ("bob", [0, 2, 1, 3])):
        for item_id in (0, 1):
            k = len(ROWS[item_id]["completions"])
            store.submit(name, item_id, source_ranks(store, name, item_id, wanted[:k]), seconds=4.0)
    out = tmp_path / "export"
    result = save_export(store, out, push_to_hub=True, hub_dataset_id="local-user/human-labels", token=local_hub.token)
    printed = capsys.readouterr().out
    # (0,1,2) vs (0,2,1): 2/3; (0,1,2,3) vs (0,2,1,3): 5/6 -> mean 3/4
    assert "Pairwise agreement between labelers on shared prompts: **75.0 +- 8.3%" in printed
    assert result["agreement"]["overall"]["agreement"] == pytest.approx(0.75)
    saved = load_from_disk(str(out))
    assert len(saved["train"]) == len(saved["test"]) == 2  # one prompt held out, with both labelers' rows
    assert not set(saved["train"]["item_id"]) & set(saved["test"]["item_id"])
    card = (out / "README.md").read_text()
    assert "## Agreement between labelers" in card and "| ann | 75.0 +- 8.3%" in card and "72.6 +- 1.5%" in card
    assert json.loads((out / "stats.json").read_text())["stats"]["median_seconds_per_judgement"] == 4.0
    hub_card = DatasetCard.load("local-user/human-labels", repo_type="dataset", token=local_hub.token)
    assert "## Agreement between labelers" in hub_card.text
    api = HfApi(token=local_hub.token)
    files = api.list_repo_files("local-user/human-labels", repo_type="dataset")
    assert "data/train.parquet" in files
    for name in ("README.md",):
        text = open(api.hf_hub_download("local-user/human-labels", name, repo_type="dataset")).read()
        assert local_hub.token not in text


def test_auth_file_and_password_check(tmp_path):
    auth = tmp_path / "users.txt"
    auth.write_text("# labelers\nann:pw one\n\nbob:s3cret:with:colons\n")
    users = read_auth_file(auth)
    assert users == {"ann": "pw one", "bob": "s3cret:with:colons"}
    check = password_check(users)
    assert check("ann", "pw one") and not check("ann", "pw") and not check("eve", "pw one") and not check("ann", "")
    auth.write_text("ann:pw\nbroken line\n")
    with pytest.raises(LabelingError, match="users.txt line 2: expected 'name:password'"):
        read_auth_file(auth)


@pytest.mark.parametrize(
    "name,local", [("127.0.0.1", True), ("localhost", True), ("::1", True), ("0.0.0.0", False), ("192.0.2.10", False)]
)
def test_loopback_addresses(name, local):
    assert is_loopback(name) is local


def test_serve_refuses_a_public_address_without_login_before_anything_else(tmp_path, capsys):
    data = tmp_path / "data.jsonl"
    data.write_text("\n".join(json.dumps(r) for r in ROWS))
    session = tmp_path / "s.sqlite"
    code = main(["serve", "--data", str(data), "--session", str(session), "--server_name", "0.0.0.0"])
    assert code == 2
    assert "refusing to serve the labeling page on '0.0.0.0' without a login" in capsys.readouterr().err
    assert not session.exists()


def test_command_line_entry_points(capsys):
    from rlhf_ext.cli import main as rlhf_ext_main

    assert rlhf_ext_main([]) == 2 and "label" in capsys.readouterr().err
    assert rlhf_ext_main(["label"]) == 2 and "rlhf-ext label {serve,export}" in capsys.readouterr().err


def test_serve_creates_a_session_from_a_saved_dataset_and_resumes_it(tmp_path):
    from datasets import Dataset, DatasetDict

    from rlhf_ext.labeling.cli import ServeConfig, open_session

    folder = tmp_path / "samples"
    DatasetDict({"train": Dataset.from_list(ROWS[:2]), "test": Dataset.from_list(ROWS[:1])}).save_to_disk(folder)
    cfg = ServeConfig(session=str(tmp_path / "s.sqlite"), data=str(folder))
    store = open_session(cfg, None)
    assert store.num_items == 3 and store.item(2)[1] == ROWS[0]["completions"]
    store.submit("ann", 0, [1, 2, 3])
    cfg.data = None  # a restart needs only the session file
    assert len(open_session(cfg, None).judgements()) == 1
    with pytest.raises(LabelingError, match="would reassign prompts"):
        open_session(ServeConfig(session=cfg.session, labelers="ann,bob"), None)


def test_serve_samples_from_a_policy(tiny_models, tmp_path):
    from rlhf_ext.labeling.cli import ServeConfig, open_session

    cfg = ServeConfig(
        session=str(tmp_path / "s.sqlite"),
        model_name_or_path=str(tiny_models.causal_lm),
        num_prompts=4,
        k=3,
        max_new_tokens=6,
    )
    store = open_session(cfg, None)
    assert 1 <= store.num_items <= 4 and store.source == str(tiny_models.causal_lm)
    prompt, completions = store.item(0)
    assert isinstance(prompt, str) and 2 <= len(completions) <= 3 and all(c.strip() for c in completions)


def test_sample_and_label_without_a_labeler_feeds_the_page(tiny_models, tmp_path, monkeypatch, capsys):
    from rlhf_ext.labeling.cli import ServeConfig, open_session

    monkeypatch.syspath_prepend(str(Path(__file__).parents[1] / "recipes"))
    import sample_and_label

    cfg = sample_and_label.SampleAndLabelConfig(
        model_name_or_path=str(tiny_models.causal_lm),
        task="none",
        num_prompts=4,
        k=3,
        max_new_tokens=6,
        output_dir=str(tmp_path / "samples"),
    )
    data, _ = sample_and_label.main(cfg)
    assert data.column_names == ["prompt", "completions"] and len(data) == 4
    assert "rlhf-ext label serve --data" in capsys.readouterr().out
    data = data.to_list()
    data[0]["completions"] = ["", *data[0]["completions"][1:]]  # a sample that stopped at once
    data[1]["completions"] = ["", " ", "x"]
    (tmp_path / "edited.jsonl").write_text("\n".join(json.dumps(r) for r in data))
    store = open_session(ServeConfig(session=str(tmp_path / "s.sqlite"), data=str(tmp_path / "edited.jsonl")), None)
    assert "left out 3 empty completion(s), and 1 prompt(s) left with fewer than 2" in capsys.readouterr().err
    assert store.num_items == 3 and store.item(0)[1] == data[0]["completions"][1:]
