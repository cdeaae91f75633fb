"""Loading the models a recipe names: a Hub id or folder, or ``"offline"`` for the model of the offline default.

- :func:`load_policy`: a causal LM and its tokenizer, ready to generate (left padding, a pad token);
- :func:`load_reward_model`: a sequence classifier with a scalar head (``num_labels=1``) and its tokenizer, ready for
  ``RankedRewardTrainer`` (a pad token, and an end-of-text token the trainer appends to each completion).
"""

from __future__ import annotations

__all__ = ["load_policy", "load_reward_model"]


def load_policy(name: str, dtype=None):
    """(model, tokenizer) for generation: left padding, and a pad token (EOS when the tokenizer has none).

    ``"offline"``: SmolLM2-135M-Instruct from the offline default (``rlhf_ext.offline.load_policy``).
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from rlhf_ext.offline import load_policy as load_offline_policy

    if name == "offline":
        return load_offline_policy(dtype)
    tok = AutoTokenizer.from_pretrained(name)
    tok.padding_side = "left"
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return AutoModelForCausalLM.from_pretrained(name, dtype=dtype or torch.float32), tok


def load_reward_model(name: str):
    """(model, tokenizer) of a scalar reward model; ``"offline"``: all-MiniLM-L6-v2 with a fresh scalar head.

    A Hub id or folder of a causal LM (e.g. the SFT policy, as Stiennon et al. initialise it) gets a new scalar head.
    A tokenizer without a pad token pads with EOS; a BERT-style one without EOS ends a text with ``[SEP]``.
    """
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from rlhf_ext.offline import load_reward_backbone

    if name == "offline":
        model, tok = load_reward_backbone()
    else:
        tok = AutoTokenizer.from_pretrained(name)
        model = AutoModelForSequenceClassification.from_pretrained(name, num_labels=1)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    if tok.eos_token is None:  # BERT-style encoders end a text with [SEP]
        tok.eos_token = tok.sep_token
    model.config.pad_token_id = tok.pad_token_id
    return model, tok
