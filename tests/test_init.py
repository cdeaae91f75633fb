"""rlhf_ext/__init__.py: cheap to import, every lazy export loads, and the TYPE_CHECKING block names each of them."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import rlhf_ext

INIT = Path(rlhf_ext.__file__)


def test_import_is_cheap_and_exports_load_lazily():
    code = (
        "import sys, rlhf_ext; heavy = [m for m in ('torch', 'trl', 'transformers') if m in sys.modules]; "
        "print(heavy); rlhf_ext.FixedKLController(0.1); print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["[]", "False"]  # the KL controllers are plain Python


def test_type_checking_block_imports_every_lazy_export():
    tree = ast.parse(INIT.read_text())
    block = next(n for n in tree.body if isinstance(n, ast.If) and getattr(n.test, "id", "") == "TYPE_CHECKING")
    named = {f"rlhf_ext.{node.module}": [a.name for a in node.names] for node in block.body}
    imported = {name: module for module, names in named.items() for name in names}
    assert imported == rlhf_ext._LAZY
    assert sorted(rlhf_ext.__all__) == sorted([*rlhf_ext._LAZY, "__version__"])
    for name in rlhf_ext.__all__:
        assert getattr(rlhf_ext, name) is not None
