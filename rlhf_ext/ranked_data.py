"""Ranked preference data: K >= 2 completions of one prompt with a rank each (lower is better).

The import path of earlier releases, kept for users' code. The functions live in ``rlhf_ext.data``, one module per
purpose: row formats (:mod:`rlhf_ext.data.formats`), validation (:mod:`rlhf_ext.data.validation`), comparisons and
conversions (:mod:`rlhf_ext.data.ranking`), public-dataset converters (:mod:`rlhf_ext.data.sources`) and importers of
other labeling tools' exports (:mod:`rlhf_ext.data.label_tools`). Every public name of the earlier module is importable
from here.
"""

from __future__ import annotations

from .data.formats import PAIRWISE_COLUMNS, RANKED_COLUMNS, is_pairwise_row, is_ranked_row, pairwise_row_to_ranked
from .data.label_tools import from_argilla_ranking, from_label_studio_ranker
from .data.ranking import PAIRINGS, pairs_to_ranked, ranked_pairs, ranked_to_pairs, ranks_from_scores, to_ranked
from .data.sources import (
    from_lm_human_preferences,
    from_nectar,
    from_oasst,
    from_ultrafeedback,
    from_ultrafeedback_binarized,
)
from .data.validation import (
    validate_prompt_dataset,
    validate_ranked_dataset,
    validate_ranked_row,
    validate_trainer_prompts,
)

__all__ = [
    "RANKED_COLUMNS",
    "PAIRWISE_COLUMNS",
    "PAIRINGS",
    "ranked_pairs",
    "is_ranked_row",
    "is_pairwise_row",
    "validate_ranked_row",
    "validate_ranked_dataset",
    "validate_prompt_dataset",
    "validate_trainer_prompts",
    "to_ranked",
    "pairwise_row_to_ranked",
    "from_lm_human_preferences",
    "from_ultrafeedback",
    "from_ultrafeedback_binarized",
    "from_nectar",
    "from_oasst",
    "pairs_to_ranked",
    "ranked_to_pairs",
    "ranks_from_scores",
    "from_argilla_ranking",
    "from_label_studio_ranker",
]
