"""rlhf_ext.ranked_data, the import path of earlier releases: every public name it had still imports from it."""

from __future__ import annotations

import rlhf_ext.ranked_data
from rlhf_ext.data import formats, label_tools, ranking, sources, validation

# The public names of rlhf_ext/ranked_data.py as released (rlhf_ext 0.1.0.dev0).
RELEASED_NAMES = """
RANKED_COLUMNS PAIRWISE_COLUMNS PAIRINGS ranked_pairs is_ranked_row is_pairwise_row validate_ranked_row
validate_ranked_dataset validate_prompt_dataset validate_trainer_prompts to_ranked pairwise_row_to_ranked
from_lm_human_preferences from_ultrafeedback from_ultrafeedback_binarized from_nectar from_oasst pairs_to_ranked
ranked_to_pairs ranks_from_scores
""".split()
# Added since: importers of other labeling tools' exports.
ADDED_NAMES = ["from_argilla_ranking", "from_label_studio_ranker"]


def test_every_released_name_is_the_data_modules_own():
    homes = (formats, validation, ranking, sources, label_tools)
    for name in RELEASED_NAMES + ADDED_NAMES:
        value = getattr(rlhf_ext.ranked_data, name)
        assert any(getattr(module, name, None) is value for module in homes), name
    assert set(rlhf_ext.ranked_data.__all__) == set(RELEASED_NAMES + ADDED_NAMES)
