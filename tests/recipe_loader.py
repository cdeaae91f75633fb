"""Recipes are scripts, not a package: load ``recipes/<name>.py`` as a module to reach its dataclasses and functions."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

RECIPES = Path(__file__).resolve().parents[1] / "recipes"


def load_recipe(name: str, folder: Path = RECIPES):
    """The module of ``recipes/<name>.py``, or of ``<folder>/<name>.py`` (e.g. benchmarks/), loaded once per session
    as ``<folder name>.<name>``."""
    module_name = f"{folder.name}.{name}"
    if module_name in sys.modules:
        return sys.modules[module_name]
    spec = importlib.util.spec_from_file_location(module_name, folder / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module  # dataclass annotations are resolved through the module's entry
    spec.loader.exec_module(module)
    return module
