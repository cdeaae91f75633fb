"""Preference and prompt data for rlhf_ext's trainers, one module per purpose.

- :mod:`~rlhf_ext.data.formats`: what a ranked row and a pairwise row are, and how a pair reads as a ranked row;
- :mod:`~rlhf_ext.data.validation`: checks of ranked, pairwise and prompt rows that name the row and the problem;
- :mod:`~rlhf_ext.data.ranking`: comparison pairs, ranks from scores, conversions between the formats;
- :mod:`~rlhf_ext.data.sources`: converters from public datasets (lm-human-preferences, UltraFeedback, Nectar, OASST);
- :mod:`~rlhf_ext.data.label_tools`: importers of other labeling tools' exports (Argilla, Label Studio).

``rlhf_ext.ranked_data`` re-exports the public names of all of them, the import path of earlier releases.
"""
