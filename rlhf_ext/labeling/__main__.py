"""``python -m rlhf_ext.labeling serve|export ...``: see :mod:`rlhf_ext.labeling.cli`."""

import sys

from .cli import main

sys.exit(main())
