"""Pushing rlhf_ext outputs to the Hugging Face Hub with errors a user can act on.

Every push here uploads a folder that already exists on disk and never modifies it, so a failed push
(no token, a rejected token, an unreachable Hub, a server error) leaves the local outputs intact; the
error says so and names the folder. Tokens are never put in messages, logs or cards.
"""

from __future__ import annotations

import copyreg
import logging
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

logger = logging.getLogger(__name__)
T = TypeVar("T")


class HubPushError(RuntimeError):
    """A push to the Hub failed; the local outputs it names are intact."""


def _reduce_without_tokens(args):
    state = {k: (None if k.endswith("_token") else v) for k, v in vars(args).items()}
    return copyreg.__newobj__, (type(args),), state


def keep_tokens_out_of_pickles(args_type: type) -> None:
    """Make every pickle of ``args_type`` instances (a ``TrainingArguments`` class) hold ``None`` for its ``*_token``
    fields, from now on in this process.

    The Trainer writes ``torch.save(self.args)`` as ``training_args.bin`` into every checkpoint and output folder and
    uploads it with ``push_to_hub``: a ``hub_token`` passed in the config would sit there in plain text, on disk and
    on the Hub. The pickle stays loadable without rlhf_ext (a plain ``__newobj__`` reduction); the object in memory
    keeps its token, so pushes still authenticate.
    """
    copyreg.pickle(args_type, _reduce_without_tokens)


def _reason(err: Exception) -> str:
    from huggingface_hub.errors import HfHubHTTPError, LocalTokenNotFoundError, OfflineModeIsEnabled

    if isinstance(err, OfflineModeIsEnabled):
        return "offline mode is on (HF_HUB_OFFLINE=1): unset it to push"
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


def _retryable(err: Exception) -> bool:
    """Server errors and dropped connections are worth another try; auth and request errors are not."""
    from huggingface_hub.errors import HfHubHTTPError, LocalTokenNotFoundError, OfflineModeIsEnabled

    if isinstance(err, (LocalTokenNotFoundError, OfflineModeIsEnabled)):
        return False
    if isinstance(err, HfHubHTTPError):
        return err.response is not None and err.response.status_code >= 500
    name = type(err).__name__
    return any(s in name for s in ("Connect", "Timeout", "RemoteProtocol", "ReadError")) or isinstance(
        err, (ConnectionError, TimeoutError)
    )


def retry_push(
    push: Callable[[], T],
    *,
    folder: str | Path,
    repo_id: str,
    repo_type: str = "model",
    attempts: int = 3,
    backoff_seconds: float = 1.0,
) -> T:
    """Run ``push()`` (an upload of ``folder`` to ``repo_id``), retrying server errors and dropped connections.

    Only idempotent pushes belong here: uploading the same files again is safe, since a Hub commit either lands whole
    or not at all and re-sending identical files changes nothing. A 5xx answer or a dropped connection is retried up to
    ``attempts`` times in all, with a growing pause; other failures (no token, 401/403, a bad repo id, offline mode)
    are not. Every failure becomes :class:`HubPushError`, naming the folder (intact) and the cause, never the token.
    """
    if attempts < 1:
        raise ValueError(f"attempts must be >= 1, got {attempts}")
    for attempt in range(1, attempts + 1):
        try:
            return push()
        except Exception as err:  # noqa: BLE001 - every failure becomes one actionable error
            if attempt < attempts and _retryable(err):
                logger.warning("push to %s failed (%s); retry %d of %d", repo_id, _reason(err), attempt, attempts - 1)
                time.sleep(backoff_seconds * attempt)
                continue
            tries = f" after {attempt} attempts" if attempt > 1 else ""
            raise HubPushError(
                f"pushing {folder} to the Hub {repo_type} repo '{repo_id}' failed{tries}: {_reason(err)}. "
                f"The local files in {folder} are intact; rerun the push once this is fixed."
            ) from err
    raise AssertionError("unreachable")  # the loop returns or raises


def push_folder(
    folder: str | Path,
    repo_id: str,
    *,
    repo_type: str = "model",
    token: str | None = None,
    commit_message: str = "Upload with rlhf_ext",
    private: bool | None = None,
    attempts: int = 3,
    backoff_seconds: float = 1.0,
    endpoint: str | None = None,
) -> str:
    """Create ``repo_id`` if needed and upload ``folder`` into it; returns the commit URL.

    Retried as :func:`retry_push` says (5xx and dropped connections; not 401/403). Raises :class:`HubPushError` naming
    the folder (intact) and the cause.
    """
    from huggingface_hub import HfApi

    folder = Path(folder)
    if not folder.is_dir():
        raise HubPushError(f"cannot push {folder}: it is not a folder")
    api = HfApi(token=token, endpoint=endpoint)

    def push():
        api.create_repo(repo_id, repo_type=repo_type, exist_ok=True, private=private)
        return api.upload_folder(
            folder_path=str(folder), repo_id=repo_id, repo_type=repo_type, commit_message=commit_message
        )

    info = retry_push(
        push, folder=folder, repo_id=repo_id, repo_type=repo_type, attempts=attempts, backoff_seconds=backoff_seconds
    )
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
    summary: str | None = None,
    sections: dict[str, str] | None = None,
) -> str:
    """Push a ranked preference ``DatasetDict`` as parquet files with its card (template ``rlhf_ext/templates/dataset.md``)."""
    from .cards import render_dataset_card

    with tempfile.TemporaryDirectory(prefix="rlhf_ext-dataset-") as tmp:
        root = Path(tmp)
        for split, ds in data.items():
            (root / "data").mkdir(exist_ok=True)
            ds.to_parquet(str(root / "data" / f"{split}.parquet"))
        card = render_dataset_card(
            repo_id,
            summary=summary
            or (
                "Ranked preference data in the format of InstructGPT's reward-model training: K sampled "
                "completions per prompt, ranked by a labeler."
            ),
            source_model=source_model,
            labeler=labeler,
            dataset_is_standin=dataset_is_standin,
            stats=stats,
            has_scores="scores" in next(iter(data.values())).column_names,
            sections=sections,
        )
        card.save(os.path.join(tmp, "README.md"))
        return push_folder(root, repo_id, repo_type="dataset", token=token, commit_message="Upload ranked dataset")
