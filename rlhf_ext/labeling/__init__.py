"""A ranking page for human labelers (InstructGPT's second step), and what turns its judgements into training data.

    rlhf-ext label serve --data outputs/sentiment/samples --session labels.sqlite
    rlhf-ext label export --session labels.sqlite --output_dir outputs/human-labels

The page (:mod:`rlhf_ext.labeling.app`, Gradio) shows one prompt and its K completions at a time in an order of each
labeler's own; the labeler ranks them (ties allowed), or skips, flags and notes. Every judgement is fsynced into a
SQLite session file before the page confirms it (:mod:`rlhf_ext.labeling.store`). :func:`export` gives the rows
``RankedRewardTrainer`` trains on; :func:`session_agreement` the agreement between labelers. See docs/labeling.md.
Gradio is needed for the page only: ``pip install "rlhf_ext[label]"``.
"""

from __future__ import annotations

from .agreement import agreement, format_agreement, pair_agreement
from .export import export, export_rows, save_export, session_agreement, session_stats
from .store import FLAGS, LabelingError, LabelStore, Task

__all__ = [
    "FLAGS",
    "LabelStore",
    "LabelingError",
    "Task",
    "agreement",
    "export",
    "export_rows",
    "format_agreement",
    "pair_agreement",
    "save_export",
    "session_agreement",
    "session_stats",
]
