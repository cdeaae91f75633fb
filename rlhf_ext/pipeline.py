"""Running recipe scripts one after the other, as the stages of a pipeline (``recipes/run_demo.py``,
``recipes/run_summarize.py``), and telling a user who runs one stage alone what it is missing.

- :data:`PIPELINES`: each offline pipeline's stages in order, with the recipe script and the offline config of each
  (sentiment: ``make demo``; tldr and cnndm: ``make summarize``).
- :func:`run_stage`: each stage runs exactly as its command line would, ``python recipes/<stage>.py --config
  <config> <overrides>``: the script's own ``__main__`` block parses those arguments and does the work. It runs
  inside the calling interpreter (``runpy``), so TRL and torch are imported once for the whole pipeline and an error
  in a stage is raised in the caller. The command is printed first, so a stage can be rerun alone. Stages hand their
  results to the next ones through the files they write, as they would between separate commands.
- :func:`require_inputs`: a stage run on its own whose input folder (an earlier stage's output) does not exist stops
  before loading anything, with one line that names the folder and the command that makes it.
"""

from __future__ import annotations

import importlib.util
import os
import runpy
import shlex
import sys
import time
from dataclasses import dataclass
from pathlib import Path

__all__ = ["PIPELINES", "Stage", "load_script", "require_inputs", "run_stage", "stage_command"]


@dataclass(frozen=True)
class Stage:
    name: str
    script: str  # in recipes/
    config: str  # in recipes/configs/, the offline default


def _summarization(dataset: str) -> tuple[Stage, ...]:
    scripts = {
        "sft": "sft_tldr.py",
        "label": "sample_and_label.py",
        "reward": "reward_tldr.py",
        "ppo": "ppo_tldr.py",
        "dpo": "dpo_tldr.py",
        "orpo": "orpo_tldr.py",
        "evaluate": "evaluate_summaries.py",
    }
    return tuple(Stage(name, script, f"{name}_{dataset}_offline.yaml") for name, script in scripts.items())


PIPELINES: dict[str, tuple[Stage, ...]] = {
    "sentiment": (
        Stage("label", "sample_and_label.py", "sample_and_label_offline.yaml"),
        Stage("reward", "reward_sentiment.py", "reward_sentiment_offline.yaml"),
        Stage("ppo", "ppo_sentiment.py", "ppo_sentiment_offline.yaml"),
        Stage("evaluate", "evaluate_sentiment.py", "evaluate_sentiment_offline.yaml"),
    ),
    "tldr": _summarization("tldr"),
    "cnndm": _summarization("cnndm"),
}
# The command that runs a whole pipeline.
WHOLE = {
    "sentiment": "make demo",
    "tldr": "make summarize",
    "cnndm": "python recipes/run_summarize.py --dataset cnndm",
}
# Values of input options that name no folder: the offline default's models and data, the labeler as reward.
NOT_PATHS = {"offline", "offline-tldr", "offline-cnndm", "labeler"}


def stage_command(stage: Stage) -> str:
    return f"accelerate launch recipes/{stage.script} --config recipes/configs/{stage.config}"


def _made_by(path: str, recipes_dir: Path) -> str | None:
    """The command of the offline pipeline stage whose config writes ``path``, or None."""
    import yaml

    target = Path(path)
    for pipeline, stages in PIPELINES.items():
        for stage in stages:
            config = recipes_dir / "configs" / stage.config
            if not config.is_file():
                continue
            output = (yaml.safe_load(config.read_text()) or {}).get("output_dir")
            if output and Path(output) == target:
                return f"{stage_command(stage)} (or every stage: {WHOLE[pipeline]})"
    return None


def _is_local(value: str, recipes_dir: Path) -> bool:
    """Whether ``value`` names a local folder rather than a Hub id (``owner/name`` or ``name``)."""
    if value in NOT_PATHS:
        return False
    if value.startswith(("/", ".", "~")) or value.count("/") >= 2 or os.sep != "/" and os.sep in value:
        return True
    return _made_by(value, recipes_dir) is not None


def require_inputs(inputs: dict[str, str | None], recipes_dir: str | os.PathLike) -> None:
    """Stop with one line (``SystemExit``) at the first of ``inputs`` (option name -> value) that names a local folder
    which does not exist: what is missing, which option named it and, when an offline pipeline stage writes it, the
    command that makes it. Hub ids, ``offline`` and None pass."""
    recipes_dir = Path(recipes_dir)
    for option, value in inputs.items():
        if not value or not _is_local(str(value), recipes_dir) or Path(value).expanduser().exists():
            continue
        made_by = _made_by(str(value), recipes_dir)
        how = f"; it is made by: {made_by}" if made_by else " (a folder is expected here)"
        raise SystemExit(f"error: {value} does not exist (--{option}){how}")


def run_stage(script: str | os.PathLike, config: str | os.PathLike, overrides: list[str] = ()) -> float:
    """Run ``script`` as ``python <script> --config <config> <overrides>`` would; returns the seconds it took."""
    argv = [str(script), "--config", str(config), *overrides]
    shown = [os.path.relpath(a) if Path(a).exists() else a for a in argv]
    print(f"$ python {shlex.join(shown)}", flush=True)
    saved = sys.argv
    sys.argv = argv
    start = time.time()
    try:
        runpy.run_path(str(script), run_name="__main__")
    finally:
        sys.argv = saved
    return time.time() - start


def load_script(path: str | os.PathLike):
    """The module of a script that is not in a package (``recipes/ppo_tldr.py``, ``benchmarks/...``), to reach its
    dataclasses and functions without running its ``__main__`` block. Loaded once per process, as
    ``<folder name>.<file stem>``."""
    path = Path(path)
    module_name = f"{path.parent.name}.{path.stem}"
    if module_name not in sys.modules:
        spec = importlib.util.spec_from_file_location(module_name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module  # dataclass annotations are resolved through the module's entry
        spec.loader.exec_module(module)
    return sys.modules[module_name]
