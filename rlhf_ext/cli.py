"""The ``rlhf-ext`` console script. ``rlhf-ext label serve|export ...``: the ranking page for human labelers."""

from __future__ import annotations

import sys

COMMANDS = {"label": "the ranking page for human labelers and its export (rlhf_ext.labeling)"}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in COMMANDS:
        lines = [f"  {name:8s} {what}" for name, what in COMMANDS.items()]
        print("usage: rlhf-ext COMMAND ...\n\ncommands:\n" + "\n".join(lines), file=sys.stderr)
        return 2
    from .labeling.cli import main as label_main

    return label_main(argv[1:])


if __name__ == "__main__":
    sys.exit(main())
