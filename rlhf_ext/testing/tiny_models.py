"""Tiny random-init models sharing one small, locally trained tokenizer, for fast tests.

``build_tiny_models(folder)`` writes three plain HF folders (causal LM, scalar-head sequence classifier,
and the tokenizer alone) and returns their paths. Everything is built from scratch on this machine: no
download, a fixed seed, about a second on a CPU.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

# A small English corpus (one sentence per line) so the BPE merges are real words and tests can read what models
# generate; benchmarks draw words from it too.
CORPUS = """
The movie was wonderful and the acting was great. I loved every minute of this film.
The plot was dull, the dialogue was terrible and I hated the ending. A boring waste of time.
A delightful, funny and warm story with a brilliant cast. Highly recommended.
The council voted on Tuesday to approve the new budget for schools and roads.
Scientists said the storm would reach the coast by the weekend, bringing heavy rain.
The team won the final match after a late goal in the second half.
Summarize the article. TL;DR: the city approved a budget. The weather will be cold.
Once upon a time there was a small village by the sea where people told stories.
Good, bad, happy, sad, great, awful, beautiful, ugly, bright, dark, kind, cruel.
""".strip().splitlines()

CHAT_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


@dataclass(frozen=True)
class TinyModels:
    tokenizer: Path
    causal_lm: Path
    reward_model: Path


def build_tokenizer(vocab_size: int = 384):
    """A byte-level BPE tokenizer with <|im_start|>/<|im_end|> (EOS) and <pad>, and a chat template."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    specials = ["<pad>", "<|im_start|>", "<|im_end|>", "<unk>"]
    core = Tokenizer(models.BPE(unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    core.train_from_iterator(CORPUS * 4, trainer=trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=core,
        pad_token="<pad>",
        eos_token="<|im_end|>",
        bos_token="<|im_start|>",
        unk_token="<unk>",
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer


def build_tiny_models(folder: str | Path, hidden_size: int = 32, num_layers: int = 2, seed: int = 0) -> TinyModels:
    """Write a tiny Llama causal LM and a tiny Llama scalar reward model into ``folder`` (idempotent)."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM, LlamaForSequenceClassification

    folder = Path(folder)
    paths = TinyModels(folder / "tokenizer", folder / "tiny-causal-lm", folder / "tiny-reward-model")
    if all((p / "config.json").exists() for p in (paths.causal_lm, paths.reward_model)):
        return paths

    tokenizer = build_tokenizer()
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=2 * hidden_size,
        num_hidden_layers=num_layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        tie_word_embeddings=False,
    )
    torch.manual_seed(seed)
    lm = LlamaForCausalLM(config)
    lm.generation_config.pad_token_id = tokenizer.pad_token_id
    lm.generation_config.eos_token_id = tokenizer.eos_token_id
    torch.manual_seed(seed + 1)
    fields = {k: v for k, v in config.to_dict().items() if k not in ("id2label", "label2id")}
    rm_config = LlamaConfig(**fields, num_labels=1)
    rm = LlamaForSequenceClassification(rm_config)

    tokenizer.save_pretrained(paths.tokenizer)
    for model, path in ((lm, paths.causal_lm), (rm, paths.reward_model)):
        model.save_pretrained(path, safe_serialization=True)
        tokenizer.save_pretrained(path)
    return paths


def build_tiny_gpt_neox(folder: str | Path, hidden_size: int = 32, num_layers: int = 2, seed: int = 0) -> TinyModels:
    """A tiny GPT-NeoX (Pythia's architecture) causal LM and scalar reward model, for testing paper configs.

    Same tokenizer as :func:`build_tiny_models`; 1,024 positions so a TL;DR-sized prompt fits. Idempotent.
    """
    import torch
    from transformers import GPTNeoXConfig, GPTNeoXForCausalLM, GPTNeoXForSequenceClassification

    folder = Path(folder)
    paths = TinyModels(folder / "tokenizer", folder / "tiny-gpt-neox", folder / "tiny-gpt-neox-reward")
    if all((p / "config.json").exists() for p in (paths.causal_lm, paths.reward_model)):
        return paths
    tokenizer = build_tokenizer()
    config = GPTNeoXConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=2 * hidden_size,
        num_hidden_layers=num_layers,
        num_attention_heads=4,
        max_position_embeddings=1024,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    torch.manual_seed(seed)
    lm = GPTNeoXForCausalLM(config)
    torch.manual_seed(seed + 1)
    fields = {k: v for k, v in config.to_dict().items() if k not in ("id2label", "label2id")}
    rm = GPTNeoXForSequenceClassification(GPTNeoXConfig(**fields, num_labels=1))
    tokenizer.save_pretrained(paths.tokenizer)
    for model, path in ((lm, paths.causal_lm), (rm, paths.reward_model)):
        model.save_pretrained(path, safe_serialization=True)
        tokenizer.save_pretrained(path)
    return paths
