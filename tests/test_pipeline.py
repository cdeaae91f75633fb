"""rlhf_ext.pipeline.run_stage: a recipe script runs as its command line would, inside this interpreter."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from rlhf_ext.pipeline import run_stage

SCRIPT = """
import json, sys
if __name__ == "__main__":
    args = sys.argv[1:]
    if "--fail" in args:
        raise RuntimeError("stage failed")
    out = args[args.index("--out") + 1]
    with open(out, "w") as f:
        json.dump({"argv": sys.argv, "name": __name__}, f)
"""


def test_stage_runs_with_the_printed_command_line_and_errors_reach_the_caller(tmp_path, capsys):
    script = tmp_path / "stage.py"
    script.write_text(SCRIPT)
    config = tmp_path / "stage.yaml"
    config.write_text("x: 1\n")
    out = tmp_path / "out.json"
    argv_before = list(sys.argv)
    seconds = run_stage(script, config, ["--out", str(out), "--k", "4"])
    seen = json.loads(out.read_text())
    assert seen["argv"] == [str(script), "--config", str(config), "--out", str(out), "--k", "4"]
    assert seen["name"] == "__main__" and seconds >= 0.0
    assert sys.argv == argv_before
    printed = capsys.readouterr().out
    assert printed.startswith("$ python ") and "stage.py --config" in printed and "--k 4" in printed
    with pytest.raises(RuntimeError, match="stage failed"):
        run_stage(script, config, ["--fail"])
    assert sys.argv == argv_before


# ------------------------------------------------------------------------------------------------------------------
# A stage run on its own, before the stages it needs: one line naming the missing folder and the command that makes it
# ------------------------------------------------------------------------------------------------------------------

RECIPES = Path(__file__).resolve().parent.parent / "recipes"
# (pipeline, stage) -> (the folder it stops at, the option naming it, the script and config that make that folder)
MISSING = {
    ("sentiment", "reward"): ("outputs/sentiment/labels", "labels_dir", "sample_and_label.py", "sample_and_label_offline.yaml"),
    ("sentiment", "ppo"): ("outputs/sentiment/reward", "reward_model", "reward_sentiment.py", "reward_sentiment_offline.yaml"),
    ("sentiment", "evaluate"): ("outputs/sentiment/ppo", "trained_model", "ppo_sentiment.py", "ppo_sentiment_offline.yaml"),
    **{
        (data, stage): (f"outputs/{data}/{folder}", option, script, f"{maker}_{data}_offline.yaml")
        for data in ("tldr", "cnndm")
        for stage, folder, option, script, maker in (
            ("label", "sft", "model_name_or_path", "sft_tldr.py", "sft"),
            ("reward", "labels", "preferences", "sample_and_label.py", "label"),
            ("ppo", "sft", "model_name_or_path", "sft_tldr.py", "sft"),
            ("dpo", "sft", "model_name_or_path", "sft_tldr.py", "sft"),
            ("orpo", "labels", "preferences", "sample_and_label.py", "label"),
            ("evaluate", "sft", "policies (sft)", "sft_tldr.py", "sft"),
        )
    },
}  # fmt: skip
WHOLE = {
    "sentiment": "make demo",
    "tldr": "make summarize",
    "cnndm": "python recipes/run_summarize.py --dataset cnndm",
}


def test_every_stage_that_needs_an_earlier_one_is_listed():
    """The stages without inputs of an earlier stage are the first ones (sampling from the offline policy, SFT)."""
    from rlhf_ext.pipeline import PIPELINES

    listed = {(pipeline, stage.name) for pipeline, stages in PIPELINES.items() for stage in stages[1:]}
    assert listed == set(MISSING)


@pytest.mark.parametrize("pipeline,stage", sorted(MISSING))
def test_a_stage_alone_names_the_missing_folder_and_the_command_that_makes_it(pipeline, stage, tmp_path, monkeypatch):
    from rlhf_ext.pipeline import PIPELINES

    monkeypatch.chdir(tmp_path)  # a fresh clone: no outputs/ yet
    step = next(s for s in PIPELINES[pipeline] if s.name == stage)
    folder, option, script, config = MISSING[pipeline, stage]
    with pytest.raises(SystemExit) as stop:
        run_stage(RECIPES / step.script, RECIPES / "configs" / step.config)
    assert str(stop.value) == (
        f"error: {folder} does not exist (--{option}); it is made by: accelerate launch recipes/{script} "
        f"--config recipes/configs/{config} (or every stage: {WHOLE[pipeline]})"
    )
    assert not (tmp_path / "outputs").exists()  # it stopped before writing anything


def test_the_readmes_command_on_a_fresh_clone_stops_with_one_line(tmp_path):
    """``accelerate launch recipes/ppo_tldr.py --config recipes/configs/ppo_tldr_offline.yaml`` (plain python here:
    accelerate starts the same script, and without ``-q`` adds a traceback of its own for any failing script) exits 1
    with no traceback; its last line is the error. (Before it, TRL's configs emit transformers' FutureWarning about
    ``gradient_checkpointing``, as on every run.)"""
    import os
    import subprocess

    proc = subprocess.run(
        [sys.executable, str(RECIPES / "ppo_tldr.py"), "--config", str(RECIPES / "configs" / "ppo_tldr_offline.yaml")],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env=dict(os.environ, TRL_EXPERIMENTAL_SILENCE="1"),
    )
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert [line for line in lines if line.startswith("error:")] == lines[-1:]
    assert lines[-1] == (
        "error: outputs/tldr/sft does not exist (--model_name_or_path); it is made by: accelerate launch "
        "recipes/sft_tldr.py --config recipes/configs/sft_tldr_offline.yaml (or every stage: make summarize)"
    )
    assert all("Warning" in line or line.startswith("  warnings.warn") for line in lines[:-1]), lines


def test_hub_ids_and_the_offline_default_are_not_folders(tmp_path):
    from rlhf_ext.pipeline import require_inputs

    require_inputs({"model_name_or_path": "offline", "reward_model": "you/reward-model", "x": None}, RECIPES)
    with pytest.raises(SystemExit, match=r"^error: \./mine does not exist \(--reward_model\) \(a folder is expected"):
        require_inputs({"reward_model": "./mine"}, RECIPES)
    (tmp_path / "rm").mkdir()
    require_inputs({"reward_model": str(tmp_path / "rm")}, RECIPES)
