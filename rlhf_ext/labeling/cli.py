"""``rlhf-ext label serve|export`` (also ``python -m rlhf_ext.labeling serve|export``).

    rlhf-ext label serve --data outputs/sentiment/samples --session labels.sqlite
    rlhf-ext label serve --model_name_or_path offline --prompts offline --num_prompts 64 --k 4 --session labels.sqlite
    rlhf-ext label serve --data samples.jsonl --session labels.sqlite --auth_file labelers.txt \\
        --labelers_per_prompt 2 --server_name 0.0.0.0
    rlhf-ext label export --session labels.sqlite --output_dir outputs/human-labels [--mode consensus] \\
        [--push_to_hub --hub_dataset_id you/human-labels]

``serve`` creates the session file on its first run (from ``--data``, or by sampling ``--k`` completions per prompt
from ``--model_name_or_path``) and resumes it on later runs. It binds 127.0.0.1 unless told otherwise, and refuses
any other address unless labelers must log in (``--auth_file``, one ``name:password`` a line).
"""

from __future__ import annotations

import hmac
import ipaddress
import os
import socket
import stat
import sys
from dataclasses import dataclass, field
from pathlib import Path

from .store import LabelingError, LabelStore


@dataclass
class ServeConfig:
    session: str = field(
        default="labels.sqlite",
        metadata={"help": "The session file: created on the first run, resumed on every later one."},
    )
    data: str | None = field(
        default=None,
        metadata={
            "help": "Rows with 'prompt' and 'completions' to label: a folder written by Dataset(Dict).save_to_disk "
            "(e.g. sample_and_label.py --task none), a .json/.jsonl/.parquet/.csv file, or a Hub dataset id. "
            "Only read when the session file is created."
        },
    )
    split: str | None = field(
        default=None, metadata={"help": "Split of --data to label; default: every split, one after the other."}
    )
    model_name_or_path: str | None = field(
        default=None,
        metadata={
            "help": "Instead of --data: a policy (Hub id, folder, or 'offline' for SmolLM2-135M-Instruct) that "
            "samples --k completions for each of --num_prompts prompts from --prompts when the session is created."
        },
    )
    prompts: str = field(
        default="offline",
        metadata={
            "help": "With --model_name_or_path: 'offline' (review openings) or a dataset with a 'prompt' column."
        },
    )
    num_prompts: int = field(default=32, metadata={"help": "With --model_name_or_path: prompts to sample for."})
    k: int = field(
        default=4, metadata={"help": "With --model_name_or_path: completions per prompt (InstructGPT: 4-9)."}
    )
    max_new_tokens: int = field(default=24, metadata={"help": "With --model_name_or_path: completion length."})
    temperature: float = field(default=0.7, metadata={"help": "With --model_name_or_path: sampling temperature."})
    labelers: str | None = field(
        default=None,
        metadata={
            "help": "Comma-separated roster of labeler names (without --auth_file). Default: anyone who types a name, "
            "and each of them gets every prompt."
        },
    )
    labelers_per_prompt: int | None = field(
        default=None,
        metadata={
            "help": "How many labelers rank each prompt (overlap for agreement), with a roster (--labelers or the "
            "users of --auth_file). Default: every labeler ranks every prompt."
        },
    )
    auth_file: str | None = field(
        default=None,
        metadata={
            "help": "Users who may log in: one 'name:password' a line ('#' comments). Required to bind an address "
            "other than loopback; the users are then the roster. Keep it readable by you only."
        },
    )
    server_name: str = field(
        default="127.0.0.1",
        metadata={"help": "Address to bind. Anything but loopback needs --auth_file (the page would be open)."},
    )
    server_port: int = field(default=7860, metadata={"help": "Port to bind."})
    seed: int = field(default=0, metadata={"help": "Seed of the assignment, the labelers' orders and the sampling."})


@dataclass
class ExportConfig:
    session: str = field(default="labels.sqlite", metadata={"help": "The session file to export."})
    output_dir: str = field(
        default="outputs/human-labels",
        metadata={"help": "Where the dataset (save_to_disk), its card (README.md) and stats.json go."},
    )
    mode: str = field(
        default="per_labeler",
        metadata={"help": "'per_labeler' (one row per labeler and prompt) or 'consensus' (one row per prompt)."},
    )
    min_labelers: int = field(
        default=1, metadata={"help": "consensus: prompts ranked by fewer labelers are left out."}
    )
    test_fraction: float = field(
        default=0.125, metadata={"help": "Share of prompts (with all their rows) kept as a 'test' split; 0 for none."}
    )
    exclude_flags: str = field(
        default="", metadata={"help": "Comma-separated flags whose judgements are left out, e.g. 'broken,unsafe'."}
    )
    push_to_hub: bool = field(
        default=False,
        metadata={"help": "Push the dataset and card to the Hub (token: HF_TOKEN or `hf auth login`, never a file)."},
    )
    hub_dataset_id: str | None = field(default=None, metadata={"help": "Hub dataset repo id for --push_to_hub."})


# ----------------------------------------------------------------------------- serving rules


def read_auth_file(path: str | os.PathLike) -> dict[str, str]:
    """``{name: password}`` from lines ``name:password``; raises naming the line when one is malformed."""
    path = Path(path)
    users: dict[str, str] = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, sep, password = line.partition(":")
        if not sep or not name.strip() or not password:
            raise LabelingError(f"{path} line {number}: expected 'name:password'")
        if name.strip() in users:
            raise LabelingError(f"{path} line {number}: user '{name.strip()}' appears twice")
        users[name.strip()] = password
    if not users:
        raise LabelingError(f"{path} holds no user")
    if os.name == "posix" and path.stat().st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        print(f"warning: {path} is readable by other users of this machine (chmod 600 it)", file=sys.stderr)
    return users


def password_check(users: dict[str, str]):
    """Gradio's ``auth`` callable: constant-time comparison, unknown users refused."""

    def check(username: str, password: str) -> bool:
        expected = users.get(username)
        return expected is not None and hmac.compare_digest(expected.encode(), (password or "").encode())

    return check


def is_loopback(server_name: str) -> bool:
    """Whether every address ``server_name`` stands for is a loopback address (127.0.0.0/8, ::1)."""
    try:
        return ipaddress.ip_address(server_name).is_loopback
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(server_name, None)
    except socket.gaierror as err:
        raise LabelingError(f"--server_name {server_name!r} does not resolve: {err}") from None
    return bool(infos) and all(ipaddress.ip_address(info[4][0].split("%")[0]).is_loopback for info in infos)


def check_exposure(server_name: str, users: dict[str, str] | None) -> None:
    """Refuse to serve the page beyond this machine without a login."""
    if users is None and not is_loopback(server_name):
        raise LabelingError(
            f"refusing to serve the labeling page on {server_name!r} without a login: anyone who can reach it could "
            "read the data and write judgements in any name. Pass --auth_file (one 'name:password' a line), or bind "
            "127.0.0.1 (the default) and reach it through an SSH tunnel."
        )


# ----------------------------------------------------------------------------- data


def load_rows(cfg: ServeConfig) -> tuple[list[dict], str]:
    """The rows to label and a description of where they come from."""
    if cfg.data and cfg.model_name_or_path:
        raise LabelingError("pass --data or --model_name_or_path, not both")
    if cfg.model_name_or_path:
        return sample_rows(cfg), cfg.model_name_or_path
    if not cfg.data:
        raise LabelingError(
            f"{cfg.session} does not exist yet: pass --data (rows with 'prompt' and 'completions') or "
            "--model_name_or_path (a policy to sample from) to create it"
        )
    import datasets

    path = Path(cfg.data)
    if path.is_dir():
        data = datasets.load_from_disk(str(path))
    elif path.is_file():
        kind = {".jsonl": "json", ".json": "json", ".parquet": "parquet", ".csv": "csv"}.get(path.suffix)
        if kind is None:
            raise LabelingError(f"--data {path}: expected a .json, .jsonl, .parquet or .csv file, or a folder")
        data = datasets.load_dataset(kind, data_files=str(path))
    else:
        data = datasets.load_dataset(cfg.data)
    if isinstance(data, datasets.DatasetDict):
        if cfg.split is not None:
            if cfg.split not in data:
                raise LabelingError(f"--data {cfg.data} has no split {cfg.split!r}; it has {list(data)}")
            data = data[cfg.split]
        else:
            data = datasets.concatenate_datasets(list(data.values()))
    missing = [c for c in ("prompt", "completions") if c not in data.column_names]
    if missing:
        raise LabelingError(f"--data {cfg.data}: missing column(s) {missing}; it has {data.column_names}")
    return data.select_columns(["prompt", "completions"]).to_list(), cfg.data


def sample_rows(cfg: ServeConfig) -> list[dict]:
    """``--k`` completions for each of ``--num_prompts`` prompts, sampled from the policy."""
    import torch

    from ..continuation import load_policy, prompt_dataset
    from ..sampling import sample_completions

    if cfg.k < 2:
        raise LabelingError(f"--k must be >= 2 to rank, got {cfg.k}")
    prompts = prompt_dataset(cfg.prompts, "train")
    if cfg.num_prompts > len(prompts):
        raise LabelingError(f"--num_prompts {cfg.num_prompts} but {cfg.prompts} has {len(prompts)} prompts")
    prompts = prompts.shuffle(seed=cfg.seed).select(range(cfg.num_prompts))["prompt"]
    torch.manual_seed(cfg.seed)
    model, tokenizer = load_policy(cfg.model_name_or_path)
    samples = sample_completions(
        model,
        tokenizer,
        prompts,
        k=cfg.k,
        max_new_tokens=cfg.max_new_tokens,
        temperature=cfg.temperature,
        seed=cfg.seed,
        progress=f"sampling {cfg.k} completions per prompt",
    )
    return [{"prompt": p, "completions": texts} for p, texts in zip(prompts, samples.texts)]


def without_empty_completions(rows: list[dict]) -> list[dict]:
    """Drop empty completions (a sample that stopped at once can be neither judged nor trained on) and then the
    prompts left with fewer than two; says how many."""
    out, emptied, dropped = [], 0, 0
    for row in rows:
        kept = [c for c in row["completions"] if (c.strip() if isinstance(c, str) else c)]
        emptied += len(row["completions"]) - len(kept)
        if len(kept) < 2:
            dropped += 1
            continue
        out.append({**row, "completions": kept})
    if emptied:
        print(
            f"left out {emptied} empty completion(s), and {dropped} prompt(s) left with fewer than 2", file=sys.stderr
        )
    return out


def open_session(cfg: ServeConfig, users: dict[str, str] | None) -> LabelStore:
    if users is not None and cfg.labelers:
        raise LabelingError(
            "--labelers and --auth_file both name the labelers: with a login, the users are the roster"
        )
    roster = sorted(users) if users is not None else None
    if cfg.labelers:
        roster = [n for n in (s.strip() for s in cfg.labelers.split(",")) if n]
    if Path(cfg.session).exists():
        store = LabelStore(cfg.session)
        store.check_settings(roster, cfg.labelers_per_prompt)
        print(f"resuming {cfg.session}: {store.num_items} prompts, {len(store.judgements())} judgements so far")
        return store
    rows, source = load_rows(cfg)
    store = LabelStore.create(
        cfg.session,
        without_empty_completions(rows),
        labelers=roster,
        labelers_per_prompt=cfg.labelers_per_prompt,
        seed=cfg.seed,
        source=source,
    )
    print(f"created {cfg.session}: {store.num_items} prompts from {source}")
    return store


# ----------------------------------------------------------------------------- commands


def serve(cfg: ServeConfig, block: bool = True):
    """Create or resume the session and serve the page (blocks until interrupted unless ``block=False``)."""
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    users = read_auth_file(cfg.auth_file) if cfg.auth_file else None
    check_exposure(cfg.server_name, users)  # before anything is loaded or sampled
    store = open_session(cfg, users)
    from .app import CSS, SHORTCUTS_JS, build_app, theme

    demo = build_app(store, require_login=users is not None)
    demo.queue(default_concurrency_limit=8)
    print(f"labeling page: http://{cfg.server_name}:{cfg.server_port} (session {cfg.session})", flush=True)
    return demo.launch(
        server_name=cfg.server_name,
        server_port=cfg.server_port,
        auth=password_check(users) if users is not None else None,
        auth_message="Log in with the name and password you were given." if users is not None else None,
        prevent_thread_lock=not block,
        ssr_mode=False,
        show_error=True,
        footer_links=[],
        theme=theme(),
        css=CSS,
        head=SHORTCUTS_JS,
    )


def export_command(cfg: ExportConfig) -> dict:
    from .export import save_export

    flags = tuple(f for f in (s.strip() for s in cfg.exclude_flags.split(",")) if f)
    result = save_export(
        cfg.session,
        cfg.output_dir,
        mode=cfg.mode,
        exclude_flags=flags,
        min_labelers=cfg.min_labelers,
        test_fraction=cfg.test_fraction,
        push_to_hub=cfg.push_to_hub,
        hub_dataset_id=cfg.hub_dataset_id,
    )
    print(f"wrote {result['stats']['rows']} rows to {cfg.output_dir}")
    return result


USAGE = "usage: rlhf-ext label {serve,export} [--help] [options]"


def main(argv: list[str] | None = None) -> int:
    from transformers import HfArgumentParser

    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in ("serve", "export"):
        print(USAGE + "\n\n" + __doc__, file=sys.stderr)
        return 2
    command, rest = argv[0], argv[1:]
    config_type = ServeConfig if command == "serve" else ExportConfig
    parser = HfArgumentParser(config_type, prog=f"rlhf-ext label {command}")
    (cfg,) = parser.parse_args_into_dataclasses(rest)
    try:
        if command == "serve":
            serve(cfg)
        else:
            export_command(cfg)
    except LabelingError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0
