"""The local Hub stand-in works with the real clients: huggingface_hub, transformers, datasets and TRL."""

from __future__ import annotations

from pathlib import Path

import httpx2
import pytest
from huggingface_hub import HfApi, ModelCard, ModelCardData, hf_hub_download, snapshot_download
from huggingface_hub.errors import HfHubHTTPError, RemoteEntryNotFoundError


def test_patch_clients_is_undone_and_stop_closes_the_port(tmp_path):
    import datasets.config
    from huggingface_hub import constants, hf_api

    from rlhf_ext.testing.local_hub import LocalHub

    before = (constants.ENDPOINT, constants.HF_HUB_OFFLINE, hf_api.api.endpoint, datasets.config.HF_ENDPOINT)
    with LocalHub(tmp_path / "hub") as hub, pytest.MonkeyPatch.context() as mp:
        hub.patch_clients(mp, cache_dir=tmp_path / "cache")
        assert (constants.ENDPOINT, hf_api.api.endpoint, datasets.config.HF_ENDPOINT) == (hub.endpoint,) * 3
        assert HfApi().whoami()["name"] == "local-user"
        endpoint = hub.endpoint
    assert (constants.ENDPOINT, constants.HF_HUB_OFFLINE, hf_api.api.endpoint, datasets.config.HF_ENDPOINT) == before
    with pytest.raises(httpx2.ConnectError):
        httpx2.get(f"{endpoint}/api/whoami-v2")


def _folder(root: Path) -> dict[str, bytes]:
    files = {
        "README.md": b"# hello\n",
        "config.json": b'{"a": 1}',
        "nested/deeper/notes.txt": "unicode \u00e9\u00e8\n".encode(),
        "weights.bin": bytes(range(256)) * 40,  # NUL bytes: goes through the LFS upload path
    }
    for name, data in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)
    return files


def test_create_upload_folder_and_read_back(local_hub, tmp_path):
    api = HfApi()
    assert api.whoami()["name"] == "local-user"
    repo = api.create_repo("local-user/folder-roundtrip")
    assert repo.repo_id == "local-user/folder-roundtrip"
    assert api.create_repo("local-user/folder-roundtrip", exist_ok=True).repo_id == repo.repo_id
    with pytest.raises(HfHubHTTPError) as exc:
        api.create_repo("local-user/folder-roundtrip")
    assert exc.value.response.status_code == 409

    files = _folder(tmp_path / "src")
    commit = api.upload_folder(folder_path=tmp_path / "src", repo_id=repo.repo_id, commit_message="add files")
    assert commit.oid == api.repo_info(repo.repo_id).sha
    assert sorted(api.list_repo_files(repo.repo_id)) == sorted(files)
    assert any("/_lfs_upload/" in path for _, path, _ in local_hub.requests), "binary file should use LFS"
    lfs_entry = api.get_paths_info(repo.repo_id, ["weights.bin"])[0]
    assert lfs_entry.lfs is not None and lfs_entry.lfs.size == len(files["weights.bin"])

    for name, data in files.items():
        assert Path(hf_hub_download(repo.repo_id, name)).read_bytes() == data
    snapshot = Path(snapshot_download(repo.repo_id))
    assert {name: (snapshot / name).read_bytes() for name in files} == files
    with pytest.raises(RemoteEntryNotFoundError):
        hf_hub_download(repo.repo_id, "missing.txt")

    # A second upload of identical files is a no-op; a changed file makes a new commit.
    api.upload_file(path_or_fileobj=b"changed", path_in_repo="config.json", repo_id=repo.repo_id)
    assert Path(hf_hub_download(repo.repo_id, "config.json")).read_bytes() == b"changed"
    assert api.repo_info(repo.repo_id).sha != commit.oid

    # Dataset repos live in their own namespace.
    api.create_repo("local-user/folder-roundtrip", repo_type="dataset")
    api.upload_file(path_or_fileobj=b"a,b\n1,2\n", path_in_repo="data.csv", repo_id=repo.repo_id, repo_type="dataset")
    assert api.list_repo_files(repo.repo_id, repo_type="dataset") == ["data.csv"]
    assert "data.csv" not in api.list_repo_files(repo.repo_id)


def test_model_card_push_and_load(local_hub):
    data = ModelCardData(license="apache-2.0", language="en", tags=["rlhf", "test"], base_model="tiny/llama")
    card = ModelCard.from_template(data, model_id="tiny-ppo", model_description="A card for the local hub test.")
    HfApi().create_repo("local-user/card-repo")  # like on the Hub, ModelCard.push_to_hub needs an existing repo
    card.push_to_hub("local-user/card-repo")
    loaded = ModelCard.load("local-user/card-repo")
    assert loaded.data.to_dict() == card.data.to_dict()
    assert loaded.text == card.text
    assert "A card for the local hub test." in loaded.text


def test_model_and_tokenizer_push_to_hub_reload(local_hub, tiny_models):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(tiny_models.causal_lm)
    tokenizer = AutoTokenizer.from_pretrained(tiny_models.tokenizer)
    model.push_to_hub("local-user/tiny-llama")
    tokenizer.push_to_hub("local-user/tiny-llama")

    files = HfApi().list_repo_files("local-user/tiny-llama")
    assert {"config.json", "model.safetensors", "tokenizer.json", "README.md"} <= set(files)
    reloaded = AutoModelForCausalLM.from_pretrained("local-user/tiny-llama")
    expected = model.state_dict()
    got = reloaded.state_dict()
    assert expected.keys() == got.keys()
    assert all(torch.equal(expected[k], got[k]) for k in expected)
    tok2 = AutoTokenizer.from_pretrained("local-user/tiny-llama")
    assert tok2("The movie was great").input_ids == tokenizer("The movie was great").input_ids


def test_trl_trainer_push_to_hub(local_hub, tiny_models, tmp_path):
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    args = SFTConfig(
        output_dir=str(tmp_path / "sft"),
        max_steps=1,
        per_device_train_batch_size=2,
        use_cpu=True,
        bf16=False,
        report_to="none",
        save_strategy="no",
        push_to_hub=True,
        hub_model_id="local-user/sft-tiny",
        hub_token=local_hub.token,
        max_length=32,
    )
    data = Dataset.from_dict({"text": ["The movie was wonderful.", "The plot was dull.", "A funny story."] * 2})
    trainer = SFTTrainer(model=str(tiny_models.causal_lm), args=args, train_dataset=data)
    trainer.train()
    trainer.push_to_hub(commit_message="end of training")

    files = HfApi().list_repo_files("local-user/sft-tiny")
    assert {"config.json", "model.safetensors", "README.md"} <= set(files)
    assert "trl" in ModelCard.load("local-user/sft-tiny").data.to_dict().get("tags", [])


def test_dataset_push_to_hub_and_load_dataset(local_hub, tmp_path):
    from datasets import Dataset, load_dataset

    data = Dataset.from_dict({"prompt": ["a", "b", "c"], "score": [0.5, -1.0, 2.0]})
    data.push_to_hub("local-user/prefs", split="train")
    files = HfApi().list_repo_files("local-user/prefs", repo_type="dataset")
    assert any(name.startswith("data/train-") and name.endswith(".parquet") for name in files)
    loaded = load_dataset("local-user/prefs", split="train", cache_dir=str(tmp_path / "ds-cache"))
    assert loaded.to_dict() == data.to_dict()


def test_bad_or_missing_token_is_401(local_hub):
    with pytest.raises(HfHubHTTPError) as exc:
        HfApi(token="hf_wrong").whoami()
    assert exc.value.response.status_code == 401
    with pytest.raises(HfHubHTTPError) as exc:
        HfApi(token="hf_wrong").create_repo("local-user/never")
    assert exc.value.response.status_code == 401
    assert "Invalid credentials" in str(exc.value)
    with pytest.raises(HfHubHTTPError) as exc:
        HfApi(token=False).create_repo("local-user/never")
    assert exc.value.response.status_code == 401
    assert not any("never" in path and status == 200 for _, path, status in local_hub.requests)
    assert local_hub.token not in repr(local_hub.requests)


def test_fail_next_returns_error_then_recovers(local_hub):
    api = HfApi()
    local_hub.fail_next("/api/whoami-v2", status=500)
    with pytest.raises(HfHubHTTPError) as exc:
        api.whoami(cache=False)
    assert exc.value.response.status_code == 500
    assert api.whoami(cache=False)["name"] == "local-user"

    local_hub.fail_next("/api/repos/create", status=401)
    with pytest.raises(HfHubHTTPError) as exc:
        api.create_repo("local-user/faulty")
    assert exc.value.response.status_code == 401
    api.create_repo("local-user/faulty")

    # preupload is retried by huggingface_hub (1 s back-off): one injected 500 is absorbed.
    local_hub.fail_next("/preupload/", status=500)
    api.upload_file(path_or_fileobj=b"ok", path_in_repo="a.txt", repo_id="local-user/faulty")
    statuses = [status for _, path, status in local_hub.requests if "/preupload/" in path]
    assert statuses == [500, 200]


def test_drop_next_closes_connection(local_hub):
    api = HfApi()
    api.create_repo("local-user/dropped")
    local_hub.drop_next("/commit/")
    with pytest.raises(httpx2.RemoteProtocolError):
        api.upload_file(path_or_fileobj=b"lost", path_in_repo="a.txt", repo_id="local-user/dropped")
    assert api.list_repo_files("local-user/dropped") == []
    api.upload_file(path_or_fileobj=b"kept", path_in_repo="a.txt", repo_id="local-user/dropped")
    assert Path(hf_hub_download("local-user/dropped", "a.txt")).read_bytes() == b"kept"
    assert ("POST", "/api/models/local-user/dropped/commit/main", 0) in local_hub.requests

    # Downloads are retried by huggingface_hub after a dropped connection; ranged reads get a 206.
    local_hub.drop_next("/resolve/", method="GET")
    path = hf_hub_download("local-user/dropped", "a.txt", force_download=True)
    assert Path(path).read_bytes() == b"kept"
    assert [s for m, p, s in local_hub.requests if m == "GET" and "/resolve/" in p][-2:] == [0, 200]
    url = f"{local_hub.endpoint}/local-user/dropped/resolve/main/a.txt"
    ranged = httpx2.get(url, headers={"Range": "bytes=2-"})
    assert (ranged.status_code, ranged.content, ranged.headers["content-range"]) == (206, b"pt", "bytes 2-3/4")
