"""Pushes to the Hub (the local test server): files and cards arrive, failures leave local files intact."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def ranked_data():
    from datasets import Dataset, DatasetDict

    rows = [
        {
            "prompt": "The film",
            "completions": [" is great", " is bad", " exists"],
            "ranks": [0, 2, 1],
            "scores": [0.6, -0.5, 0.0],
        },
        {"prompt": "A story", "completions": [" of joy", " of pain"], "ranks": [0, 1], "scores": [0.4, -0.4]},
    ]
    return DatasetDict({"train": Dataset.from_list(rows), "test": Dataset.from_list(rows[:1])})


def test_ranked_dataset_push_and_read_back(local_hub, ranked_data):
    from datasets import load_dataset
    from huggingface_hub import DatasetCard, HfApi

    from rlhf_ext.hub import push_ranked_dataset

    repo = "local-user/ranked-sentiment"
    push_ranked_dataset(
        ranked_data, repo, stats={"prompts": 2}, source_model="SmolLM2-135M-Instruct", token=local_hub.token
    )
    files = set(HfApi(token=local_hub.token).list_repo_files(repo, repo_type="dataset"))
    assert {"README.md", "data/train.parquet", "data/test.parquet"} <= files
    card = DatasetCard.load(repo, repo_type="dataset", token=local_hub.token)
    assert "offline-stand-in" in card.data.tags and "| prompts | 2 |" in card.text
    back = load_dataset(repo, token=local_hub.token)
    assert back["train"]["ranks"] == [[0, 2, 1], [0, 1]]


def test_push_with_a_bad_token_names_the_cause_and_keeps_files(local_hub, tmp_path):
    from rlhf_ext.hub import HubPushError, push_folder

    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    secret = "hf_this_is_not_the_right_token"
    with pytest.raises(HubPushError, match="rejected the token") as err:
        push_folder(folder, "local-user/m", token=secret)
    assert secret not in str(err.value)
    assert "intact" in str(err.value) and (folder / "config.json").read_text() == "{}"


def test_server_errors_and_dropped_connections_are_retried(local_hub, tmp_path):
    from huggingface_hub import hf_hub_download

    from rlhf_ext.hub import push_folder

    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "weights.txt").write_text("w")
    local_hub.fail_next("/commit/", status=500, times=1)
    local_hub.drop_next("/commit/", times=1)
    push_folder(folder, "local-user/m2", token=local_hub.token, backoff_seconds=0.01)
    path = hf_hub_download("local-user/m2", "weights.txt", token=local_hub.token)
    assert open(path).read() == "w"


def test_persistent_server_error_is_reported_after_retries(local_hub, tmp_path):
    from rlhf_ext.hub import HubPushError, push_folder

    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "weights.txt").write_text("w")
    local_hub.fail_next("/commit/", status=500, times=10)
    with pytest.raises(HubPushError, match="after 3 attempts: the Hub answered HTTP 500"):
        push_folder(folder, "local-user/m3", token=local_hub.token, backoff_seconds=0.01)
    assert (folder / "weights.txt").read_text() == "w"


def test_offline_mode_is_named_and_not_retried(tmp_path):
    from rlhf_ext.hub import HubPushError, push_folder

    with pytest.raises(HubPushError, match=r"failed: offline mode is on \(HF_HUB_OFFLINE=1\)"):
        push_folder(tmp_path, "someone/x", token="hf_dummy", endpoint="http://127.0.0.1:9")


def test_unreachable_hub_is_a_clear_error(tmp_path, monkeypatch):
    import socket

    import huggingface_hub.constants

    from rlhf_ext.hub import HubPushError, push_folder

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)

    with socket.socket() as s:  # a loopback port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    folder = tmp_path / "out"
    folder.mkdir()
    with pytest.raises(HubPushError, match="after 3 attempts: the Hub could not be reached"):
        push_folder(folder, "someone/x", token="hf_dummy", endpoint=f"http://127.0.0.1:{port}", backoff_seconds=0.01)


def test_model_card_push_reads_back(local_hub, tmp_path):
    from huggingface_hub import HfApi, ModelCard

    from rlhf_ext.cards import CardInfo, render_model_card

    card = render_model_card(
        CardInfo(kind="policy", eval_results=[{"metric": "win rate", "value": 0.75, "dataset": "d"}]), model_name="p"
    )
    HfApi(token=local_hub.token).create_repo("local-user/p")
    card.push_to_hub("local-user/p", token=local_hub.token)
    back = ModelCard.load("local-user/p", token=local_hub.token)
    assert back.data.eval_results[0].metric_value == 0.75


def test_trainer_push_retries_and_never_writes_the_token(
    local_hub, tiny_models, tiny_tokenizer, tmp_path, caplog, capfd
):
    """trainer.push_to_hub: a dropped connection and a 500 are retried; a persistent 500 is one clear error; the token
    (passed as hub_token, so the Trainer pickles its args into training_args.bin) is in no file, log line or output."""
    import hashlib
    import logging

    from datasets import Dataset
    from huggingface_hub import HfApi, hf_hub_download

    from rlhf_ext import RankedRewardConfig, RankedRewardTrainer
    from rlhf_ext.hub import HubPushError

    caplog.set_level(logging.DEBUG)
    token = local_hub.token
    out = tmp_path / "rm"
    args = RankedRewardConfig(
        output_dir=str(out),
        max_steps=2,
        per_device_train_batch_size=2,
        use_cpu=True,
        bf16=False,
        report_to="none",
        save_strategy="steps",
        save_steps=1,
        push_to_hub=True,
        hub_strategy="end",
        hub_model_id="local-user/rm-faults",
        hub_token=token,
        disable_tqdm=True,
    )
    rows = [{"prompt": "The movie", "completions": [" was great", " was bad", " was fine"], "ranks": [0, 2, 1]}] * 4
    trainer = RankedRewardTrainer(
        model=str(tiny_models.reward_model),
        args=args,
        train_dataset=Dataset.from_list(rows),
        processing_class=tiny_tokenizer,
    )
    trainer.train()

    local_hub.drop_next("/commit/", times=1)
    local_hub.fail_next("/commit/", status=500, times=1)
    trainer.push_to_hub(commit_message="end of training")
    assert "retry 1 of 2" in caplog.text and "retry 2 of 2" in caplog.text
    files = set(HfApi(token=token).list_repo_files("local-user/rm-faults"))
    assert {"model.safetensors", "README.md", "training_args.bin"} <= files
    pushed_args = hf_hub_download("local-user/rm-faults", "training_args.bin", token=token)

    weights = hashlib.sha256((out / "model.safetensors").read_bytes()).hexdigest()
    local_hub.fail_next("/commit/", status=500, times=10)
    (out / "eval_notes.txt").write_text("a new file, so that the push has something to commit")
    with pytest.raises(HubPushError, match="after 3 attempts: the Hub answered HTTP 500") as err:
        trainer.push_to_hub(commit_message="again")
    assert f"The local files in {out} are intact" in str(err.value)
    assert hashlib.sha256((out / "model.safetensors").read_bytes()).hexdigest() == weights
    assert (out / "checkpoint-1").is_dir() and (out / "checkpoint-2").is_dir()
    assert (out / "eval_notes.txt").read_text().startswith("a new file")

    secret = token.encode()
    written = [p for p in out.rglob("*") if p.is_file()] + [Path(pushed_args)]
    assert any(p.name == "training_args.bin" for p in written)
    assert [p for p in written if secret in p.read_bytes()] == []
    captured = capfd.readouterr()
    assert token not in caplog.text and token not in captured.out and token not in captured.err
    assert token not in str(err.value)
    assert trainer.args.hub_token == token  # only pickles drop it: the live trainer can still push
