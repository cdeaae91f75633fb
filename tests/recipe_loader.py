"""Recipes are scripts, not a package: load ``recipes/<name>.py`` as a module to reach its dataclasses and functions."""

from __future__ import annotations

from pathlib import Path

from rlhf_ext.pipeline import load_script

RECIPES = Path(__file__).resolve().parents[1] / "recipes"
BENCHMARKS = RECIPES.parent / "benchmarks"


def load_recipe(name: str, folder: Path = RECIPES):
    """The module of ``recipes/<name>.py``, or of ``<folder>/<name>.py`` (e.g. benchmarks/), loaded once per session."""
    return load_script(folder / f"{name}.py")


def load_benchmark(name: str):
    """The module of ``benchmarks/<name>.py``, loaded once per session."""
    return load_script(BENCHMARKS / f"{name}.py")
