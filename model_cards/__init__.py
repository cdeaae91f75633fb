"""Model-card templates (Jinja, rendered by ``rlhf_ext.cards``); installed as ``rlhf_ext.model_cards``."""
