"""Running recipe scripts one after the other, as the stages of a pipeline (``recipes/run_demo.py``,
``recipes/run_summarize.py``).

Each stage runs exactly as its command line would, ``python recipes/<stage>.py --config <config> <overrides>``: the
script's own ``__main__`` block parses those arguments and does the work. It runs inside the calling interpreter
(``runpy``), so TRL and torch are imported once for the whole pipeline and an error in a stage is raised in the
caller. The command is printed first, so a stage can be rerun alone. Stages hand their results to the next ones
through the files they write, as they would between separate commands.
"""

from __future__ import annotations

import os
import runpy
import shlex
import sys
import time
from pathlib import Path

__all__ = ["run_stage"]


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
