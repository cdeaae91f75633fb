"""Shared fixtures, built once per test session: tiny random models and the local Hub server."""

from __future__ import annotations

import os

import pytest

# Never reach the real Hub from tests, and keep torch from oversubscribing the 2 CPU cores.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("WANDB_DISABLED", "true")


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory):
    """Paths of a tiny Llama causal LM, a tiny Llama scalar reward model and their shared tokenizer."""
    from rlhf_ext.testing.tiny_models import build_tiny_models

    return build_tiny_models(tmp_path_factory.mktemp("tiny-models"))


@pytest.fixture(scope="session")
def tiny_tokenizer(tiny_models):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_models.tokenizer)


@pytest.fixture
def tok(tiny_models):
    """A fresh tokenizer of the tiny models for each test (trainers may change its padding side)."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_models.tokenizer)


@pytest.fixture
def one_torch_thread():
    """Tiny models gain nothing from 2 threads, and 1 thread degrades far less when the 2 cores are shared."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture
def local_hub(tmp_path, monkeypatch):
    """A running LocalHub in a temp folder; huggingface_hub, transformers and datasets point at it.

    The HF_* environment variables and the clients' module constants are patched through monkeypatch
    (undone at teardown), so the rest of the suite stays offline. Uploads use the user ``local-user``.
    """
    from rlhf_ext.testing.local_hub import LocalHub

    hub = LocalHub(tmp_path / "hub-storage").start()
    hub.patch_clients(monkeypatch, cache_dir=tmp_path / "hf-cache")
    yield hub
    hub.stop()


@pytest.fixture(scope="session")
def toy_summarize_run(tmp_path_factory):
    """One toy pass of every summarization stage (``run_summarize.py --toy``), shared by the tests that read a finished
    run: ``(root, results, timings)``. Tests that add to it write only into folders of their own under ``root``."""
    from recipe_loader import load_recipe

    root = tmp_path_factory.mktemp("toy-summarize") / "tldr"
    results, timings = load_recipe("run_summarize").main(["--toy", "--output_dir", str(root)])
    return root, results, timings
