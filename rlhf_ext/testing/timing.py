"""Pieces the trainer benchmarks share: per-step wall times from a callback, and runs in fresh subprocesses.

A benchmark that compares two trainers runs each in its own interpreter (its memory and thread settings its own)
by calling itself with ``--child <spec as JSON>``; the child prints its result as the last line of stdout.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

from transformers import TrainerCallback


class StepTimer(TrainerCallback):
    """Wall seconds of every optimizer step of a ``Trainer`` (``on_step_begin`` to ``on_step_end``), in ``times``."""

    def __init__(self):
        self.times: list[float] = []
        self._start = 0.0

    def on_step_begin(self, args, state, control, **kwargs):
        self._start = time.perf_counter()

    def on_step_end(self, args, state, control, **kwargs):
        self.times.append(time.perf_counter() - self._start)


def run_child(script: str, spec: dict, name: str) -> dict:
    """Run ``script --child <spec>`` with ``OMP_NUM_THREADS = spec["threads"]``; its last stdout line as JSON. A failed
    run raises, naming ``name`` and showing the end of its stderr."""
    env = {**os.environ, "OMP_NUM_THREADS": str(spec["threads"])}
    out = subprocess.run(
        [sys.executable, script, "--child", json.dumps(spec)], capture_output=True, text=True, env=env, check=False
    )
    if out.returncode != 0:
        raise RuntimeError(f"{name} run failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def run_interleaved(script: str, base: dict, key: str, names: tuple[str, ...], repeats: int) -> dict[str, list[dict]]:
    """``repeats`` rounds of :func:`run_child` for each of ``names`` (``spec = {**base, key: name}``), the order
    reversed every other round so that load from other processes hits them alike; each result is printed as a JSON
    line as it comes. Returns each name's results, in round order."""
    results: dict[str, list[dict]] = {name: [] for name in names}
    for repeat in range(repeats):
        for name in names if repeat % 2 == 0 else names[::-1]:
            result = run_child(script, {**base, key: name}, name)
            results[name].append(result)
            print(json.dumps({"repeat": repeat, **result}), flush=True)
    return results
