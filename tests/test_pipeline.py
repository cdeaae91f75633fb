"""rlhf_ext.pipeline.run_stage: a recipe script runs as its command line would, inside this interpreter."""

from __future__ import annotations

import json
import sys

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
