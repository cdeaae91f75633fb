"""Pushing rlhf_ext outputs to the Hugging Face Hub with errors a user can act on.

Every push here uploads a folder that already exists on disk and never modifies it, so a failed push
(no token, a rejected token, an unreachable Hub, a server error) leaves the local outputs intact; the
error says so and names the folder. Tokens are never put in messages, logs or cards.
"""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path

logger = logging.getLogger(__name__)


class HubPushError(RuntimeError):
    """A push to the Hub failed; the local outputs it names are intact."""


def _reason(err: Exception) -> str:
    from huggingface_hub.errors import HfHubHTTPError, LocalTokenNotFoundError

    if isinstance(err, LocalTokenNotFoundError):
        return "no Hugging Face token found: run `hf auth login` or set HF_TOKEN"
    if isinstance(err, HfHubHTTPError) and err.response is not None:
        status = err.response.status_code
        if status == 401:
            return "the Hub rejected the token (HTTP 401): check HF_TOKEN or run `hf auth login`"
        if status == 403:
            return "the token may not write to this repo (HTTP 403)"
        return f"the Hub answered HTTP {status}"
    name = type(err).__name__
    if "Connect" in name or "Timeout" in name or isinstance(err, (ConnectionError, TimeoutError, OSError)):
        return f"the Hub could not be reached ({name})"
    return f"{name}: {str(err).splitlines()[0] if str(err) else ''}"


def push_folder(
    folder: str | Path,
    repo_id: str,
    *,
    repo_type: str = "model",
    token: str | None = None,
    commit_message: str = "Upload with rlhf_ext",
    private: bool | None = None,
) -> str:
    """Create ``repo_id`` if needed and upload ``folder`` into it; returns the commit URL.

    Raises :class:`HubPushError` naming the folder (intact) and the cause.
    """
    from huggingface_hub import HfApi

    folder = Path(folder)
    if not folder.is_dir():
        raise HubPushError(f"cannot push {folder}: it is not a folder")
    api = HfApi(token=token)
    try:
        api.create_repo(repo_id, repo_type=repo_type, exist_ok=True, private=private)
        info = api.upload_folder(
            folder_path=str(folder), repo_id=repo_id, repo_type=repo_type, commit_message=commit_message
        )
    except Exception as err:  # noqa: BLE001 - every failure becomes one actionable error
        raise HubPushError(
            f"pushing {folder} to the Hub {repo_type} repo '{repo_id}' failed: {_reason(err)}. "
            f"The local files in {folder} are intact; rerun the push once this is fixed."
        ) from err
    logger.info("pushed %s to %s", folder, repo_id)
    return str(getattr(info, "commit_url", info))


def push_ranked_dataset(
    data,
    repo_id: str,
    *,
    stats: dict | None = None,
    source_model: str = "unknown",
    labeler: str = "a programmatic labeler",
    dataset_is_standin: bool = True,
    token: str | None = None,
) -> str:
    """Push a ranked preference ``DatasetDict`` as parquet files with its card (see ``model_cards/dataset.md``)."""
    from .cards import render_dataset_card

    with tempfile.TemporaryDirectory(prefix="rlhf_ext-dataset-") as tmp:
        root = Path(tmp)
        for split, ds in data.items():
            (root / "data").mkdir(exist_ok=True)
            ds.to_parquet(str(root / "data" / f"{split}.parquet"))
        card = render_dataset_card(
            repo_id,
            summary=(
                "Ranked preference data in the format of InstructGPT's reward-model training: K sampled "
                "completions per prompt, ranked by a labeler."
            ),
            source_model=source_model,
            labeler=labeler,
            dataset_is_standin=dataset_is_standin,
            stats=stats,
            has_scores="scores" in next(iter(data.values())).column_names,
        )
        card.save(os.path.join(tmp, "README.md"))
        return push_folder(root, repo_id, repo_type="dataset", token=token, commit_message="Upload ranked dataset")
