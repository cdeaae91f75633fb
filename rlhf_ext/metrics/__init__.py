"""Local ``evaluate`` metric modules, loadable without the Hub: ``evaluate.load(rlhf_ext.metrics.path("rouge"))``."""

from __future__ import annotations

from pathlib import Path


def path(name: str) -> str:
    """Folder of the local metric module ``name`` (a folder holding ``<name>.py``)."""
    folder = Path(__file__).resolve().parent / name
    if not (folder / f"{name}.py").exists():
        raise ValueError(f"no local metric module {name!r} in {folder.parent}")
    return str(folder)
